"""Fault campaign: SIGKILL the driver's process group K times at random moments, ``tuner resume`` after each, and
count what the study looks like at the end (issue 12).

The study: a grid (2 settings x 2 seeds), an Optuna search (4 trials) and its replication (2 seeds), of short
ranking trials (STEPS steps, an evaluation every EVAL steps). Each kill lands in one of three windows, drawn at
random (or given with ``--windows``):

- ``restore``: before the driver logged anything new, a uniform 1 to ``--min-wait`` seconds after it started:
  while ``tuner resume`` starts Ray, restores Tune's state and the Optuna searcher, and replays trials that
  finished before the last kill (the window where a second kill once made a search unresumable);
- ``first``: 0 to 2 s after the driver's first new evaluation: the first seconds after a restore;
- ``later``: once the driver has run ``--min-wait`` s and logged a new evaluation, a uniform 0 to
  ``--max-wait`` minus ``--min-wait`` s more (every such attempt makes progress, so kills spread over the phases).

A ``restore`` kill makes no progress, so it is never drawn twice in a row. After the K-th kill ``tuner resume``
runs to the end. An attempt that ends with an error without being killed is a *crash*: counted, with its last
line of stderr, and the campaign is unhealthy. Counted from the MLflow store and the machine:

- trials planned vs finished, per phase; duplicated runs (one phase + trial id twice); runs left RUNNING or
  FAILED; orphaned runs (a trial the killed driver had started but Tune had not saved: closed as KILLED, tagged,
  and replaced by the restored search);
- metric histories with a missing or a repeated evaluation step;
- the search's Optuna storage: trials left RUNNING, finished search runs not told to Optuna, runs told twice,
  COMPLETE trials without a finished run, COMPLETE trials whose value differs from their run's final metric, and
  the FAIL trials of orphaned runs;
- Ray processes left on the machine after the campaign (raylet, gcs_server, ray:: workers).

    python benchmarks/fault_campaign.py [--kills 10] [--seed 0] [--windows restore,first,later] [--out DIR]

Prints a Markdown table and writes ``campaign.json``. Exit code 1 when anything is off, so a test can run a short
version (``--kills 2``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
import yaml
from mlflow.tracking import MlflowClient

from tuner.state import load_state

STEPS, EVAL = 150, 15
PLANNED = {"grid": 4, "search": 4, "replicate": 2}
TUNER = str(Path(sys.executable).parent / "tuner")
WINDOWS = ("restore", "first", "later")


def study_file(folder: Path) -> Path:
    study = {
        "name": "campaign",
        "task": "ranking",
        "metric": "valid_elementwise",
        "mode": "max",
        "params": {"n": 3, "loss": "neuralsort", "steps": STEPS, "batch_size": 4, "eval_every": EVAL, "eval_sets": 6},
        "grid": [{"variant": ["baseline"]}, {"variant": ["hessian"], "lam": [0.1]}],
        "seeds": [0, 1],
        "search": {
            "trials": PLANNED["search"],
            "fixed": {"variant": "fisher"},
            "space": {"lam": {"log": [0.01, 100]}},
            "sampler_seed": 0,
            "replicate": True,
        },
        "resources": {"cpu": 1},
        "max_concurrent": 2,
        "max_failures": 1,
    }
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def ray_processes(ray_tmpdir: str) -> list[str]:
    """The campaign's Ray processes on this machine (raylet, GCS, workers, dashboard), as ``ps`` shows them: those
    whose environment holds the campaign's own ``RAY_TMPDIR`` (every driver of the campaign gets it, and the Ray it
    starts passes it on), so another Ray on the machine, another test's, is not counted."""
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()[1:]
    marks = ("raylet", "gcs_server", "ray::", "ray/dashboard", "log_monitor.py", "monitor.py --logs-dir")
    mine = f"RAY_TMPDIR={ray_tmpdir}".encode()
    found = []
    for line in listing:
        pid = line.split(None, 1)[0]
        if any(mark in line for mark in marks):
            try:
                environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue  # gone, or not ours to read
            if mine in environment:
                found.append(line.strip())
    return found


def run_campaign(
    kills: int, seed: int, folder: Path, min_wait: float, max_wait: float, windows: list[str] | None = None
) -> dict:
    rng = random.Random(seed)
    path, store = study_file(folder), folder / "store"
    ray_tmpdir = tempfile.mkdtemp(prefix="fc", dir="/tmp")  # short: Ray's socket paths live there
    environment = {**os.environ, "RAY_TMPDIR": ray_tmpdir}
    log, previous = [], None
    for attempt in range(kills + 1):
        command = [TUNER, "run", str(path)] if attempt == 0 else [TUNER, "resume", "campaign"]
        driver = subprocess.Popen(
            [*command, "--storage", str(store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=environment,
        )
        if attempt < kills:
            window = (
                windows[attempt % len(windows)]
                if windows
                else rng.choice([w for w in WINDOWS if not (w == "restore" == previous)])
            )
            previous = window
            waited = wait_for_kill(driver, store, rng, window, min_wait, max_wait)
            if waited is None:
                _, err = driver.communicate()
                log.append(
                    {
                        "attempt": attempt,
                        "killed": False,
                        "window": window,
                        "exit": driver.returncode,
                        "stderr": err.strip().splitlines()[-1:] if driver.returncode else [],
                    }
                )
                if driver.returncode == 0:
                    break  # the study finished before this kill
                continue
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
            log.append(
                {
                    "attempt": attempt,
                    "killed": True,
                    "window": window,
                    "after_s": round(waited, 1),
                    "in": phase_running(store),
                }
            )
        else:
            _, err = driver.communicate(timeout=1800)
            log.append(
                {
                    "attempt": attempt,
                    "killed": False,
                    "exit": driver.returncode,
                    "stderr": err.strip().splitlines()[-1:] if driver.returncode else [],
                }
            )
    time.sleep(5)  # let Ray's processes of the last driver exit
    counts = count(store)
    counts["kills"] = sum(entry["killed"] for entry in log)
    counts["kills_per_phase"] = dict(Counter(entry["in"] for entry in log if entry["killed"]))
    counts["kills_per_window"] = dict(Counter(entry["window"] for entry in log if entry["killed"]))
    counts["crashes"] = [entry for entry in log if not entry["killed"] and entry["exit"] != 0]
    counts["ray_processes_left"] = len(ray_processes(ray_tmpdir))
    shutil.rmtree(ray_tmpdir, ignore_errors=True)
    counts["log"] = log
    return counts


def wait_for_kill(
    driver: subprocess.Popen, store: Path, rng: random.Random, window: str, min_wait: float, max_wait: float
) -> float | None:
    """Wait for the moment of a kill in ``window`` (module docstring). Returns the seconds waited, or None when
    the driver exits first."""
    started, seen = time.time(), evaluations(store)
    if window == "restore":
        deadline = started + rng.uniform(1.0, min_wait)
        while time.time() < deadline:
            if driver.poll() is not None:
                return None
            if evaluations(store) > seen:
                break  # it got past the restore window early: kill now
            time.sleep(0.1)
        return time.time() - started
    while (window == "later" and time.time() - started < min_wait) or evaluations(store) <= seen:
        if driver.poll() is not None:
            return None
        time.sleep(0.2 if window == "first" else 0.5)
    delay = rng.uniform(0, 2.0) if window == "first" else rng.uniform(0, max_wait - min_wait)
    try:
        driver.wait(timeout=delay)
        return None
    except subprocess.TimeoutExpired:
        return time.time() - started


def evaluations(store: Path) -> int:
    """Evaluation points logged so far, read from the study's SQLite tracking store (read-only)."""
    database = store / "campaign" / "mlflow.db"
    if not database.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as connection:
            return connection.execute("select count(*) from metrics where key = 'valid_elementwise'").fetchone()[0]
    except sqlite3.Error:
        return 0


def phase_running(store: Path) -> str:
    """The phase the study was in when the driver died."""
    if not (store / "campaign" / "study.json").exists():
        return "setup"
    phases = load_state(store / "campaign").phases
    return next((phase for phase, status in phases.items() if status == "started"), "between phases")


def count(store: Path) -> dict:
    state = load_state(store / "campaign")
    client = MlflowClient(state.mlflow_uri)
    runs = client.search_runs(
        [state.experiment_id],
        f"tags.mlflow.parentRunId = '{state.execution_id}' and tags.role = 'trial'",
        max_results=1000,
    )
    keys = Counter((r.data.tags["phase"], r.data.tags["trial_id"]) for r in runs)
    finished = Counter(r.data.tags["phase"] for r in runs if r.info.status == "FINISHED")
    expected = list(range(EVAL, STEPS + 1, EVAL))
    bad_history = 0
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "valid_elementwise")]
        bad_history += sorted(steps) != expected
    return {
        "planned": PLANNED,
        "finished": dict(finished),
        "runs": len(runs),
        "optuna": optuna_counts(state, runs),
        "duplicated_runs": sum(n - 1 for n in keys.values() if n > 1),
        "runs_left_running": sum(r.info.status == "RUNNING" for r in runs),
        "runs_failed": sum(r.info.status == "FAILED" for r in runs),
        "orphaned_runs": sum("orphaned" in r.data.tags for r in runs),
        "histories_with_missing_or_repeated_steps": bad_history,
        "phases_done": dict(state.phases),
        "study_failed_trials": dict(state.failed),
    }


def optuna_counts(state, runs: list) -> dict:
    """The search's Optuna study against its MLflow runs: one COMPLETE trial per finished search run, with that
    run's final value of the objective, and nothing else."""
    trials = optuna.load_study(study_name=state.optuna.study, storage=state.optuna.url).trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    told = Counter(t.user_attrs.get("mlflow_run_id") for t in complete)
    finished = {r.info.run_id: r for r in runs if r.data.tags["phase"] == "search" and r.info.status == "FINISHED"}
    metric = state.study.primary.metric
    other_value = sum(
        t.value != finished[t.user_attrs["mlflow_run_id"]].data.metrics.get(metric)
        for t in complete
        if t.user_attrs.get("mlflow_run_id") in finished
    )
    return {
        "complete": len(complete),
        "left_running": sum(t.state == optuna.trial.TrialState.RUNNING for t in trials),
        "orphaned_failed": sum(bool(t.user_attrs.get("orphaned")) for t in trials),
        "finished_runs_not_told": len(set(finished) - set(told)),
        "runs_told_twice": sum(n - 1 for n in told.values() if n > 1),
        "complete_without_a_finished_run": sum(run_id not in finished for run_id in told),
        "values_differing_from_mlflow": other_value,
    }


def healthy(counts: dict) -> bool:
    told = counts["optuna"]
    return (
        counts["finished"] == counts["planned"]
        and counts["duplicated_runs"] == 0
        and told["complete"] == PLANNED["search"]
        and told["left_running"] == 0
        and told["finished_runs_not_told"] == told["runs_told_twice"] == told["complete_without_a_finished_run"] == 0
        and told["values_differing_from_mlflow"] == 0
        and not counts["crashes"]
        and counts["runs_left_running"] == 0
        and counts["runs_failed"] == 0
        and counts["histories_with_missing_or_repeated_steps"] == 0
        and counts["ray_processes_left"] == 0
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--min-wait",
        type=float,
        default=10.0,
        help="earliest kill, seconds after a driver starts (and not before it logged a new evaluation)",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=30.0,
        help="min-wait + the longest random delay after that first new evaluation",
    )
    parser.add_argument(
        "--windows",
        default=None,
        help=f"comma-separated kill windows used in turn ({', '.join(WINDOWS)}); default: drawn",
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for the study and campaign.json")
    args = parser.parse_args()
    windows = args.windows.split(",") if args.windows else None
    if windows and not set(windows) <= set(WINDOWS):
        parser.error(f"--windows: each of {', '.join(WINDOWS)}")
    folder = args.out or Path(tempfile.mkdtemp(prefix="fault-campaign-"))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time()
    counts = run_campaign(args.kills, args.seed, folder, args.min_wait, args.max_wait, windows)
    counts["wall_s"] = round(time.time() - started)
    (folder / "campaign.json").write_text(json.dumps(counts, indent=2))
    print(
        "| kills | crashes | trials planned | trials finished | duplicated runs | runs left RUNNING | runs FAILED | "
        "orphaned runs (KILLED, replaced) | histories with a missing/repeated step | Ray processes left | wall time |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {counts['kills']} | {len(counts['crashes'])} | {sum(PLANNED.values())} | "
        f"{sum(counts['finished'].values())} | "
        f"{counts['duplicated_runs']} | {counts['runs_left_running']} | {counts['runs_failed']} | "
        f"{counts['orphaned_runs']} | "
        f"{counts['histories_with_missing_or_repeated_steps']} | {counts['ray_processes_left']} | "
        f"{counts['wall_s']} s |"
    )
    told = counts["optuna"]
    print(
        f"Optuna storage: {told['complete']} COMPLETE trials of {PLANNED['search']} searched, {told['left_running']} "
        f"left RUNNING, {told['finished_runs_not_told']} finished runs not told, {told['runs_told_twice']} told "
        f"twice, {told['complete_without_a_finished_run']} COMPLETE without a finished run, "
        f"{told['values_differing_from_mlflow']} with a value other than their run's, {told['orphaned_failed']} "
        f"orphaned (FAIL)"
    )
    print(
        f"kills per phase: {counts['kills_per_phase']}; per window: {counts['kills_per_window']}; "
        f"crashes: {counts['crashes']}; details: {folder / 'campaign.json'}"
    )
    return 0 if healthy(counts) else 1


if __name__ == "__main__":
    sys.exit(main())
