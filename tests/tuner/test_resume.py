"""``tuner resume`` after the driver was SIGKILLed: nothing lost, nothing run or logged twice."""

import os
import shutil
import signal
import subprocess
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tuner.state import load_state

from .helpers import TINY_PARAMS, TUNER, run_tuner, tiny_study

pytestmark = pytest.mark.slow

PLANNED = {"grid": 4, "search": 3, "replicate": 2}


def last_step(store, run):
    uri = load_state(store / "slow").mlflow_uri
    return max((m.step for m in MlflowClient(uri).get_metric_history(run.info.run_id, "train_loss")), default=0)


def trial_runs(store):
    state_file = store / "slow" / "study.json"
    if not state_file.exists():
        return []
    state = load_state(state_file.parent)
    runs = MlflowClient(state.mlflow_uri).search_runs([state.experiment_id], "tags.role = 'trial'", max_results=100)
    return runs


def run_and_kill_when(command, store, ready, never: str) -> None:
    """``tuner`` ``command`` (``["run", path]`` or ``["resume", name]``) on the store, and SIGKILL the driver's
    process group as soon as ``ready()``."""
    driver = subprocess.Popen(
        [TUNER, *map(str, command), "--storage", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while not ready():
        assert driver.poll() is None, "the study ended before it could be killed"
        assert time.time() < deadline, never
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()


def test_two_kills_mid_trial_then_resume_finishes_every_trial_exactly_once(tmp_path):
    """The driver is SIGKILLed mid-trial in the grid phase, ``tuner resume`` is SIGKILLed mid-trial in the search
    phase (a search the resume started), and a second ``tuner resume`` finishes the study: each planned trial
    once, each evaluation step once, the interrupted trials continued from a mid-way checkpoint, the finished ones
    never trained again, and the search's Optuna storage agrees with the runs."""
    params = {**TINY_PARAMS, "steps": 360, "eval_every": 30}  # a few seconds per trial: the kill lands mid-trial
    path = tiny_study(
        tmp_path,
        name="slow",
        params=params,
        max_concurrent=2,  # a grid trial (and a search trial) finished while another runs: the kill's moment
        search={
            "trials": 3,
            "fixed": {"variant": "fisher"},
            "space": {"lam": {"log": [0.01, 100]}},
            "sampler_seed": 3,
            "replicate": True,
        },
    )
    store = tmp_path / "store"

    def finished_and_running(phase):
        # once a trial has finished and a running one is past its fourth checkpoint (step 120 of 360): between
        # its periodic saves (grids: >= 10 s apart) Tune saves its state after every second checkpoint of a trial
        # (num_to_keep = 2), so the state on disk holds a checkpoint of that trial
        def ready():
            phase_runs = [r for r in trial_runs(store) if r.data.tags["phase"] == phase]
            running = [r for r in phase_runs if r.info.status == "RUNNING"]
            return any(r.info.status == "FINISHED" for r in phase_runs) and any(
                120 <= last_step(store, r) < 330 for r in running
            )

        return ready

    def key(run):
        return run.data.tags["phase"], run.data.tags["trial_id"]

    def seen(run):  # what a kill leaves of a trial: its status and resume tags
        return run.info.status, run.data.tags.get("resumed"), run.data.tags.get("resumed_from_step")

    befores = []  # per kill: each trial as the kill left it
    for command, phase in ((["run", path], "grid"), (["resume", "slow"], "search")):
        run_and_kill_when(command, store, finished_and_running(phase), f"never a finished and a running {phase} trial")
        befores.append({key(r): seen(r) for r in trial_runs(store)})
        assert "RUNNING" in {status for status, _, _ in befores[-1].values()}

    result = run_tuner("resume", "slow", "--storage", store, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = trial_runs(store)
    counts = {phase: sum(r.data.tags["phase"] == phase for r in runs) for phase in PLANNED}
    assert counts == PLANNED
    assert len({key(r) for r in runs}) == sum(PLANNED.values())
    assert all(r.info.status == "FINISHED" for r in runs) and not any("orphaned" in r.data.tags for r in runs)
    assert "orphaned" not in result.stdout
    client = MlflowClient(load_state(store / "slow").mlflow_uri)
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
        assert sorted(steps) == list(range(30, 361, 30)), f"steps lost or logged twice in {run.info.run_name}"
    for before in befores:
        # A trial that finished just before a kill may not be in Tune's (periodic) experiment state yet: Tune then
        # starts it again, and it replays its logged result without training (its resume tag stays as it was at
        # the kill). Interrupted trials continue mid-way.
        status = {trial: seen_then[0] for trial, seen_then in before.items()}
        finished = [r for r in runs if status.get(key(r)) == "FINISHED"]
        for run in finished:  # training again would set new resume tags; a replay may only add `resumed`
            _, resumed, from_step = before[key(run)]
            assert run.data.tags.get("resumed_from_step") == from_step, f"{run.info.run_name} was trained again"
            assert run.data.tags.get("resumed") == resumed or run.data.tags.get("replayed") == "true"
        assert finished
        continued = [r for r in runs if status.get(key(r)) == "RUNNING"]
        assert continued and all(r.data.tags.get("resumed") == "true" for r in continued)
        assert any(0 < int(r.data.tags.get("resumed_from_step", 0)) < 360 for r in continued), (
            "no interrupted trial continued from a mid-way checkpoint"
        )
    # the search's Optuna study (its RDB storage) agrees: one COMPLETE trial per searched run, none left running
    state = load_state(store / "slow")
    stored = optuna.load_study(study_name=state.optuna.study, storage=state.optuna.url).trials
    complete = [t for t in stored if t.state == optuna.trial.TrialState.COMPLETE]
    search_runs = [r for r in runs if r.data.tags["phase"] == "search"]
    assert sorted(t.user_attrs["mlflow_run_id"] for t in complete) == sorted(r.info.run_id for r in search_runs)
    for trial in complete:
        (run,) = [r for r in search_runs if r.info.run_id == trial.user_attrs["mlflow_run_id"]]
        assert trial.value == run.data.metrics["valid_elementwise"]
    assert all(t.user_attrs.get("orphaned") for t in stored if t.state != optuna.trial.TrialState.COMPLETE)


def test_resume_counts_the_failures_of_phases_finished_before_the_kill(tmp_path):
    """A grid trial fails (lr 1e30: non-finite at step 2); the driver is killed in the search phase, after the
    grid was done. ``tuner resume`` must still report that failure: exit 1 and a FAILED parent run."""
    grid = [{"variant": ["baseline"]}, {"variant": ["fisher"], "lam": [0.1], "lr": [1e30]}]
    path = tiny_study(
        tmp_path,
        name="slow",
        grid=grid,
        seeds=[0],
        params={**TINY_PARAMS, "steps": 300, "eval_every": 30},
        search={
            "trials": 2,
            "fixed": {"variant": "fisher"},
            "space": {"lam": {"log": [0.01, 100]}},
            "replicate": False,
        },
    )
    store = tmp_path / "store"
    state_file = store / "slow" / "study.json"
    run_and_kill_when(
        ["run", path],
        store,
        lambda: state_file.exists() and load_state(state_file.parent).phases.get("grid") == "done",
        "the grid phase never finished",
    )
    assert load_state(store / "slow").failed == {"grid": 1}

    result = run_tuner("resume", "slow", "--storage", store, timeout=400)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "1 trial(s) of study 'slow' failed" in result.stderr
    state = load_state(store / "slow")
    assert state.phases == {"grid": "done", "search": "done"} and state.failed == {"grid": 1, "search": 0}
    parent = MlflowClient(state.mlflow_uri).get_run(state.parent_run_id)
    assert parent.info.status == "FAILED"


def test_a_state_naming_a_dropped_checkpoint_retrains_that_trial_from_its_start(tmp_path):
    """The race of Tune's checkpoint deletion with a kill (docs/reliability.md): the saved state names a
    checkpoint Tune has since dropped. Tune drops through the study's filesystem, which empties the folder; this
    test empties every checkpoint of the interrupted trial after the kill, the worst case of that race. ``tuner
    resume`` must finish the study: the trial retrains from its start, every step logged once."""
    params = {**TINY_PARAMS, "steps": 240, "eval_every": 20}
    path = tiny_study(tmp_path, name="slow", params=params, grid=[{"variant": ["baseline"]}], seeds=[0, 1])
    store = tmp_path / "store"

    def running_past_a_checkpoint():
        return any(r.info.status == "RUNNING" and 60 <= last_step(store, r) < 200 for r in trial_runs(store))

    run_and_kill_when(["run", path], store, running_past_a_checkpoint, "never a trial running past step 60")
    interrupted = [r for r in trial_runs(store) if r.info.status == "RUNNING"]
    assert len(interrupted) == 1
    emptied = 0
    for folder in (store / "slow" / "grid").glob("run_trial_*/checkpoint_*"):
        if any(folder.iterdir()):
            for item in folder.iterdir():
                shutil.rmtree(item) if item.is_dir() else item.unlink()
            emptied += 1
    assert emptied
    result = run_tuner("resume", "slow", "--storage", store, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = trial_runs(store)
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    client = MlflowClient(load_state(store / "slow").mlflow_uri)
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
        assert sorted(steps) == list(range(20, 241, 20)), f"steps lost or logged twice in {run.info.run_name}"
    (again,) = [r for r in runs if r.info.run_id == interrupted[0].info.run_id]
    assert again.data.tags.get("resumed") == "true" and again.data.tags.get("resumed_from_step") == "0"
