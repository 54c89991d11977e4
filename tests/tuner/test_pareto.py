"""Pareto fronts (``tuner.pareto``) against Optuna's own multi-objective ``best_trials``, over many random point
sets from several regimes: continuous, heavy ties, integer grids, tiny and huge scales, mixed directions."""

import math
import zlib

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuner.pareto import pareto_mask

optuna.logging.set_verbosity(optuna.logging.WARNING)


def optuna_front(points, modes) -> list[bool]:
    study = optuna.create_study(directions=["maximize" if m == "max" else "minimize" for m in modes])
    for values in points:
        study.add_trial(optuna.trial.create_trial(values=list(map(float, values))))
    front = {t.number for t in study.best_trials}
    return [i in front for i in range(len(points))]


def regime(rng, name, n, k):
    if name == "continuous":
        return rng.normal(size=(n, k))
    if name == "ties":
        return rng.integers(0, 3, size=(n, k)).astype(float)
    if name == "grid":
        return rng.integers(0, 10, size=(n, k)) / 10
    if name == "tiny":
        return rng.random((n, k)) * 1e-12
    if name == "huge":
        return rng.random((n, k)) * 1e12
    if name == "duplicates":
        base = rng.normal(size=(max(1, n // 3), k))
        return base[rng.integers(0, len(base), size=n)]
    raise ValueError(name)


@pytest.mark.parametrize("name", ["continuous", "ties", "grid", "tiny", "huge", "duplicates"])
def test_front_matches_optuna_best_trials(name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for case in range(60):
        k = 2 + case % 2
        n = int(rng.integers(1, 40))
        modes = [rng.choice(["max", "min"]) for _ in range(k)]
        points = regime(rng, name, n, k)
        assert pareto_mask(points, modes) == optuna_front(points, modes), (name, case, modes)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=1, max_size=25),
    st.sampled_from([("max", "min"), ("min", "min"), ("max", "max"), ("min", "max")]),
)
def test_front_matches_optuna_on_small_integer_sets(points, modes):
    assert pareto_mask(points, modes) == optuna_front(points, modes)


def test_front_edge_cases():
    # one point; equal points are all kept; a NaN objective is never on the front and dominates nothing
    assert pareto_mask([[1.0, 2.0]], ["max", "min"]) == [True]
    assert pareto_mask([[1, 1], [1, 1], [0, 2]], ["max", "min"]) == [True, True, False]
    assert pareto_mask([[math.nan, 0.0], [0.5, 1.0]], ["max", "min"]) == [False, True]
    # accuracy up, time down: the slower and less accurate trial is dominated; a slower, more accurate one is not
    assert pareto_mask([[0.9, 10], [0.8, 12], [0.95, 20]], ["max", "min"]) == [True, False, True]
