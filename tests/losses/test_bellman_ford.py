"""Relaxed Bellman-Ford (AlgoVision primitives) against the authors' AlgoVision example and the exact solver.

``fixtures/bellman_ford_reference.npz`` holds the paths and gradients of the authors' ``get_shortest_path`` on fixed
grids (``fixtures/README.md`` says how they were made); ``shortest_paths`` is the project's exact solver.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from losses import LOSSES, make_objective, shortest_paths
from losses.shortest_path.bellman_ford import relaxed_bellman_ford

FIXTURE = np.load(Path(__file__).parent / "fixtures" / "bellman_ford_reference.npz")
CASES = json.loads(str(FIXTURE["cases"]))


def reference_case(case: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """costs (B, 12, 12) in the case's dtype, the fixed gradient weights, the example's path and gradient."""
    dtype = getattr(torch, case["dtype"])
    costs = torch.from_numpy(FIXTURE[f"costs_{case['costs']}"]).to(dtype)
    weight = torch.from_numpy(FIXTURE["weight"]).to(dtype)
    path = torch.from_numpy(FIXTURE[f"path_{case['key']}"]).to(dtype)
    grad = torch.from_numpy(FIXTURE[f"grad_{case['key']}"]).to(dtype)
    return costs, weight, path, grad


@pytest.mark.parametrize("case", CASES, ids=[case["key"] for case in CASES])
def test_matches_the_authors_example(case):
    """Paths to 1e-5 and gradients of sum(weight * path) to 1e-4 (the fixture stores both in float32, whose
    rounding is below 1e-5 of the largest gradient, 70)."""
    costs, weight, path, grad = reference_case(case)
    costs.requires_grad_(True)
    algorithm = relaxed_bellman_ford(case["beta"], case["n_iter"], case["loop"], case["t_conorm"], case["p"])
    ours = algorithm(costs)
    (ours * weight).sum().backward()
    torch.testing.assert_close(ours.detach(), path, atol=1e-5, rtol=0)
    torch.testing.assert_close(costs.grad, grad, atol=1e-4, rtol=0)


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_loss_is_the_norm_of_the_fixture_path_minus_the_target(norm):
    """The loss on (N, 144) costs: the per-sample L1 / squared L2 of (the example's path - target); the costs are
    non-negative, so clamping them at 0 changes nothing."""
    case = next(c for c in CASES if c["key"] == "terrain-float64-while-b10-n18-probabilistic")
    costs, _, path, _ = reference_case(case)
    target, _ = shortest_paths(costs)
    loss = LOSSES.build("bellman_ford", loop="while", norm=norm)
    value = loss(costs.flatten(1), target.flatten(1))
    diff = (path - target).flatten(1)
    expected = diff.abs().sum(1) if norm == "l1" else diff.pow(2).sum(1)
    assert value.shape == (3,)
    torch.testing.assert_close(value, expected, atol=1e-4, rtol=0)
    assert loss.path(costs.flatten(1)).shape == (3, 144)


def _second_cell_cheapest(costs: torch.Tensor) -> torch.Tensor:
    """Lower the cost of each exact path's cell next to the start to 0.1: the path stays the unique optimum (only
    its own cost fell), and that cell becomes the start's nearest neighbour."""
    exact, _ = shortest_paths(costs)
    costs = costs.clone()
    for b in range(len(costs)):
        ((y, x),) = [cell for cell in exact[b].nonzero().tolist() if max(cell) == 1]
        costs[b, y, x] = 0.1
    return costs


@pytest.mark.parametrize("loop", ["for", "while"])
def test_sharp_relaxation_is_the_exact_path(loop):
    """Continuous costs (a unique optimum), a sharp beta and n_iter >= every path's cell count: the relaxed path is
    the exact 0/1 path. The start's nearest neighbour is made a path cell, since the walked-back mass leaves the
    start for it (next test)."""
    torch.manual_seed(0)
    costs = _second_cell_cheapest(torch.rand(8, 12, 12, dtype=torch.float64) * 9 + 0.5)
    exact, _ = shortest_paths(costs)
    assert exact.sum((1, 2)).max() <= 30
    relaxed = relaxed_bellman_ford(beta=100.0, n_iter=30, loop=loop)(costs)
    torch.testing.assert_close(relaxed, exact, atol=1e-3, rtol=0)


def test_mass_at_the_start_moves_on_to_its_nearest_neighbour():
    """3x3, beta 100: cells cost 100 but (0,1) = 1, (1,1) = 2, (2,2) = 1. The exact path is (0,0), (1,1), (2,2)
    (solver). Walking back: goal, (1,1), start, then the start's nearest neighbour (0,1) (distance 1 < 2), as in the
    authors' example (fixture). For with 3 steps: the exact path; with 4 or more: (0,1) joins it. While: the
    condition path[start] <= 1 is sigmoid(100) ~ 1 until the start joins after 3 steps, then 1/2 per step, so half of
    the output is the 3-step state: (0,1) gets 1/2 (n_iter >= 4). L1 loss vs the exact path: 1 and 1/2."""
    costs = torch.full((1, 3, 3), 100.0, dtype=torch.float64)
    costs[0, 0, 1], costs[0, 1, 1], costs[0, 2, 2] = 1.0, 2.0, 1.0
    exact, _ = shortest_paths(costs)
    assert exact[0].nonzero().tolist() == [[0, 0], [1, 1], [2, 2]]
    bounce = torch.zeros_like(exact)
    bounce[0, 0, 1] = 1.0
    for loop, share in (("for", 1.0), ("while", 0.5)):
        torch.testing.assert_close(relaxed_bellman_ford(100.0, 3, loop)(costs), exact, atol=1e-12, rtol=0)
        for n_iter in (4, 9):
            torch.testing.assert_close(
                relaxed_bellman_ford(100.0, n_iter, loop)(costs), exact + share * bounce, atol=1e-12, rtol=0
            )
        loss = LOSSES.build("bellman_ford", beta=100.0, n_iter=4, loop=loop)
        torch.testing.assert_close(loss(costs.flatten(1), exact.flatten(1)), torch.tensor([share], dtype=torch.float64))


@pytest.mark.parametrize("loop", ["for", "while"])
def test_long_paths_are_cut_short(loop):
    """Cheap (1) column 0 and row 11, the rest 100: the exact path has 22 cells (solver). With n_iter = 18 the walk
    back covers the 18 cells nearest the goal and never reaches the start (the paper's n_iter caps the path); with
    n_iter = 22 it is the whole path."""
    costs = torch.full((1, 12, 12), 100.0, dtype=torch.float64)
    costs[0, :, 0], costs[0, 11, :] = 1.0, 1.0
    exact, _ = shortest_paths(costs)
    assert exact.sum() == 22
    near_goal = exact.clone()
    near_goal[0, :4, 0] = 0.0  # the 4 path cells nearest the start: (0,0) .. (3,0)
    torch.testing.assert_close(relaxed_bellman_ford(100.0, 18, loop)(costs), near_goal, atol=1e-12, rtol=0)
    torch.testing.assert_close(relaxed_bellman_ford(100.0, 22, loop)(costs), exact, atol=1e-12, rtol=0)


def test_paper_temperature_is_close_and_soft():
    """beta = 10, n_iter = 18 (the paper's): entries in [0, 1], close to the exact path but not equal to it."""
    torch.manual_seed(1)
    costs = torch.rand(8, 12, 12, dtype=torch.float64) * 9 + 0.5
    exact, _ = shortest_paths(costs)
    relaxed = relaxed_bellman_ford()(costs)
    assert relaxed.min() >= 0 and relaxed.max() <= 1
    l1 = (relaxed - exact).abs().sum((1, 2))
    assert 0 < l1.mean() < 3


def test_for_loop_runs_on_the_meta_device():
    """Forward and backward on ``meta`` (no data, so any tensor made on the CPU would fail to combine with the
    costs), in bfloat16 (a float32 starting value would promote the output to float32)."""
    costs = torch.rand(2, 144, device="meta", dtype=torch.bfloat16, requires_grad=True)
    target = torch.zeros(2, 144, device="meta", dtype=torch.bfloat16)
    loss = LOSSES.build("bellman_ford", t_conorm="hamacher", p=5.0)
    path = loss.path(costs)
    assert (path.device.type, path.dtype, path.shape) == ("meta", torch.bfloat16, (2, 144))
    loss(costs, target).sum().backward()
    assert (costs.grad.device.type, costs.grad.dtype) == ("meta", torch.bfloat16)


def test_while_loop_makes_every_tensor_on_the_costs_device():
    """AlgoVision's ``While`` decides on the host whether to go on (``p.max() > epsilon``), which ``meta`` tensors
    cannot answer. So the While variant runs on CPU costs with ``meta`` as the default device: a tensor made without
    the costs' device would land on ``meta`` and fail to combine with them. bfloat16 costs give a bfloat16 path and
    gradient (no float32 starting value). The For variant is checked on ``meta`` itself above."""
    costs = torch.rand(2, 144, dtype=torch.bfloat16) * 9 + 0.5
    costs.requires_grad_(True)
    loss = LOSSES.build("bellman_ford", loop="while", norm="l2")
    with torch.device("meta"):
        value = loss(costs, torch.zeros(2, 144, dtype=torch.bfloat16, device="cpu"))
        value.sum().backward()
    assert (value.device.type, value.dtype) == ("cpu", torch.bfloat16)
    assert (costs.grad.device.type, costs.grad.dtype) == ("cpu", torch.bfloat16)
    assert torch.isfinite(costs.grad.float()).all()


def test_loss_trains_with_baseline_and_fisher_only():
    torch.manual_seed(2)
    costs = torch.rand(4, 144, dtype=torch.float64) * 9 + 0.5
    target, _ = shortest_paths(torch.rand(4, 12, 12, dtype=torch.float64) * 9 + 0.5)
    target = target.flatten(1)
    loss = LOSSES.build("bellman_ford", norm="l2")
    for variant in ("baseline", "fisher"):
        y = costs.clone().requires_grad_(True)
        make_objective(loss, variant, 3000.0)(y, target).backward()
        assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"has no 'hessian' variant"):
        make_objective(loss, "hessian", 1.0)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"loop": "until"}, r"loop must be 'for' or 'while'"),
        ({"t_conorm": "max"}, r"t_conorm must be one of probabilistic, yager_1, hamacher"),
        ({"t_conorm": "hamacher"}, r"p is the hamacher t-conorm's parameter"),
        ({"p": 2.0}, r"p is the hamacher t-conorm's parameter"),
        ({"t_conorm": "hamacher", "p": -1.0}, r"p must be a number >= 0"),
        ({"beta": 0.0}, r"beta must be a positive number"),
        ({"n_iter": 0}, r"n_iter must be a positive integer"),
        ({"norm": "l3"}, r"norm must be 'l1' or 'l2'"),
    ],
)
def test_invalid_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        LOSSES.build("bellman_ford", **params)


def test_n_iter_must_reach_every_cell():
    """With fewer distance iterations than steps from the start to the far corner, cells keep the "infinite"
    distance; in float32 that drops their costs and the example's gradients are NaN. The loss refuses it."""
    loss = LOSSES.build("bellman_ford", n_iter=10)
    with pytest.raises(ValueError, match=r"n_iter = 10 leaves cells of a 12 x 12 map unreached"):
        loss.path(torch.ones(1, 144))
