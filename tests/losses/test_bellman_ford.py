"""Relaxed Bellman-Ford (AlgoVision primitives) against the exact solver."""
import pytest
import torch

from losses import LOSSES, make_objective, shortest_paths
from losses.shortest_path.bellman_ford import relaxed_bellman_ford


@pytest.mark.parametrize("loop", ["for", "while"])
def test_sharp_relaxation_is_the_exact_path(loop):
    """Continuous costs (a unique optimum) and a sharp beta: the relaxed path is the exact 0/1 path."""
    torch.manual_seed(0)
    costs = torch.rand(8, 12, 12, dtype=torch.float64) * 9 + 0.5
    exact, _ = shortest_paths(costs)
    relaxed = relaxed_bellman_ford(beta=1000.0, n_iter=30, loop=loop)(costs)
    torch.testing.assert_close(relaxed, exact, atol=1e-3, rtol=0)


def test_paper_temperature_is_close_and_soft():
    """beta = 10, n_iter = 18 (the paper's): entries in [0, 1], close to the exact path but not equal to it."""
    torch.manual_seed(1)
    costs = torch.rand(8, 12, 12, dtype=torch.float64) * 9 + 0.5
    exact, _ = shortest_paths(costs)
    relaxed = relaxed_bellman_ford()(costs)
    assert relaxed.min() >= 0 and relaxed.max() <= 1
    l1 = (relaxed - exact).abs().sum((1, 2))
    assert 0 < l1.mean() < 3


def test_for_loop_cuts_long_paths_short():
    """With n_iter below the path's length the walk back never reaches the start (the paper's caveat)."""
    costs = torch.ones(1, 12, 12, dtype=torch.float64)
    costs[0, :, 1:11] = 100.0  # the cheap way goes down column 0 and along row 11: 23 cells
    relaxed = relaxed_bellman_ford(beta=100.0, n_iter=10)(costs)
    assert relaxed[0, 0, 0] < 0.01 and relaxed[0, 11, 11] == 1.0
    full = relaxed_bellman_ford(beta=100.0, n_iter=40)(costs)
    assert full[0, 0, 0] > 0.99


def test_loss_trains_with_baseline_and_fisher_only():
    torch.manual_seed(2)
    costs = torch.rand(4, 144, dtype=torch.float64) * 9 + 0.5
    target, _ = shortest_paths((torch.rand(4, 12, 12, dtype=torch.float64) * 9 + 0.5))
    target = target.flatten(1)
    loss = LOSSES.build("bellman_ford", norm="l2")
    for variant in ("baseline", "fisher"):
        y = costs.clone().requires_grad_(True)
        make_objective(loss, variant, 3000.0)(y, target).backward()
        assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"has no 'hessian' variant"):
        make_objective(loss, "hessian", 1.0)
    with pytest.raises(ValueError, match=r"loop must be 'for' or 'while'"):
        LOSSES.build("bellman_ford", loop="until")
