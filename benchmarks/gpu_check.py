"""Every GPU figure in one short run (issue 14): whatever GPU is at hand, a few minutes, one JSON + one Markdown.

    python benchmarks/gpu_check.py --out DIR            # on a GPU machine (about 4-8 min on one H100)
    python benchmarks/gpu_check.py --out DIR --smoke    # anywhere: the same code paths at tiny sizes (CPU)

It measures, in this order (each section's figures land in DIR/gpu_check.json as soon as it ends, so a run cut
short keeps what it measured):

1. ``ranking_steps``: a training step (forward, loss + Newton step, backward, Adam) of the four ranking losses at
   n = 5 and 10, batch 100: Fisher / baseline and Hessian / baseline, median of >= 20 steps after warm-up,
   variants interleaved (paper Table 6: up to 3.7x for the Hessian on an A6000).
2. ``shortest_path_steps``: the stochastic smoothing loss's step at 3 / 10 / 30 samples, per variant.
3. ``solver``: ``shortest_paths`` paths/s on the device at 70 / 210 / 700 / 2 100 grids, against scipy per graph
   on the host.
4. ``paper_budget``: the real ``tasks.ranking.train`` (NeuralSort, n = 5, batch 100) over a few thousand steps:
   steps/s, and the time of the paper's 100 000 steps (1:02 h on the paper's A6000).
5. ``packing``: four short ranking trials at once through ``tuner run`` with ``resources: {gpu: 0.25}``, against
   one alone: each trial's steps/s and its process's peak GPU memory (``nvidia-smi``, CUDA context included).
6. ``determinism``: two identical short runs of the task compared metric by metric (the tasks turn on PyTorch's
   deterministic algorithms on CUDA, ``tasks.training.pick_device``), and what that costs per step.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.shortest_path_solver import TERRAIN, scipy_solve  # noqa: E402
from losses import LOSSES, make_objective, shortest_paths  # noqa: E402
from tasks import ranking  # noqa: E402
from tasks.mnist_digits import load_digits  # noqa: E402
from tasks.multi_digit import MultiDigitSets  # noqa: E402
from tasks.ranking import RankingCNN  # noqa: E402
from tasks.training import pick_device  # noqa: E402

RANKING = ["neuralsort", "softsort", "logistic_dsn", "cauchy_dsn"]
TUNER = str(Path(sys.executable).parent / "tuner")

FULL = {
    "reps": 20,
    "warmup": 5,
    "batch": 100,
    "ns": [5, 10],
    "sp_batch": 70,
    "sp_reps": 10,
    "samples": [3, 10, 30],
    "grids": [70, 210, 700, 2100],
    "budget_steps": 3000,
    "pack_steps": 600,
    "det_steps": 200,
}
SMOKE = {
    "reps": 2,
    "warmup": 1,
    "batch": 4,
    "ns": [3],
    "sp_batch": 2,
    "sp_reps": 1,
    "samples": [3, 10, 30],
    "grids": [4, 8],
    "budget_steps": 6,
    "pack_steps": 4,
    "det_steps": 4,
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_step(device, model, optimizer, objective, inputs, target, score) -> float:
    """One training step's wall time, the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    output = score(model, inputs)
    y = output.detach().to(target.dtype).requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(y, target), y)
    optimizer.zero_grad(set_to_none=True)
    output.backward(grad.to(output.dtype))
    optimizer.step()
    sync(device)
    return time.perf_counter() - start


def interleaved(device, base, loss, variants, lam, draw, reps, warmup, score) -> dict[str, float]:
    """Median step time per variant; each variant its own copy of the model and optimizer, steps interleaved."""
    setups = {}
    for variant in variants:
        model = copy.deepcopy(base).to(device)
        setups[variant] = (
            model,
            torch.optim.Adam(model.parameters(), 1e-3),
            make_objective(loss, variant, lam if variant != "baseline" else None),
        )
    times = {v: [] for v in variants}
    for rep in range(warmup + reps):
        inputs, target = draw(rep)
        for variant, (model, optimizer, objective) in setups.items():
            elapsed = timed_step(device, model, optimizer, objective, inputs, target, score)
            if rep >= warmup:
                times[variant].append(elapsed)
    return {v: statistics.median(t) for v, t in times.items()}


def ranking_steps(device, size) -> list[dict]:
    digits = load_digits(None)
    pool = MultiDigitSets(*digits.train, device)
    rows = []
    for n in size["ns"]:
        for name in RANKING:
            torch.manual_seed(0)
            generator = torch.Generator().manual_seed(n)
            t = interleaved(
                device,
                RankingCNN(),
                LOSSES.build(name),
                ("baseline", "fisher", "hessian"),
                0.1,
                lambda rep: pool.draw(size["batch"], n, generator),
                size["reps"],
                size["warmup"],
                lambda model, images: model.score(images),
            )
            rows.append(
                {
                    "loss": name,
                    "n": n,
                    "baseline_s": t["baseline"],
                    "fisher_ratio": t["fisher"] / t["baseline"],
                    "hessian_ratio": t["hessian"] / t["baseline"],
                }
            )
    return rows


def shortest_path_steps(device, size) -> list[dict]:
    from tasks.warcraft_data import cached_generated, load_warcraft
    from tasks.warcraft_model import CombResnet18, channel_stats

    data = load_warcraft(cached_generated({"train": max(70, size["sp_batch"]), "val": 2, "test": 2}, seed=0))["train"]
    maps = torch.from_numpy(np.array(data["maps"]))
    paths = torch.from_numpy(np.array(data["paths"], dtype=np.float64)).flatten(1)
    base = CombResnet18(*channel_stats(maps))
    rows = []
    for samples in size["samples"]:
        loss = LOSSES.build("ss_loss", samples=samples)
        generator = torch.Generator().manual_seed(samples)

        def draw(rep):
            idx = torch.randint(len(maps), (size["sp_batch"],), generator=generator)
            return maps[idx].to(device), paths[idx].to(device)

        t = interleaved(
            device,
            base,
            loss,
            loss.variants,
            0.1,
            draw,
            size["sp_reps"],
            size["warmup"],
            lambda model, m: model(m).flatten(1),
        )
        rows.append(
            {
                "loss": "ss_loss",
                "samples": samples,
                "baseline_s": t["baseline"],
                **{f"{v}_ratio": t[v] / t["baseline"] for v in t if v != "baseline"},
            }
        )
    return rows


def solver(device, size) -> list[dict]:
    rows = []
    for grids in size["grids"]:
        costs = TERRAIN[torch.randint(5, (grids, 12, 12), generator=torch.Generator().manual_seed(grids))]
        on_device = costs.to(device)

        def solve():
            shortest_paths(on_device)
            sync(device)

        solve()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            solve()
            times.append(time.perf_counter() - start)
        subset = costs[:70].numpy()
        start = time.perf_counter()
        for grid in subset:
            scipy_solve(grid)
        scipy_rate = len(subset) / (time.perf_counter() - start)
        rate = grids / statistics.median(times)
        rows.append(
            {"grids": grids, "paths_per_s": rate, "scipy_paths_per_s": scipy_rate, "speedup": rate / scipy_rate}
        )
    return rows


def train_config(device, steps, seed=0) -> dict:
    return {
        "loss": "neuralsort",
        "variant": "baseline",
        "n": 5,
        "batch_size": 4 if steps < 50 else 100,
        "steps": steps,
        "eval_every": steps,
        "eval_sets": 20,
        "seed": seed,
        "device": str(device),
    }


def run_train(config) -> tuple[float, dict]:
    reported = []
    start = time.perf_counter()
    ranking.train(config, lambda metrics, state: reported.append(metrics))
    return time.perf_counter() - start, reported[-1]


def paper_budget(device, size) -> dict:
    run_train(train_config(device, 2))  # warm-up: data loaded, kernels compiled
    wall, _ = run_train(train_config(device, size["budget_steps"]))
    rate = size["budget_steps"] / wall
    return {
        "steps": size["budget_steps"],
        "wall_s": wall,
        "steps_per_s": rate,
        "extrapolated_100k_h": 100_000 / rate / 3600,
        "paper_a6000_h": 62 / 60,
    }


def gpu_memory_by_pid() -> dict[int, float]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found = {}
    for line in out.strip().splitlines():
        pid, _, memory = line.partition(",")
        if pid.strip().isdigit() and memory.strip().replace(".", "").isdigit():
            found[int(pid)] = float(memory)
    return found


def packed_study(folder: Path, name: str, trials: int, steps: int, gpu: bool) -> list[dict]:
    """``tuner run`` a grid of ``trials`` seeds with ``resources: {gpu: 0.25}`` (CPU in smoke mode); per trial: steps/s
    from its MLflow run, and the peak GPU memory of the process it ran in."""
    study = {
        "name": name,
        "task": "ranking",
        "metric": "valid_elementwise",
        "mode": "max",
        "params": {k: v for k, v in train_config("cuda" if gpu else "cpu", steps).items() if k != "seed"},
        "grid": [{"variant": ["baseline"]}],
        "seeds": list(range(trials)),
        "resources": {"cpu": 1, "gpu": 0.25} if gpu else {"cpu": 0.5, "gpu": 0},
        "max_concurrent": trials,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    peaks: dict[int, float] = {}
    done = threading.Event()

    def poll():
        while not done.is_set():
            for pid, memory in gpu_memory_by_pid().items():
                peaks[pid] = max(peaks.get(pid, 0.0), memory)
            time.sleep(0.5)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    result = subprocess.run(
        [TUNER, "run", str(path), "--storage", str(folder / "store")], capture_output=True, text=True, timeout=900
    )
    done.set()
    poller.join()
    if result.returncode != 0:
        raise RuntimeError(f"tuner run {name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    from mlflow.tracking import MlflowClient

    state = json.loads((folder / "store" / name / "study.json").read_text())
    client = MlflowClient(state["mlflow_uri"])
    runs = [r for r in client.search_runs([state["experiment_id"]]) if "trial_id" in r.data.tags]
    rows = []
    for run in runs:
        seconds = run.data.metrics["time_loss"] + run.data.metrics["time_network"] + run.data.metrics["time_data"]
        rows.append({"seed": int(run.data.params["seed"]), "steps_per_s": steps / seconds})
    memories = sorted(peaks.values(), reverse=True)[:trials]  # the trial processes are the largest users
    return {"trials": sorted(rows, key=lambda r: r["seed"]), "peak_gpu_mb_per_process": memories}


def packing(device, size, folder: Path) -> dict:
    gpu = device.type == "cuda"
    alone = packed_study(folder, "alone", 1, size["pack_steps"], gpu)
    four = packed_study(folder, "packed", 4, size["pack_steps"], gpu)
    speed_alone = alone["trials"][0]["steps_per_s"]
    return {
        "alone": alone,
        "packed": four,
        "packed_speed_vs_alone": [t["steps_per_s"] / speed_alone for t in four["trials"]],
        "aggregate_throughput_vs_alone": sum(t["steps_per_s"] for t in four["trials"]) / speed_alone,
    }


def determinism(device, size) -> dict:
    config = train_config(device, size["det_steps"], seed=3)
    first_s, first = run_train(config)
    second_s, second = run_train(config)
    keys = [k for k in first if not k.startswith("time_")]
    differing = [k for k in keys if first[k] != second[k]]
    cost = None
    if device.type == "cuda":  # the same run with PyTorch's default (non-deterministic) algorithms
        os.environ["NEWTON_CUDA_DETERMINISTIC"] = "0"
        torch.use_deterministic_algorithms(False)
        free_s, _ = run_train(config)
        cost = {"deterministic_s": statistics.median([first_s, second_s]), "default_s": free_s}
    return {
        "steps": size["det_steps"],
        "compared": keys,
        "differing": differing,
        "identical": not differing,
        "cost": cost,
    }


def markdown(result: dict) -> str:
    lines = [
        f"# GPU check: {result['device']}",
        "",
        f"torch {result['torch']}, CUDA {result['cuda']}, "
        f"{'smoke sizes' if result['smoke'] else 'full sizes'}, {result['seconds']:.0f} s in all",
        "",
    ]
    if "ranking_steps" in result:
        lines += ["| loss | n | baseline step | fisher / baseline | hessian / baseline |", "|---|---|---|---|---|"]
        lines += [
            f"| {r['loss']} | {r['n']} | {1000 * r['baseline_s']:.1f} ms | {r['fisher_ratio']:.2f}x | "
            f"{r['hessian_ratio']:.2f}x |"
            for r in result["ranking_steps"]
        ] + [""]
    if "shortest_path_steps" in result:
        lines += ["| ss_loss samples | baseline step | hessian / baseline | fisher / baseline |", "|---|---|---|---|"]
        lines += [
            f"| {r['samples']} | {1000 * r['baseline_s']:.1f} ms | {r.get('hessian_ratio', 0):.2f}x | "
            f"{r.get('fisher_ratio', 0):.2f}x |"
            for r in result["shortest_path_steps"]
        ] + [""]
    if "solver" in result:
        lines += [
            "| grids | shortest_paths on the device (paths/s) | scipy per graph on the host | speed-up |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['grids']} | {r['paths_per_s']:,.0f} | {r['scipy_paths_per_s']:,.0f} | {r['speedup']:.1f}x |"
            for r in result["solver"]
        ] + [""]
    if "paper_budget" in result:
        b = result["paper_budget"]
        lines += [
            f"Paper budget (NeuralSort n = 5, batch 100): {b['steps_per_s']:.1f} steps/s over {b['steps']} "
            f"steps, so 100 000 steps take {b['extrapolated_100k_h']:.2f} h (paper, A6000: 1.03 h).",
            "",
        ]
    if "packing" in result:
        p = result["packing"]
        speeds = ", ".join(f"{s:.2f}x" for s in p["packed_speed_vs_alone"])
        memory = (
            ", ".join(f"{m:.0f} MB" for m in p["packed"]["peak_gpu_mb_per_process"]) or "not measured (no nvidia-smi)"
        )
        lines += [
            f"Packing 4 trials with gpu: 0.25: each at {speeds} of one trial alone (aggregate "
            f"{p['aggregate_throughput_vs_alone']:.2f}x); peak GPU memory per trial process: {memory}.",
            "",
        ]
    if "determinism" in result:
        d = result["determinism"]
        verdict = "identical" if d["identical"] else f"DIFFERENT in {', '.join(d['differing'])}"
        cost = (
            f"; deterministic algorithms {d['cost']['deterministic_s']:.1f} s vs default {d['cost']['default_s']:.1f} s"
            if d["cost"]
            else ""
        )
        lines += [f"Determinism: two runs of {d['steps']} steps gave {verdict} metrics{cost}.", ""]
    if result.get("errors"):
        lines += ["Sections that failed:", ""] + [f"- {name}: {error}" for name, error in result["errors"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on whatever device; for tests")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    size = SMOKE if args.smoke else FULL
    device = pick_device(args.device)  # on CUDA: deterministic settings, set before anything here uses cuBLAS
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "studies"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    started = time.time()
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.machine()})",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "smoke": args.smoke,
        "errors": {},
    }
    sections = [
        ("ranking_steps", lambda: ranking_steps(device, size)),
        ("shortest_path_steps", lambda: shortest_path_steps(device, size)),
        ("solver", lambda: solver(device, size)),
        ("paper_budget", lambda: paper_budget(device, size)),
        ("packing", lambda: packing(device, size, work)),
        ("determinism", lambda: determinism(device, size)),
    ]
    for name, measure in sections:
        section_start = time.time()
        try:
            result[name] = measure()
        except Exception as error:  # one failed section must not cost the others' figures on scarce GPU time
            result["errors"][name] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        print(
            f"[{name}] {time.time() - section_start:.0f} s{' FAILED' if name in result['errors'] else ''}", flush=True
        )
        result["seconds"] = time.time() - started
        (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2))
        (args.out / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
