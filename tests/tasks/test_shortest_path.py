"""The shortest-path trainable on a small generated Warcraft set: metrics, determinism, resume, errors."""

import io
import math

import pytest
import torch

from tasks import TASKS, shortest_path

from .helpers import collect as run_collect

TINY = {"epochs": 2, "batch_size": 20, "train_size": 60, "eval_size": 20, "loss": "po_fy", "samples": 3, "lr": 1e-2}


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("NEWTON_WARCRAFT_DIR", raising=False)


def collect(config, resume=None, stop_after=None):
    return run_collect(shortest_path.train, config, resume, stop_after, unit="epoch")


def test_registered_and_described():
    assert TASKS.get("shortest_path") is shortest_path
    cfg = shortest_path.describe({"loss": "ss_algorithm", "samples": 30})
    assert cfg["sigma"] == 0.1 and cfg["norm"] == "mse" and cfg["samples"] == 30 and cfg["epochs"] == 50
    assert cfg["data_source"] == "generated:10000/1000/1000:seed0"


def test_path_metrics_by_hand():
    """Two 3x3 maps whose true optimum (cost 4) is tied: the diagonal 1 + 2 + 1 and (0,0), (0,1), (1,2), (2,2) at
    1 + 1 + 1 + 1. The true path given is the diagonal. Map 1's prediction picks the diagonal (both matches), map
    2's the other optimal path (a cost match, not a path match), map 3's the path (0,0), (1,0), (2,1), (2,2) of
    true cost 1 + 5 + 5 + 1 = 12 (no match, cost ratio 3)."""
    true_costs = torch.full((3, 3, 3), 5.0)
    true_costs[:, [0, 2, 0, 1], [0, 2, 1, 2]] = 1.0
    true_costs[:, 1, 1] = 2.0
    true_paths = torch.zeros(3, 3, 3)
    true_paths[:, [0, 1, 2], [0, 1, 2]] = 1
    pred = torch.full((3, 9), 9.0)
    pred[:, [0, 8]] = 0.0
    pred[0, 4] = 0.0
    pred[1, [1, 5]] = 0.0
    pred[2, [3, 7]] = 0.0
    metrics = shortest_path.path_metrics(pred, true_paths, true_costs)
    assert metrics == pytest.approx({"match_path": 1 / 3, "match_cost": 2 / 3, "cost_ratio": (1 + 1 + 3) / 3})


@pytest.mark.parametrize("variant", ["baseline", "hessian"])
def test_deterministic_and_resumes_exactly(variant):
    config = {**TINY, "variant": variant, "lam": 1000.0}
    full, _ = collect(config)
    assert full == collect(config)[0] and [m["epoch"] for m in full] == [1, 2]
    head, states = collect(config, stop_after=1)
    buffer = io.BytesIO()
    torch.save(states[-1], buffer)
    buffer.seek(0)
    tail, _ = collect(config, resume=torch.load(buffer, weights_only=True))
    assert head + tail == full


@pytest.mark.parametrize(
    "config, error, message",
    [
        (
            {"loss": "neuralsort", "samples": None},
            ValueError,
            r"shortest_path: loss 'neuralsort' is a ranking loss, not a shortest_path one "
            r"\(use one of: bellman_ford, po_fy",
        ),
        ({"loss": "ss_algorithm", "variant": "hessian", "lam": 1.0}, ValueError, r"has no 'hessian' variant"),
        ({"samples": 0}, ValueError, "samples must be a positive integer"),
        ({"epoch": 3}, KeyError, r"did you mean 'epochs'\?"),
        ({"data_dir": "/nonexistent/warcraft"}, FileNotFoundError, "does not exist"),
        ({"lr": 1e30}, FloatingPointError, r"non-finite model output at step 2 \(loss=po_fy, variant=baseline"),
    ],
)
def test_errors_are_clear(config, error, message):
    with pytest.raises(error, match=message):
        shortest_path.train({**TINY, **config}, lambda m, s: None)


@pytest.mark.slow
def test_learns_on_generated_data():
    """Perfect matches after 4 epochs on 400 generated maps clearly above the untrained model's."""
    config = {**TINY, "epochs": 4, "train_size": 400, "eval_size": 100}
    untrained = shortest_path.path_metrics(*_untrained(config))
    metrics, _ = collect(config)
    assert metrics[-1]["test_match_cost"] > untrained["match_cost"] + 0.15


def _untrained(config):
    import numpy as np

    from tasks.warcraft_model import CombResnet18, channel_stats

    data = shortest_path._load(shortest_path.resolve_config(config, shortest_path.DEFAULTS, "shortest_path"))
    torch.manual_seed(0)
    maps = torch.from_numpy(np.array(data["test"]["maps"]))
    model = CombResnet18(*channel_stats(np.array(data["train"]["maps"]))).eval()
    with torch.no_grad():
        pred = model(maps).flatten(1)
    return (
        pred,
        torch.from_numpy(np.array(data["test"]["paths"], np.float32)),
        torch.from_numpy(np.array(data["test"]["weights"], np.float32)),
    )


@pytest.mark.parametrize(
    "loss, variant",
    [
        (f, v)
        for f, vs in {
            "bellman_ford": ("baseline", "fisher"),
            "ss_loss": ("baseline", "hessian", "fisher"),
            "ss_algorithm": ("baseline", "fisher"),
            "po_fy": ("baseline", "hessian", "fisher"),
        }.items()
        for v in vs
    ],
)
def test_every_family_and_variant_trains(loss, variant):
    """One epoch of each loss family x the variants the paper uses: finite metrics, reported once."""
    config = {
        **TINY,
        "epochs": 1,
        "loss": loss,
        "variant": variant,
        "lam": 1000.0,
        "samples": None if loss == "bellman_ford" else 3,
    }
    metrics, _ = collect(config)
    assert len(metrics) == 1 and all(math.isfinite(v) for v in metrics[0].values())
    assert 0 <= metrics[0]["test_match_path"] <= metrics[0]["test_match_cost"] <= 1


def test_total_steps_is_the_last_reported_step():
    """The early-stopping horizon: epochs x ceil(train_size / batch_size) = 2 x ceil(60 / 20) = 6."""
    metrics, _ = collect(TINY)
    assert shortest_path.total_steps(TINY) == metrics[-1]["step"] == 6


def test_hessian_runs_report_the_newton_system():
    metrics, _ = collect({**TINY, "variant": "hessian", "lam": 1000})
    assert len(metrics) == 2 and all(0.0 <= m["newton_indefinite_share"] <= 1.0 for m in metrics)
    assert all(m["newton_min_eigenvalue"] > -1e6 for m in metrics)
