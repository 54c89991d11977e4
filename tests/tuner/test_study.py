"""Study files: every shipped study validates; every kind of mistake is one clear line naming file and key."""

import pytest
from pydantic import ValidationError

from tuner.errors import StudyError
from tuner.study_file import load_study

from .helpers import REPO, TINY_PARAMS, run_tuner, tiny_study

STUDIES = sorted((REPO / "studies").glob("*.yaml"))


def test_there_are_studies_to_validate():
    assert {p.stem for p in STUDIES} >= {"quickstart", "lambda_search"}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_shipped_study_validates_at_every_scale(path):
    study = load_study(path)
    assert study.name == path.stem  # registry key = file name = YAML value
    assert path.read_text().startswith("#") and f"tuner run studies/{path.name}" in path.read_text()
    for scale in study.scales:
        scaled = load_study(path, scale)  # every trial config re-checked against the task
        assert scaled.name == f"{study.name}-{scale}" and not scaled.scales
        assert f"--scale {scale}" in path.read_text()


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_smoke_scale_fits_a_gpu_less_laptop(path):
    """The paper studies ask a GPU cluster for {cpu: 4, gpu: 0.5}; their smoke scale must not."""
    study = load_study(path)
    if "smoke" in study.scales:
        smoke = load_study(path, "smoke")
        assert smoke.resources.gpu == 0 and smoke.resources.cpu <= 1 and smoke.max_concurrent <= 2


def test_paper_studies_are_shipped():
    assert {
        "table1_ranking",
        "cauchy_n15",
        "figure4_lambda",
        "runtime_ranking",
        "table2_bellman_ford",
        "table3_stochastic",
    } <= {p.stem for p in STUDIES}
    table3 = load_study(REPO / "studies" / "table3_stochastic.yaml").grid_trials()
    assert len(table3) == (3 + 2 + 3) * 3 * 10  # variants (ss_loss 3, ss_algorithm 2, po_fy 3) x samples x seeds
    assert {(t["loss"], t["variant"], t.get("lam")) for t in table3} >= {
        ("ss_loss", "fisher", 0.1),
        ("po_fy", "hessian", 1000),
    }
    figure4 = load_study(REPO / "studies" / "figure4_lambda.yaml")
    lams = sorted({t["lam"] for t in figure4.grid_trials() if "lam" in t})
    assert len(lams) == 13 and lams[0] == 0.001 and lams[-1] == 1000
    table1 = load_study(REPO / "studies" / "table1_ranking.yaml").grid_trials()
    assert len(table1) == 4 * 3 * 2 * 10
    assert {t["lam"] for t in table1 if t["loss"] == "neuralsort" and t["n"] == 10 and t["variant"] == "fisher"} == {
        100
    }


def test_scale_overrides_params_seeds_search_budget_and_resources(tmp_path):
    path = tiny_study(
        tmp_path,
        scales={
            "smoke": {
                "params": {"steps": 2},
                "seeds": [5],
                "search_trials": 1,
                "resources": {"cpu": 1, "gpu": 0},
                "max_concurrent": 3,
            }
        },
        search={"trials": 9, "fixed": {"variant": "fisher"}, "space": {"lam": {"log": [0.1, 1]}}},
        resources={"cpu": 4, "gpu": 0.5},
    )
    study = load_study(path, "smoke")
    assert (
        study.name == "tiny-smoke" and study.params["steps"] == 2 and study.seeds == (5,) and study.search.trials == 1
    )
    assert (study.resources.cpu, study.resources.gpu, study.max_concurrent) == (1, 0, 3)
    assert load_study(path).resources.gpu == 0.5
    with pytest.raises(StudyError, match=r"scales: no scale 'tiny' \(this study has: smoke\)"):
        load_study(path, "tiny")
    bad = tiny_study(tmp_path, name="bad", scales={"smoke": {"params": {"steps": 0}}})
    with pytest.raises(StudyError, match=r"bad.yaml: grid \(trial 1: .*\): ranking: steps must be a positive integer"):
        load_study(bad, "smoke")


def test_grid_expands_blocks_times_seeds_and_drops_lambda_for_baseline(tmp_path):
    path = tiny_study(tmp_path, grid=[{"variant": ["baseline", "fisher"], "lam": [0.1, 1.0]}], seeds=[0, 1, 2])
    trials = load_study(path).grid_trials()
    assert len(trials) == (1 + 2) * 3
    assert sum(t["variant"] == "baseline" for t in trials) == 3 and all(
        "lam" not in t for t in trials if t["variant"] == "baseline"
    )
    assert {(t["lam"], t["seed"]) for t in trials if t["variant"] == "fisher"} == {
        (lam, s) for lam in (0.1, 1.0) for s in (0, 1, 2)
    }
    assert all({**TINY_PARAMS, **t} == t for t in trials)


def test_study_is_frozen(tmp_path):
    study = load_study(tiny_study(tmp_path))
    with pytest.raises(ValidationError, match="frozen"):
        study.metric = "test_exact"


BAD = [
    ("bad yaml", "name: x\ngrid: [\n", r"not valid YAML at line 3"),
    ("not a mapping", "- a\n- b\n", r"a study file is a mapping of keys"),
    ("unknown key", {"seedz": [0]}, r": seedz: unknown key \(valid here: name, task, description, metric"),
    ("unknown nested key", {"resources": {"cpus": 2}}, r": resources.cpus: unknown key \(valid here: cpu, gpu\)"),
    (
        "unknown key in a scale's resources",
        {"scales": {"smoke": {"resources": {"gpus": 0}}}},
        r": scales.smoke.resources.gpus: unknown key \(valid here: cpu, gpu\)",
    ),
    (
        "unknown telemetry key",
        {"telemetry": {"intervall": 5}},
        r": telemetry.intervall: unknown key \(valid here: system_metrics, interval\)",
    ),
    ("telemetry interval not positive", {"telemetry": {"interval": 0}}, r": telemetry.interval: .*greater than 0"),
    ("unknown task", {"task": "rankng"}, r": task: unknown task 'rankng'; did you mean 'ranking'\?"),
    (
        "unknown loss",
        {"params": {**TINY_PARAMS, "loss": "neuralsrot"}},
        r": grid \(trial 1: .*\): unknown loss 'neuralsrot'",
    ),
    (
        "unknown variant",
        {"grid": {"variant": ["newton"]}},
        r": grid \(trial 1: .*variant=newton.*\): unknown variant 'newton'",
    ),
    (
        "loss param not taken",
        {"grid": {"variant": ["baseline"], "beta": [10]}},
        r": grid \(trial 1: .*\): loss 'neuralsort' takes no parameter 'beta'",
    ),
    (
        "lambda zero",
        {"grid": {"variant": ["fisher"], "lam": [0]}},
        r": grid \(trial 1: .*lam=0.*\): lam .* positive finite",
    ),
    (
        "lambda negative in search",
        {"search": {"trials": 2, "fixed": {"variant": "fisher"}, "space": {"lam": {"log": [-1, 10]}}}},
        r": search.space.lam: log range needs 0 < low < high",
    ),
    ("empty grid axis", {"grid": {"variant": ["fisher"], "lam": []}}, r": grid: grid block 1: lam has no values"),
    ("nothing to run", {"grid": []}, r": \(top level\): a study needs a grid, a search, or both"),
    ("unknown metric", {"metric": "accuracy"}, r": metric: task 'ranking' reports no metric 'accuracy'"),
    ("unknown config key", {"params": {**TINY_PARAMS, "stepz": 3}}, r"no config key 'stepz'; did you mean 'steps'\?"),
    (
        "two search kinds",
        {"search": {"trials": 2, "space": {"lam": {"log": [1, 2], "uniform": [1, 2]}}}},
        r": search.space.lam: give exactly one of log",
    ),
    ("bad name", {"name": "../escape"}, r": name: name must be letters"),
    ("duplicate seeds", {"seeds": [0, 0]}, r": seeds: seeds must be a non-empty list of distinct"),
    (
        "another task's loss",
        {"params": {**TINY_PARAMS, "loss": "po_fy"}},
        r": grid \(trial 1: .*\): ranking: loss 'po_fy' is a shortest_path loss, not a ranking one",
    ),
    (
        "another task's loss in a search",
        {"search": {"trials": 2, "space": {"loss": {"choice": ["softsort", "bellman_ford"]}}}},
        r": search.space.loss \(value 'bellman_ford'\): ranking: loss 'bellman_ford' is a shortest_path loss",
    ),
    (
        "metrics without a list of modes",
        {"metric": ["valid_elementwise", "time_total"], "mode": "max"},
        r": \(top level\): metric and mode: give both as lists",
    ),
    (
        "one mode for two metrics",
        {"metric": ["valid_elementwise", "time_total"], "mode": ["max"]},
        r": \(top level\): metric and mode: 2 metric\(s\) but 1 mode\(s\)",
    ),
    ("a metric twice", {"metric": ["time_total", "time_total"], "mode": ["min", "min"]}, r"names a metric twice"),
    ("a bad mode in a list", {"metric": ["valid_elementwise", "time_total"], "mode": ["max", "fastest"]}, r": mode"),
    (
        "an unknown metric in a list",
        {"metric": ["valid_elementwise", "wall_time"], "mode": ["max", "min"]},
        r": metric: task 'ranking' reports no metric 'wall_time'",
    ),
    (
        "early stopping with two objectives",
        {
            "metric": ["valid_elementwise", "time_total"],
            "mode": ["max", "min"],
            "search": {"trials": 2, "space": {"lam": {"log": [1, 2]}}, "asha": {"grace_period": 2}},
        },
        r"search.asha: early stopping cannot serve several objectives",
    ),
    (
        "a warm start that is no study name",
        {"search": {"trials": 2, "space": {"lam": {"log": [1, 2]}}, "warm_start": ["../other"]}},
        r": search.warm_start: .*'../other' is not a study name",
    ),
    (
        "no startup trials",
        {"search": {"trials": 2, "space": {"lam": {"log": [1, 2]}}, "startup_trials": 0}},
        r": search.startup_trials: ",
    ),
    (
        "a variant the loss lacks",
        {
            "task": "shortest_path",
            "metric": "valid_match_path",
            "params": {"loss": "ss_algorithm", "epochs": 1},
            "grid": {"variant": ["hessian"], "lam": [1.0]},
        },
        r": grid \(trial 1: .*\): shortest_path: loss 'ss_algorithm' has no 'hessian' variant "
        r"\(it supports: baseline, fisher\)",
    ),
]


@pytest.mark.parametrize("case, content, message", BAD, ids=[c[0] for c in BAD])
def test_study_errors_name_the_file_and_the_key(tmp_path, case, content, message):
    if isinstance(content, str):
        path = tmp_path / "broken.yaml"
        path.write_text(content)
    else:
        path = tiny_study(tmp_path, **content)
    with pytest.raises(StudyError, match=message) as error:
        load_study(path)
    text = str(error.value)
    assert text.startswith(str(path)) and "\n" not in text


def test_objectives_single_or_several(tmp_path):
    one = load_study(tiny_study(tmp_path, name="one"))
    assert one.metrics == ("valid_elementwise",) and one.modes == ("max",) and not one.multi_objective
    two = load_study(
        tiny_study(
            tmp_path,
            name="two",
            metric=["valid_elementwise", "time_total"],
            mode=["max", "min"],
            search={"trials": 2, "space": {"lam": {"log": [1, 2]}}, "warm_start": "one"},
        )
    )
    assert two.metrics == ("valid_elementwise", "time_total") and two.modes == ("max", "min") and two.multi_objective
    assert two.search.warm_start == ("one",) and two.search.startup_trials == 10  # Optuna's n_startup_trials


def test_missing_study_file(tmp_path):
    with pytest.raises(StudyError, match=r"missing.yaml: cannot read study file"):
        load_study(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "content, message",
    [
        ({"grid": {"variant": ["fisher"], "lam": [0]}}, "lam (the Tikhonov strength) must be a positive finite number"),
        ({"seedz": [1]}, "seedz: unknown key"),
    ],
)
def test_cli_run_rejects_bad_study_before_anything_starts(tmp_path, content, message):
    path = tiny_study(tmp_path, **content)
    result = run_tuner("run", path, "--storage", tmp_path / "store", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr and str(path) in result.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "tuner_results").exists()


def test_cli_validate_reports_each_file(tmp_path):
    good = tiny_study(tmp_path, name="good")
    result = run_tuner("validate", good, REPO / "studies" / "quickstart.yaml")
    assert result.returncode == 0, result.stderr
    assert "ok  " in result.stdout and "study 'good', task ranking, grid 4 trials" in result.stdout
    bad = tiny_study(tmp_path, name="bad", task="sorting")
    result = run_tuner("validate", good, bad)
    assert result.returncode == 2 and "bad.yaml: task: unknown task 'sorting'" in result.stderr
