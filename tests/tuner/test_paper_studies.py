"""Every configuration of every paper study trains: each distinct (loss, setting, variant, λ) of a study's smoke
scale runs through its task's ``train`` for two steps (one epoch of 20 maps) on tiny data and reports finite metrics.

Validation (test_study) only checks configs against the task's ``check``; this catches what only training shows
(a loss that fails for one sample count, a λ whose Newton system is singular, a norm a family does not support).
The full smoke runs through the CLI (Ray, MLflow, reports) are recorded in the README; they take too long for CI.
"""

import itertools
import math

import pytest

from tasks import TASKS
from tuner.study_file import load_study

from .helpers import REPO

PAPER_STUDIES = [
    "table1_ranking",
    "cauchy_n15",
    "figure4_lambda",
    "runtime_ranking",
    "table2_bellman_ford",
    "table3_stochastic",
]
SHRINK = {  # overrides that keep each config's loss, setting, variant and λ but shrink the budget
    "ranking": {"steps": 2, "eval_every": 2, "eval_sets": 4, "batch_size": 3},
    "shortest_path": {"epochs": 1, "batch_size": 10, "train_size": 20, "eval_size": 10},
}


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("NEWTON_WARCRAFT_DIR", raising=False)


def distinct_configs(name):
    study = load_study(REPO / "studies" / f"{name}.yaml", "smoke")
    configs = {tuple(sorted((k, v) for k, v in trial.items() if k != "seed")) for trial in study.grid_trials()}
    return study.task, [dict(c) for c in sorted(configs, key=repr)]


@pytest.mark.parametrize("name", PAPER_STUDIES)
def test_every_config_of_the_paper_study_trains(name):
    task_name, configs = distinct_configs(name)
    task = TASKS.get(task_name)
    assert len(configs) >= 2
    finals = []
    for config in configs:
        reports = []
        task.train({**config, **SHRINK[task_name]}, lambda metrics, state: reports.append(metrics))
        assert reports, config
        final = reports[-1]
        assert all(math.isfinite(final[key]) for key in task.METRICS), (config, final)
        assert all(0.0 <= final[key] <= 1.0 for key in task.REPORT_METRICS), (config, final)
        finals.append(final["train_loss"])
    assert len(set(finals)) > 1  # the second step differs: the configs are not all the same run


SEARCHED_STUDIES = ["pareto_ranking", "pareto_shortest_path", "lambda_search", "quickstart"]


def search_corners(name):
    """Every combination of the search space's corners (each bound of a range, each choice) over the fixed part."""
    path = REPO / "studies" / f"{name}.yaml"
    study = load_study(path, "smoke" if "smoke" in load_study(path).scales else None)
    names = list(study.search.space)
    combos = itertools.product(*(study.search.space[k].corners() for k in names))
    return study, [{**study.search_base(), **dict(zip(names, values))} for values in combos]


@pytest.mark.parametrize("name", SEARCHED_STUDIES)
def test_every_corner_of_a_searched_study_trains_and_reports_its_objectives(name):
    study, configs = search_corners(name)
    task = TASKS.get(study.task)
    assert len(configs) >= 2
    for config in configs:
        reports = []
        task.train({**config, **SHRINK[study.task]}, lambda metrics, state: reports.append(metrics))
        final = reports[-1]
        assert all(math.isfinite(final[metric]) for metric in study.metrics), (config, final)
