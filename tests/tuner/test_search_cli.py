"""Searches through the real CLI on real Optuna storage: two objectives with their Pareto front, warm starts,
``tuner dashboard`` (a real optuna-dashboard server) and the one-line errors of each."""

import json
import urllib.request

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from .helpers import TINY_PARAMS, TUNER, free_port, run_tuner, serving, state_of, tiny_study

pytestmark = pytest.mark.slow
optuna.logging.set_verbosity(optuna.logging.WARNING)


def stored_study(store, name):
    state = state_of(store, name)
    return optuna.load_study(study_name=state.optuna.study, storage=state.optuna.url)


def trial_runs(store, name):
    state = state_of(store, name)
    return MlflowClient(state.mlflow_uri).search_runs([state.experiment_id], "tags.role = 'trial'")


def test_two_objectives_search_replicate_the_front_and_report_it(tmp_path):
    store = tmp_path / "store"
    path = tiny_study(
        tmp_path,
        name="two",
        params={**TINY_PARAMS, "steps": 6, "eval_every": 3},
        metric=["valid_elementwise", "time_total"],
        mode=["max", "min"],
        grid=[],
        max_concurrent=2,  # TPE asked for two trials at a time: the sampled trajectory this test was written on
        search={
            "trials": 5,
            "startup_trials": 2,
            "sampler_seed": 1,
            "space": {"variant": {"choice": ["baseline", "fisher"]}, "lam": {"log": [0.01, 100]}},
        },
    )
    result = run_tuner("run", path, "--storage", store, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    found = stored_study(store, "two")
    assert [d.name for d in found.directions] == ["MAXIMIZE", "MINIMIZE"]
    runs = trial_runs(store, "two")
    search = {r.info.run_id: r for r in runs if r.data.tags["phase"] == "search"}
    assert len(found.trials) == 5 and all(t.state == optuna.trial.TrialState.COMPLETE for t in found.trials)
    # one Optuna trial per searched MLflow run, with that run's final metrics as its values
    assert sorted(t.user_attrs["mlflow_run_id"] for t in found.trials) == sorted(search)
    for trial in found.trials:
        run = search[trial.user_attrs["mlflow_run_id"]]
        assert trial.values == [run.data.metrics["valid_elementwise"], run.data.metrics["time_total"]]
        assert trial.user_attrs["tune_trial_id"] == run.data.tags["trial_id"]

    # the replicated settings are Optuna's own Pareto front (best_trials), each on both seeds
    front = {(t.params["variant"], t.params["lam"]) for t in found.best_trials}
    state = state_of(store, "two")
    assert {(s["variant"], s["lam"]) for s in state.front} == front
    replicated = [json.loads(r.data.tags["trial_config"]) for r in runs if r.data.tags["phase"] == "replicate"]
    assert sorted((c["variant"], c["lam"], c["seed"]) for c in replicated) == sorted(
        (v, lam, seed) for v, lam in front for seed in (0, 1)
    )

    report = run_tuner("report", "two", "--storage", store)
    assert report.returncode == 0, report.stderr[-3000:]
    out = store / "two" / "report"
    table = pd.read_csv(out / "pareto_front.csv")
    best_runs = {t.user_attrs["mlflow_run_id"] for t in found.best_trials}
    assert sorted(table["trial"]) == sorted(search[r].info.run_name for r in best_runs)
    for name in (
        "pareto_front.png",
        "search_parallel.png",
        "search_contour.png",
        "search_slice.png",
        "search_importances.png",
        "search_history.png",
    ):
        assert (out / name).stat().st_size > 10_000, name
    text = (out / "report.md").read_text()
    assert "## Pareto front" in text and "Objectives: `valid_elementwise` (max), `time_total` (min)" in text


def test_warm_start_seeds_the_sampler_and_the_dashboard_shows_it(tmp_path):
    store = tmp_path / "store"
    search = {"trials": 4, "fixed": {"variant": "fisher"}, "space": {"lam": {"log": [0.1, 10]}}, "replicate": False}
    earlier = tiny_study(tmp_path, name="earlier", grid=[], search=search)
    assert run_tuner("run", earlier, "--storage", store, timeout=600).returncode == 0
    later = {**search, "trials": 2, "startup_trials": 2, "space": {"lam": {"log": [0.01, 100]}}}
    warm = tiny_study(tmp_path, name="warm", grid=[], search={**later, "warm_start": ["earlier"]})
    cold = tiny_study(tmp_path, name="cold", grid=[], search=later)
    warmed = run_tuner("run", warm, "--storage", store, timeout=600)
    assert warmed.returncode == 0, warmed.stderr[-3000:]
    assert "warm start from study 'earlier': 4 trial(s) seed the search, 0 skipped" in warmed.stdout
    assert run_tuner("run", cold, "--storage", store, timeout=600).returncode == 0

    source = stored_study(store, "earlier").trials
    seeded_study = stored_study(store, "warm")
    seeded, own = seeded_study.trials[:4], seeded_study.trials[4:]
    assert [t.user_attrs["warm_start"] for t in seeded] == ["earlier"] * 4
    assert [(t.params, t.values) for t in seeded] == [(t.params, t.values) for t in source]
    assert len(own) == 2 and not any("warm_start" in t.user_attrs for t in own)
    cold_trials = stored_study(store, "cold").trials
    assert own[0].params["lam"] != cold_trials[0].params["lam"], "the warm start did not change the first suggestion"
    assert len(trial_runs(store, "warm")) == 2  # seeded trials are not run again

    port = free_port()
    with serving(
        [TUNER, "dashboard", "warm", "--storage", str(store), "--port", str(port)],
        f"http://127.0.0.1:{port}/api/studies",
    ):
        studies = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies"))["study_summaries"]
        (entry,) = [s for s in studies if s["study_name"] == "warm"]
        detail = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{entry['study_id']}"))
    shown = [{a["key"]: a["value"] for a in t["user_attrs"]} for t in detail["trials"]]
    assert [a.get("warm_start") for a in shown] == ["earlier"] * 4 + [None, None]
    assert {a["mlflow_run_id"] for a in shown[4:]} == {r.info.run_id for r in trial_runs(store, "warm")}


def test_search_storage_errors_are_one_line_and_write_nothing(tmp_path):
    store = tmp_path / "store"
    search = {"trials": 2, "fixed": {"variant": "fisher"}, "space": {"lam": {"log": [0.1, 10]}}}
    grid_only = tiny_study(tmp_path, name="gridonly", seeds=[0], grid=[{"variant": ["baseline"]}])
    assert run_tuner("run", grid_only, "--storage", store, timeout=600).returncode == 0
    cases = [
        (
            tiny_study(tmp_path, name="a", grid=[], search={**search, "warm_start": ["nope"]}),
            [],
            "search.warm_start: study 'nope' is not in",
        ),
        (
            tiny_study(tmp_path, name="b", grid=[], search={**search, "warm_start": ["gridonly"]}),
            [],
            "search.warm_start: study 'gridonly' kept no Optuna storage",
        ),
        (
            tiny_study(
                tmp_path,
                name="c",
                task="shortest_path",
                metric="valid_match_cost",
                grid=[],
                params={"loss": "ss_loss", "epochs": 1},
                search={**search, "warm_start": ["gridonly"]},
            ),
            [],
            "search.warm_start: study 'gridonly' is of task 'ranking', not 'shortest_path'",
        ),
        (
            tiny_study(tmp_path, name="d", grid=[], search=search),
            ["--optuna-storage", "nosuchdb://x"],
            "cannot open the Optuna storage nosuchdb://x",
        ),
        (
            tiny_study(tmp_path, name="e", seeds=[0], grid=[{"variant": ["baseline"]}]),
            ["--optuna-storage", f"sqlite:///{tmp_path / 'o.db'}"],
            "has no search phase to keep there",
        ),
    ]
    for path, extra, message in cases:
        result = run_tuner("run", path, "--storage", store, *extra, timeout=120)
        assert result.returncode == 2 and message in result.stderr, (message, result.stderr[-2000:])
        assert result.stderr.strip().count("\n") == 0
        assert not (store / path.stem).exists()
    result = run_tuner("dashboard", "gridonly", "--storage", store, timeout=60)
    assert result.returncode == 2 and "study 'gridonly' has no Optuna storage" in result.stderr
