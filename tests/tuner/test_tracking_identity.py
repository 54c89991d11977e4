"""Identity is an id: an execution's reads and sweeps see only its own runs, even where two executions share an
experiment and trial ids; a trial's step ledger follows the task contract's ``step``, whatever metrics it reports.
A real MLflow SQLite store; no Ray."""

from mlflow.tracking import MlflowClient

from tuner.state import TrialContext
from tuner.tracking import (
    LEDGER_TAG,
    TrialRun,
    close_orphans,
    executions,
    find_trial_run,
    last_logged_step,
    prepare_experiment,
    start_parent_run,
    study_runs,
)


def context(uri, experiment, execution, phase="grid"):
    return TrialContext(
        study="quickstart",
        task="ranking",
        phase=phase,
        execution_id=execution,
        mlflow_uri=uri,
        experiment_id=experiment,
        git_commit="c",
        git_dirty="False",
        code_hash="h",
        objectives=("acc",),
    )


def two_executions(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = prepare_experiment(uri, "quickstart", tmp_path / "artifacts")
    first = start_parent_run(uri, experiment, "quickstart study", {}, {"study": "quickstart", "storage": "/a"})
    second = start_parent_run(uri, experiment, "quickstart study", {}, {"study": "quickstart", "storage": "/b"})
    return uri, experiment, first, second


def test_two_executions_of_one_study_never_see_each_others_runs(tmp_path):
    uri, experiment, first, second = two_executions(tmp_path)
    mine = TrialRun(context(uri, experiment, first), "t_00000", "a", {"seed": 0}, {})
    theirs = TrialRun(context(uri, experiment, second), "t_00000", "b", {"seed": 0}, {})  # the same trial id
    assert mine.run_id != theirs.run_id
    client = MlflowClient(uri)
    assert find_trial_run(client, experiment, first, "grid", "t_00000").info.run_id == mine.run_id
    assert find_trial_run(client, experiment, second, "grid", "t_00000").info.run_id == theirs.run_id
    assert [r.info.run_id for r in study_runs(uri, experiment, first)] == [mine.run_id]
    # the second execution's orphan sweep leaves the first execution's live trial alone
    assert close_orphans(uri, experiment, second, "grid") == 1
    assert client.get_run(mine.run_id).info.status == "RUNNING"
    assert client.get_run(theirs.run_id).info.status == "KILLED"
    assert [r.info.run_id for r in executions(uri, experiment)] == [first, second]


def test_the_ledger_follows_step_for_a_task_without_train_loss(tmp_path):
    uri, experiment, first, _ = two_executions(tmp_path)
    run = TrialRun(context(uri, experiment, first), "t_00001", "a", {}, {})
    for step in (3, 6):
        run.log({"step": step, "acc": step / 10})
    again = TrialRun(context(uri, experiment, first), "t_00001", "a", {}, {})  # a retry or a resume reopens it
    assert again.run_id == run.run_id and again.last_step == 6
    for step in (3, 6, 9):  # training is deterministic from the checkpoint: steps 3 and 6 come again
        again.log({"step": step, "acc": step / 10})
    client = MlflowClient(uri)
    assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "acc")] == [(3, 0.3), (6, 0.6), (9, 0.9)]
    assert again.final_metrics() == {"acc": 0.9, "step": 9}
    assert client.get_run(run.run_id).data.tags[LEDGER_TAG] == "9"


def test_runs_logged_before_the_ledger_find_their_last_step_from_any_metric(tmp_path):
    uri, experiment, first, _ = two_executions(tmp_path)
    client = MlflowClient(uri)
    old = client.create_run(experiment, tags={"mlflow.parentRunId": first, "phase": "grid", "trial_id": "t_2"})
    client.log_metric(old.info.run_id, "acc", 0.5, step=40)
    client.log_metric(old.info.run_id, "loss", 0.1, step=20)
    assert last_logged_step(client, client.get_run(old.info.run_id)) == 40
    fresh = client.create_run(experiment)
    assert last_logged_step(client, client.get_run(fresh.info.run_id)) == -1
