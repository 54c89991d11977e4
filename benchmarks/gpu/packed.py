"""Trials packed on one device, each the real ``tasks.ranking.train`` in its own process (``trial.py``).

``packing``: one trial alone, then several at once, each over the same fixed window after a common start (every
trial warmed up and at its first report): steps/s of each against the one alone, and the peak GPU memory each
process allocated. ``reproduction``: the paper's protocol for NeuralSort at n = 5 (batch 100, the SPEC 2 CNN,
λ from Table 4: Hessian 0.01, Fisher 0.1), baseline vs NL Fisher vs NL Hessian on a few seeds, all at once, for as
long as the budget allows; per variant and seed the steps reached and the valid/test accuracies over steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .budget import Section

BENCHMARKS = Path(__file__).resolve().parents[1]  # the trials run ``python -m gpu.trial`` from there
STOP_MARGIN_S = 8.0  # trials stop this long before the budget: 2 s to stop them, the rest to read their results
REPRODUCTION_LAMS = {"baseline": None, "fisher": 0.1, "hessian": 0.01}  # NeuralSort, n = 5: the paper's Table 4
SUMMARY_KEYS = ("finished", "stopped", "error", "steps", "steps_in_window", "window_s", "steps_per_s")
MEMORY_KEYS = ("peak_allocated_mb", "peak_reserved_mb")


@dataclass
class Running:
    """A started trial process and its files."""

    name: str
    process: subprocess.Popen
    ready: Path
    out: Path
    log: Path
    stopped: bool = False


def start(name: str, config: dict, window_s: float, wait_s: float, folder: Path, threads: int) -> Running:
    """Start ``python -m gpu.trial`` (from benchmarks/) on a ranking config, its output to a log file."""
    paths = {key: folder / f"{name}.{key}" for key in ("spec", "ready", "out", "log")}
    spec = {"task": "ranking", "config": config, "window_s": window_s, "wait_s": wait_s, "go": str(folder / "go")}
    spec.update({key: str(paths[key]) for key in ("ready", "out")})
    paths["spec"].write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    with open(paths["log"], "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gpu.trial", str(paths["spec"])],
            cwd=BENCHMARKS,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Running(name, process, paths["ready"], paths["out"], paths["log"])


def threads_each(trials: int) -> int:
    """CPU threads per trial process when ``trials`` share the machine (OMP_NUM_THREADS)."""
    return max(1, (os.cpu_count() or 1) // trials)


def run_together(configs: dict[str, dict], window_s: float, section: Section, threads: int) -> dict[str, dict]:
    """Run one trial per config at once; say go when all are ready (or dead); wait for them within the budget.

    Returns each trial's result (``trial.py``), with ``stopped`` (ended by this budget) and ``error`` (a trial that
    failed: its exit code and its log's last line); the trials' warnings go to the section's record."""
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        folder = Path(tmp)
        wait_s = max(section.left() - STOP_MARGIN_S, 1.0)
        trials = [start(name, config, window_s, wait_s, folder, threads) for name, config in configs.items()]
        try:
            _wait(lambda: all(t.ready.exists() or t.process.poll() is not None for t in trials), section)
            (folder / "go").write_text(str(time.time()))
            _wait(lambda: all(t.process.poll() is not None for t in trials), section)
        finally:
            stop_trials(trials)
        results = {trial.name: trial_result(trial) for trial in trials}
    for result in results.values():
        section.child_warnings.update(result.pop("warnings", {}))
    return results


def _wait(done, section: Section) -> None:
    while not done() and section.left() > STOP_MARGIN_S:
        time.sleep(0.05)


def stop_trials(trials: list[Running]) -> None:
    """End the trials still running: SIGTERM to all, then SIGKILL to any still there 2 s later."""
    running = [trial for trial in trials if trial.process.poll() is None]
    for trial in running:
        trial.stopped = True
        trial.process.terminate()
    deadline = time.monotonic() + 2.0
    for trial in running:
        try:
            trial.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            trial.process.kill()
            trial.process.wait()


def trial_result(trial: Running) -> dict:
    result = json.loads(trial.out.read_text()) if trial.out.exists() else {"finished": False, "steps": 0, "curve": []}
    result["stopped"] = trial.stopped
    failed = trial.process.returncode != 0 and not trial.stopped
    lines = trial.log.read_text(errors="replace").strip().splitlines() if trial.log.exists() else []
    result["error"] = f"exit code {trial.process.returncode}: {lines[-1] if lines else ''}" if failed else None
    return result


def summary(result: dict) -> dict:
    """A trial's figures without its curve."""
    return {key: result.get(key) for key in SUMMARY_KEYS + MEMORY_KEYS}


def ranking_config(size: dict, device: torch.device, prefix: str) -> dict:
    """NeuralSort at n = 5 for an open-ended run (the window ends it); ``prefix`` picks the section's sizes."""
    config = {
        "loss": "neuralsort",
        "n": 5,
        "batch_size": size[f"{prefix}_batch"],
        "steps": 10**9,
        "eval_every": size[f"{prefix}_eval_every"],
        "device": str(device),
    }
    if size[f"{prefix}_eval_sets"] is not None:
        config["eval_sets"] = size[f"{prefix}_eval_sets"]
    return config


def packing(section: Section, size: dict, device: torch.device) -> None:
    """One trial alone, then ``size['pack_trials']`` at once, each over ``size['pack_window_s']`` and with the same
    CPU threads (the machine's share of one packed trial)."""
    config = {**ranking_config(size, device, "pack"), "variant": "baseline"}
    window, threads = size["pack_window_s"], threads_each(size["pack_trials"])
    figures = section.figures = {"config": config, "window_s": window, "trials": size["pack_trials"]}
    figures["threads_per_trial"] = threads
    figures["memory"] = (
        "torch.cuda.max_memory_allocated (and _reserved) in each trial's own process"
        if device.type == "cuda"
        else f"not measured: GPU memory, and this run is on {device.type}"
    )
    alone = run_together({"alone": {**config, "seed": 0}}, window, section, threads)["alone"]
    figures["alone"] = summary(alone)
    configs = {f"seed{s}": {**config, "seed": s} for s in range(size["pack_trials"])}
    packed = run_together(configs, window, section, threads)
    figures["packed"] = [{"seed": s, **summary(r)} for s, r in enumerate(packed.values())]
    rates = [r["steps_per_s"] or 0.0 for r in packed.values()]
    if alone.get("steps_per_s"):
        figures["paper_100k_steps_h"] = 100_000 / alone["steps_per_s"] / 3600  # the paper's budget, one trial alone
        figures["speed_vs_alone"] = [rate / alone["steps_per_s"] for rate in rates]
        figures["aggregate_vs_alone"] = sum(rates) / alone["steps_per_s"]


def reproduction(section: Section, size: dict, device: torch.device) -> None:
    """Baseline vs NL Fisher vs NL Hessian (NeuralSort, n = 5), ``size['repro_seeds']`` each, all at once."""
    base = ranking_config(size, device, "repro")
    window = min(size["repro_window_s"], section.left() - size["repro_reserve_s"])
    configs = {
        f"{variant}-seed{seed}": {**base, "variant": variant, "lam": lam, "seed": seed}
        for variant, lam in REPRODUCTION_LAMS.items()
        for seed in size["repro_seeds"]
    }
    figures = section.figures = {
        "protocol": {**base, "lams": REPRODUCTION_LAMS, "seeds": size["repro_seeds"], "window_s": window},
    }
    results = run_together(configs, window, section, threads_each(len(configs)))
    figures["trials"] = {
        variant: {str(seed): results[f"{variant}-seed{seed}"] for seed in size["repro_seeds"]}
        for variant in REPRODUCTION_LAMS
    }
    figures["at_common_step"] = at_common_step(figures["trials"])


def at_common_step(trials: dict[str, dict[str, dict]]) -> dict | None:
    """Mean over seeds, per variant, of the metrics at the last step that every trial reported (None if none)."""
    curves = [result["curve"] for seeds in trials.values() for result in seeds.values()]
    if not curves or not all(curves):
        return None
    common = min(curve[-1]["step"] for curve in curves)
    out = {"step": common, "variants": {}}
    for variant, seeds in trials.items():
        points = [next(p for p in result["curve"] if p["step"] == common) for result in seeds.values()]
        keys = [k for k in points[0] if k not in ("step", "seconds")]
        out["variants"][variant] = {k: sum(p[k] for p in points) / len(points) for k in keys}
    return out
