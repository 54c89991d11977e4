"""The stochastic shortest-path loss families where smoothing has a closed form.

3 x 3 grid, start (0,0), goal (2,2); the centre and the two other corners cost M = 100, so a path takes
route A = (0,1), (1,2) or route B = (1,0), (2,1). With v = e01 + e12 - e10 - e21 and d = v . c (route A's
cost minus route B's), Gaussian noise sigma on every cell gives P(B) = Phi(d / (2 sigma)) (four noisy cells).
The true path w* is route A. Then, with x = d / (2 sigma) and phi the standard normal density:
  ss_loss      l = 4 P(B);  grad = 4 phi(x) / (2 sigma) v;  Hessian = -4 x phi(x) / (2 sigma)^2 v v^T
  po_fy        grad = w* - E[path]: +P(B) on route A's cells, -P(B) on route B's;
               Hessian = -d E[path] / dc = phi(x) / (2 sigma) v v^T
  ss_algorithm (L1) l = 4 P(B), the same gradient as ss_loss; (L2) l = 4 P(B)^2, grad = 8 P(B) phi(x)/(2 sigma) v;
  (MSE, the default: the mean over the 9 cells) l = 4 P(B)^2 / 9 and the L2 gradient / 9
"""

import math

import pytest
import torch

from losses import LOSSES, make_objective, newton_target_from

M, SIGMA = 100.0, 0.3
A_CELLS, B_CELLS = (1, 5), (3, 7)  # flattened (0,1), (1,2) and (1,0), (2,1)


def grid(d: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    c = torch.full((1, 9), M, dtype=torch.float64)
    c[0, [0, 8]] = 1.0
    c[0, list(A_CELLS)] = torch.tensor([2.0 + d, 1.0], dtype=torch.float64)
    c[0, list(B_CELLS)] = torch.tensor([2.0, 1.0], dtype=torch.float64)
    target = torch.zeros(1, 9, dtype=torch.float64)
    target[0, [0, 8, *A_CELLS]] = 1.0
    v = torch.zeros(9, dtype=torch.float64)
    v[list(A_CELLS)], v[list(B_CELLS)] = 1.0, -1.0
    return c, target, v


def normal(x):
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(x / math.sqrt(2)))


D = 0.2
X = D / (2 * SIGMA)
PDF, P_B = normal(X)


def test_ss_loss_value_gradient_and_hessian():
    torch.manual_seed(0)
    c, target, v = grid(D)
    loss = LOSSES.build("ss_loss", sigma=SIGMA, samples=200_000)
    value, grad, hessian = loss.estimates(c, target, hessian=True)
    assert value.item() == 4.0  # the hard loss at c itself: route B is taken (d > 0)
    # 200 000 samples: standard error about 0.025 per entry (measured over seeds); 5 se, against a signal of 2.5
    torch.testing.assert_close(grad[0], 4 * PDF / (2 * SIGMA) * v, atol=0.12, rtol=0)
    kappa = (v @ hessian @ v / 16).item()  # least-squares fit of hessian ~ kappa v v^T
    assert kappa == pytest.approx(-4 * X * PDF / (2 * SIGMA) ** 2, rel=0.25)
    off = torch.ones(9, dtype=torch.bool)
    off[[*A_CELLS, *B_CELLS]] = False
    assert hessian[off][:, off].abs().max() < 0.5


def test_po_fy_gradient_sign_and_hessian_for_a_minimising_solver():
    torch.manual_seed(1)
    c, target, v = grid(D)
    loss = LOSSES.build("po_fy", sigma=SIGMA, samples=50_000)
    _, grad, hessian = loss.estimates(c, target, hessian=True)
    expected = torch.zeros(9, dtype=torch.float64)
    expected[list(A_CELLS)], expected[list(B_CELLS)] = P_B, -P_B  # w* - E[path]
    torch.testing.assert_close(grad[0], expected, atol=0.01, rtol=0)
    torch.testing.assert_close(hessian, PDF / (2 * SIGMA) * torch.outer(v, v), atol=0.06, rtol=0)
    # descending the gradient makes route A cheaper relative to B: the right direction for a minimising solver
    assert (v @ grad[0]).item() > 0


@pytest.mark.parametrize(
    "norm, value, scale",
    [
        ("l1", 4 * P_B, 4 * PDF / (2 * SIGMA)),
        ("l2", 4 * P_B**2, 8 * P_B * PDF / (2 * SIGMA)),
        ("mse", 4 * P_B**2 / 9, 8 * P_B * PDF / (2 * SIGMA) / 9),
    ],
)
def test_ss_algorithm_value_and_gradient(norm, value, scale):
    torch.manual_seed(2)
    c, target, v = grid(D)
    loss = LOSSES.build("ss_algorithm", sigma=SIGMA, samples=200_000, norm=norm)
    estimate, grad, hessian = loss.estimates(c, target)
    assert hessian is None and estimate.item() == pytest.approx(value, abs=0.02)
    torch.testing.assert_close(grad[0], scale * v, atol=0.12, rtol=0)


def test_objective_carries_the_estimated_value_and_the_variants_gradient():
    """Baseline: value = the estimated loss, gradient grad / N; hessian: the Newton step (y - z) / N."""
    c, target, v = grid(D)
    y = c.repeat(2, 1)
    t = target.repeat(2, 1)
    loss = LOSSES.build("po_fy", sigma=SIGMA, samples=64)
    for variant in ("baseline", "hessian", "fisher"):
        torch.manual_seed(3)
        values, grad, hessian = loss.estimates(y, t, hessian=variant == "hessian")
        torch.manual_seed(3)
        leaf = y.clone().requires_grad_(True)
        out = make_objective(loss, variant, 1.0)(leaf, t)
        out.backward()
        assert out.item() == pytest.approx(values.mean().item())
        if variant == "baseline":
            expected = grad / 2
        else:
            z = newton_target_from(y, grad, hessian if variant == "hessian" else "fisher", 1.0)
            expected = (y - z) / 2
        torch.testing.assert_close(leaf.grad, expected)


def test_variants_the_paper_does_not_define_are_refused():
    with pytest.raises(ValueError, match=r"has no 'hessian' variant \(it supports: baseline, fisher\)"):
        make_objective(LOSSES.build("ss_algorithm"), "hessian", 1000)
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        LOSSES.build("ss_loss", samples=0)
    with pytest.raises(ValueError, match=r"norm must be one of mse, l1, l2"):
        LOSSES.build("ss_algorithm", norm="l3")
