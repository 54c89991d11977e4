"""A study on a task and a loss that live in the user's own package (examples/topk_lab), through the real CLI."""

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tuner.state import load_state

from .helpers import EXAMPLE, install_example, run_tuner

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("test_user_code"),
]  # one worker runs the module: its fixture once
STUDY = EXAMPLE / "studies" / "topk.yaml"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return install_example(tmp_path_factory.mktemp("site"))


def test_the_example_package_runs_by_its_entry_points_and_reports(site, tmp_path):
    """``task: topk`` and ``loss: diffsort_topk`` are entry points of the installed package; every trial lands in
    MLflow with the code it ran (origin, import path, distribution and version), and ``tuner report`` works on the
    user's metrics unchanged."""
    env = {"PYTHONPATH": str(site)}
    store = tmp_path / "store"
    assert run_tuner("validate", STUDY, env=env).returncode == 0
    result = run_tuner("run", STUDY, "--scale", "smoke", "--storage", store, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any("[done] grid" in line and "variant=hessian lam=10 seed=0" in line for line in result.stdout.splitlines())
    state = load_state(store / "topk_digits-smoke")
    client = MlflowClient(state.mlflow_uri)
    runs = client.search_runs([state.experiment_id], "tags.role = 'trial'")
    assert len(runs) == 5 and all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        tags, params = run.data.tags, run.data.params
        assert tags["code.task"].startswith("entry point | topk_lab.task | topk-lab 0.1.0 | ")
        assert tags["code.loss"].startswith("entry point | topk_lab.loss:DiffSortTopKLoss | topk-lab 0.1.0 | ")
        assert params["loss"] == "diffsort_topk" and params["k"] == "2" and params["distribution"] == "logistic"
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "valid_topk")) == [10, 20]
    parent = client.get_run(state.parent_run_id)
    assert parent.data.tags["code.loss.diffsort_topk"].startswith("entry point | topk_lab.loss:DiffSortTopKLoss")

    report = run_tuner("report", "topk_digits-smoke", "--storage", store, env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    table = pd.read_csv(store / "topk_digits-smoke" / "report" / "results.csv")
    assert list(table["variant"]) == ["baseline", "hessian", "hessian", "fisher", "fisher"]
    assert table["test_topk_mean"].between(0, 1).all() and "test_top1_mean" in table
    text = (store / "topk_digits-smoke" / "report" / "report.md").read_text()
    assert (
        "test_topk" in text and "mean ± std over seeds, ×100" in text and "top-k accuracy (valid)" not in text
    )  # a label, in the plot


def test_the_example_by_import_path_without_installing(tmp_path):
    """No entry points: name task and loss by import path, with the package's folder on PYTHONPATH."""
    study = yaml.safe_load(STUDY.read_text())
    study.update(name="topk_paths", task="topk_lab.task", grid=[{"variant": ["fisher"], "lam": [1.0]}])
    study["params"]["loss"] = "topk_lab.loss:DiffSortTopKLoss"
    path = tmp_path / "topk_paths.yaml"
    path.write_text(yaml.safe_dump(study))
    result = run_tuner(
        "run", path, "--scale", "smoke", "--storage", tmp_path / "store", env={"PYTHONPATH": str(EXAMPLE)}, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_state(tmp_path / "store" / "topk_paths-smoke")
    (run,) = MlflowClient(state.mlflow_uri).search_runs([state.experiment_id], "tags.role = 'trial'")
    assert run.info.status == "FINISHED" and run.data.tags["code.task"].startswith("import path | topk_lab.task")


@pytest.mark.parametrize(
    "task, module, message",
    [
        (
            "brokenlab.task",
            "task.py",
            "task: task 'brokenlab.task': cannot import module 'brokenlab.task' (ZeroDivisionError: division by zero)",
        ),
        (
            "brokenlab.task",
            None,
            "task: task 'brokenlab.task': cannot import module 'brokenlab.task' "
            "(ModuleNotFoundError: No module named 'brokenlab.task')",
        ),
    ],
)
def test_a_user_package_that_fails_to_import_is_one_line(tmp_path, task, module, message):
    package = tmp_path / "code" / "brokenlab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    if module:
        (package / module).write_text("1 / 0\n")
    study = {"name": "broken", "task": task, "metric": "m", "grid": [{"variant": ["baseline"]}]}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(study))
    result = run_tuner("validate", path, env={"PYTHONPATH": str(tmp_path / "code")}, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"tuner: error: {path}: {message}"]
