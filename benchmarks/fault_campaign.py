"""Fault campaign: SIGKILL the driver's process group K times at random moments, ``tuner resume`` after each, and
count what the study looks like at the end (issue 12).

The study: a grid (2 settings x 2 seeds), an Optuna search (4 trials) and its replication (2 seeds), of short
ranking trials (STEPS steps, an evaluation every EVAL steps). Each kill lands at a random moment once the driver
has run ``--min-wait`` seconds and logged a new evaluation (so every attempt makes progress and the kills spread
over the phases), a uniform 0 to ``--max-wait`` minus ``--min-wait`` seconds later; after the K-th kill,
``tuner resume`` runs to the end. Counted from the MLflow store and the machine:

- trials planned vs finished, per phase; duplicated runs (one phase + trial id twice); runs left RUNNING or
  FAILED; orphaned runs (a trial the killed driver had started but Tune had not saved: closed as KILLED, tagged,
  and replaced by the restored search);
- metric histories with a missing or a repeated evaluation step;
- the search's Optuna storage: trials left RUNNING, finished search runs not told to Optuna, runs told twice,
  COMPLETE trials without a finished run, and the FAIL trials of orphaned runs;
- Ray processes left on the machine after the campaign (raylet, gcs_server, ray:: workers).

    python benchmarks/fault_campaign.py [--kills 10] [--seed 0] [--out DIR]

Prints a Markdown table and writes ``campaign.json``. Exit code 1 when anything is off, so a test can run a short
version (``--kills 2``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
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

STEPS, EVAL = 150, 15
PLANNED = {"grid": 4, "search": 4, "replicate": 2}
TUNER = str(Path(sys.executable).parent / "tuner")


def study_file(folder: Path) -> Path:
    study = {
        "name": "campaign", "task": "ranking", "metric": "valid_elementwise", "mode": "max",
        "params": {"n": 3, "loss": "neuralsort", "steps": STEPS, "batch_size": 4, "eval_every": EVAL, "eval_sets": 6},
        "grid": [{"variant": ["baseline"]}, {"variant": ["hessian"], "lam": [0.1]}],
        "seeds": [0, 1],
        "search": {"trials": PLANNED["search"], "fixed": {"variant": "fisher"}, "space": {"lam": {"log": [0.01, 100]}},
                   "sampler_seed": 0, "replicate": True},
        "resources": {"cpu": 1}, "max_concurrent": 2, "max_failures": 1,
    }
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def ray_processes() -> list[str]:
    """Ray's processes on this machine (raylet, GCS, workers, dashboard), as ``ps`` shows them."""
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()[1:]
    marks = ("raylet", "gcs_server", "ray::", "ray/dashboard", "log_monitor.py", "monitor.py --logs-dir")
    return [line.strip() for line in listing if any(mark in line for mark in marks)]


def run_campaign(kills: int, seed: int, folder: Path, min_wait: float, max_wait: float) -> dict:
    rng = random.Random(seed)
    path, store = study_file(folder), folder / "store"
    before = set(ray_processes())
    log = []
    for attempt in range(kills + 1):
        command = [TUNER, "run", str(path)] if attempt == 0 else [TUNER, "resume", "campaign"]
        driver = subprocess.Popen([*command, "--storage", str(store)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
        if attempt < kills:
            waited = wait_for_kill(driver, store, rng, min_wait, max_wait)
            if waited is None:
                driver.wait()
                log.append({"attempt": attempt, "killed": False, "exit": driver.returncode})
                if driver.returncode == 0:
                    break  # the study finished before this kill
                continue
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
            log.append({"attempt": attempt, "killed": True, "after_s": round(waited, 1), "in": phase_running(store)})
        else:
            _, err = driver.communicate(timeout=1800)
            log.append({"attempt": attempt, "killed": False, "exit": driver.returncode,
                        "stderr": err.strip().splitlines()[-1:] if driver.returncode else []})
    time.sleep(5)  # let Ray's processes of the last driver exit
    counts = count(store)
    counts["kills"] = sum(entry["killed"] for entry in log)
    counts["kills_per_phase"] = dict(Counter(entry["in"] for entry in log if entry["killed"]))
    counts["ray_processes_left"] = len(set(ray_processes()) - before)
    counts["log"] = log
    return counts


def wait_for_kill(driver: subprocess.Popen, store: Path, rng: random.Random, min_wait: float,
                  max_wait: float) -> float | None:
    """Wait for the moment of a kill: at least ``min_wait`` s, and until this driver has logged a new evaluation
    (so that every attempt makes progress and the kills spread over the phases; a resume spends its first ~15 s
    starting Ray), then a uniformly random 0 to ``max_wait - min_wait`` s more. Returns the seconds waited, or
    None when the driver exits first."""
    started, seen = time.time(), evaluations(store)
    while time.time() - started < min_wait or evaluations(store) <= seen:
        if driver.poll() is not None:
            return None
        time.sleep(0.5)
    try:
        driver.wait(timeout=rng.uniform(0, max_wait - min_wait))
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
    state_file = store / "campaign" / "study.json"
    if not state_file.exists():
        return "setup"
    phases = json.loads(state_file.read_text())["phases"]
    return next((phase for phase, status in phases.items() if status == "started"), "between phases")


def count(store: Path) -> dict:
    state = json.loads((store / "campaign" / "study.json").read_text())
    client = MlflowClient(state["mlflow_uri"])
    runs = client.search_runs([state["experiment_id"]], "tags.role = 'trial'", max_results=1000)
    keys = Counter((r.data.tags["phase"], r.data.tags["trial_id"]) for r in runs)
    finished = Counter(r.data.tags["phase"] for r in runs if r.info.status == "FINISHED")
    expected = list(range(EVAL, STEPS + 1, EVAL))
    bad_history = 0
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "valid_elementwise")]
        bad_history += sorted(steps) != expected
    return {"planned": PLANNED, "finished": dict(finished), "runs": len(runs), "optuna": optuna_counts(state, runs),
            "duplicated_runs": sum(n - 1 for n in keys.values() if n > 1),
            "runs_left_running": sum(r.info.status == "RUNNING" for r in runs),
            "runs_failed": sum(r.info.status == "FAILED" for r in runs),
            "orphaned_runs": sum("orphaned" in r.data.tags for r in runs),
            "histories_with_missing_or_repeated_steps": bad_history,
            "phases_done": state["phases"], "study_failed_trials": state.get("failed")}


def optuna_counts(state: dict, runs: list) -> dict:
    """The search's Optuna study against its MLflow runs: one COMPLETE trial per finished search run, nothing else."""
    trials = optuna.load_study(study_name=state["optuna_study"], storage=state["optuna_storage"]).trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    told = Counter(t.user_attrs.get("mlflow_run_id") for t in complete)
    finished = {r.info.run_id for r in runs if r.data.tags["phase"] == "search" and r.info.status == "FINISHED"}
    return {"complete": len(complete), "left_running": sum(t.state == optuna.trial.TrialState.RUNNING for t in trials),
            "orphaned_failed": sum(bool(t.user_attrs.get("orphaned")) for t in trials),
            "finished_runs_not_told": len(finished - set(told)), "runs_told_twice": sum(n - 1 for n in told.values() if n > 1),
            "complete_without_a_finished_run": sum(run_id not in finished for run_id in told)}


def healthy(counts: dict) -> bool:
    told = counts["optuna"]
    return (counts["finished"] == counts["planned"] and counts["duplicated_runs"] == 0
            and told["complete"] == PLANNED["search"] and told["left_running"] == 0
            and told["finished_runs_not_told"] == told["runs_told_twice"] == told["complete_without_a_finished_run"] == 0
            and counts["runs_left_running"] == 0 and counts["runs_failed"] == 0
            and counts["histories_with_missing_or_repeated_steps"] == 0
            and counts["ray_processes_left"] == 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-wait", type=float, default=10.0,
                        help="earliest kill, seconds after a driver starts (and not before it logged a new evaluation)")
    parser.add_argument("--max-wait", type=float, default=30.0,
                        help="min-wait + the longest random delay after that first new evaluation")
    parser.add_argument("--out", type=Path, default=None, help="folder for the study and campaign.json")
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="fault-campaign-"))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time()
    counts = run_campaign(args.kills, args.seed, folder, args.min_wait, args.max_wait)
    counts["wall_s"] = round(time.time() - started)
    (folder / "campaign.json").write_text(json.dumps(counts, indent=2))
    print("| kills | trials planned | trials finished | duplicated runs | runs left RUNNING | runs FAILED | orphaned "
          "runs (KILLED, replaced) | histories with a missing/repeated step | Ray processes left | wall time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {counts['kills']} | {sum(PLANNED.values())} | {sum(counts['finished'].values())} | "
          f"{counts['duplicated_runs']} | {counts['runs_left_running']} | {counts['runs_failed']} | "
          f"{counts['orphaned_runs']} | "
          f"{counts['histories_with_missing_or_repeated_steps']} | {counts['ray_processes_left']} | "
          f"{counts['wall_s']} s |")
    told = counts["optuna"]
    print(f"Optuna storage: {told['complete']} COMPLETE trials of {PLANNED['search']} searched, {told['left_running']} "
          f"left RUNNING, {told['finished_runs_not_told']} finished runs not told, {told['runs_told_twice']} told "
          f"twice, {told['complete_without_a_finished_run']} COMPLETE without a finished run, "
          f"{told['orphaned_failed']} orphaned (FAIL)")
    print(f"kills per phase: {counts['kills_per_phase']}; details: {folder / 'campaign.json'}")
    return 0 if healthy(counts) else 1


if __name__ == "__main__":
    sys.exit(main())
