"""The Newton-loss core against closed forms (paper Section 3, Definitions 1-2, Algorithm 2, App. F)."""

import math

import pytest
import torch

from losses import (
    fisher_solve,
    inject_fisher,
    mean_hessian,
    newton_loss,
    newton_target,
    newton_target_from,
    per_sample_gradients,
)


@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def quartic(a):
    """l_i(y) = sum_k y_k^4 / 4 + 1/2 y^T A y: gradient y^3 + A y, Hessian diag(3 y^2) + A."""
    return lambda y: y.pow(4).sum(1) / 4 + 0.5 * torch.einsum("nk,kl,nl->n", y, a, y)


def test_mse_newton_loss_is_mse_again():
    """l_i = 1/2 ||y_i - t_i||^2 has H = I, so z = y - (y - t)/(1 + lam): z = t as lam -> 0, and for any
    lam the Newton gradient is the MSE gradient (y - t)/N scaled by 1/(1 + lam)."""
    torch.manual_seed(0)
    y, t = torch.randn(7, 4), torch.randn(7, 4)
    mse = lambda v: 0.5 * (v - t).pow(2).sum(1)
    for curvature in ("hessian",):
        z = newton_target(y, mse, curvature=curvature, lam=1e-12)
        torch.testing.assert_close(z, t, rtol=0, atol=1e-10)
    lam = 0.5
    y_leaf = y.clone().requires_grad_(True)
    newton_loss(y_leaf, mse, curvature="hessian", lam=lam).backward()
    torch.testing.assert_close(y_leaf.grad, (y - t) / 7 / (1 + lam), rtol=1e-12, atol=1e-12)


def test_newton_loss_of_newton_loss_is_the_same_newton_loss():
    """The Newton loss l*_i(y) = 1/2 ||z_i - y_i||^2 has Hessian I and gradient y_i - z_i, so its own
    Hessian Newton target (lam -> 0) is z again: the fixpoint noted after Definition 2."""
    torch.manual_seed(1)
    a = torch.randn(3, 3)
    a = a @ a.T + torch.eye(3)
    y = torch.randn(6, 3)
    z = newton_target(y, quartic(a), curvature="hessian", lam=0.3)
    z_of_newton = newton_target(y, lambda v: 0.5 * (z - v).pow(2).sum(1), curvature="hessian", lam=1e-12)
    torch.testing.assert_close(z_of_newton, z, rtol=0, atol=1e-10)


def test_hessian_target_is_one_exact_newton_step():
    """Quartic loss: z_i = y_i - (mean_j diag(3 y_j^2) + A + lam I)^-1 (y_i^3 + A y_i), solved by hand."""
    torch.manual_seed(2)
    a = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 1.5]])
    y = torch.randn(5, 3)
    lam = 0.1
    m = torch.diag(3 * y.pow(2).mean(0)) + a + lam * torch.eye(3)
    expected = y - (torch.linalg.inv(m) @ (y.pow(3) + y @ a).T).T
    torch.testing.assert_close(newton_target(y, quartic(a), curvature="hessian", lam=lam), expected)


def test_mean_hessian_of_softplus_pair():
    """l(s) = softplus(s1 - s2): H = sig(d)(1 - sig(d)) [[1, -1], [-1, 1]] with d = s1 - s2, averaged."""
    s = torch.tensor([[0.3, -0.2], [1.0, 2.0], [-0.5, -0.5]])
    y, grad = per_sample_gradients(s, lambda v: torch.nn.functional.softplus(v[:, 0] - v[:, 1]), create_graph=True)
    sig = torch.sigmoid(s[:, 0] - s[:, 1])
    c = (sig * (1 - sig)).mean()
    torch.testing.assert_close(mean_hessian(y, grad), c * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))


def test_fisher_target_matches_definition_2():
    """z_i = y_i - (G^T G / N + lam I)^-1 g_i with g_i = grad l_i, written out with an explicit inverse."""
    torch.manual_seed(3)
    a = torch.randn(4, 4)
    y = torch.randn(9, 4)
    g = y.pow(3) + y @ a.T @ a
    lam = 0.7
    expected = y - g @ torch.linalg.inv(g.T @ g / 9 + lam * torch.eye(4))
    torch.testing.assert_close(newton_target(y, quartic(a.T @ a), curvature="fisher", lam=lam), expected)


@pytest.mark.parametrize("n, m", [(3, 8), (2, 5), (1, 4)])
def test_woodbury_equals_direct_solve(n, m):
    """App. F: for N < m the N x N form must equal G (G^T G / N + lam I_m)^-1 computed directly."""
    torch.manual_seed(n * 10 + m)
    g = torch.randn(n, m)
    lam = 0.05
    direct = g @ torch.linalg.inv(g.T @ g / n + lam * torch.eye(m))
    torch.testing.assert_close(fisher_solve(g, lam, scale=n), direct, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n, m", [(16, 5), (3, 10)])
def test_inject_fisher_contract(n, m):
    """Algorithm 2 = Definition 2: grad through inject_fisher of mean_i l_i equals the Fisher Newton loss's."""
    torch.manual_seed(4)
    a = torch.randn(m, m)
    loss = quartic(a @ a.T)
    y = torch.randn(n, m)
    y1 = y.clone().requires_grad_(True)
    loss(inject_fisher(y1, 0.2)).mean().backward()
    y2 = y.clone().requires_grad_(True)
    newton_loss(y2, loss, curvature="fisher", lam=0.2).backward()
    torch.testing.assert_close(y1.grad, y2.grad, rtol=0, atol=1e-6)
    assert y1.grad.abs().max() > 1e-3  # the contract is not met by two zero gradients


def test_inject_fisher_matches_algorithm_2_literally():
    """backward(G) = G @ inverse(G^T G * N + lam I), the paper's pseudo-code verbatim."""
    torch.manual_seed(5)
    y = torch.randn(6, 3, requires_grad=True)
    w = torch.randn(6, 3)
    (inject_fisher(y, 1.5) * w).pow(2).sum().backward()
    g = 2 * (y.detach() * w) * w
    torch.testing.assert_close(y.grad, g @ torch.linalg.inv(g.T @ g * 6 + 1.5 * torch.eye(3)))


@pytest.mark.parametrize("curvature", ["hessian", "fisher"])
def test_large_lambda_gives_plain_gradient_direction(curvature):
    """(M + lam I)^-1 g = g / lam + O(1/lam^2): lam (y - z) -> g, and the angle to g shrinks with lam."""
    torch.manual_seed(6)
    a = torch.randn(4, 4)
    loss = quartic(a @ a.T)
    y = torch.randn(8, 4)
    _, g = per_sample_gradients(y, loss)
    cosines = []
    for lam in (0.01, 1.0, 100.0, 1e6):
        step = y - newton_target(y, loss, curvature=curvature, lam=lam)
        cosines.append(torch.nn.functional.cosine_similarity(step.flatten(), g.flatten(), dim=0).item())
    assert cosines == sorted(cosines) and cosines[0] < 0.999
    assert cosines[-1] > 1 - 1e-9
    torch.testing.assert_close(
        1e9 * (y - newton_target(y, loss, curvature=curvature, lam=1e9)), g, rtol=1e-5, atol=1e-9
    )


def test_target_from_given_gradient_and_curvature():
    """A loss that estimates its own gradient G and curvature M gets z = y - G (M + lam I)^-1."""
    torch.manual_seed(7)
    y, g = torch.randn(5, 3), torch.randn(5, 3)
    m = torch.randn(3, 3)
    m = m @ m.T
    torch.testing.assert_close(newton_target_from(y, g, m, 0.4), y - g @ torch.linalg.inv(m + 0.4 * torch.eye(3)))
    torch.testing.assert_close(
        newton_target_from(y, g, "fisher", 0.4), y - g @ torch.linalg.inv(g.T @ g / 5 + 0.4 * torch.eye(3))
    )


def test_target_is_detached_and_newton_loss_grad_reaches_y_only():
    torch.manual_seed(8)
    y = torch.randn(4, 3, requires_grad=True)
    z = newton_target(y, quartic(torch.eye(3)), curvature="hessian", lam=1.0)
    assert not z.requires_grad
    loss = newton_loss(y, quartic(torch.eye(3)), curvature="hessian", lam=1.0)
    (grad,) = torch.autograd.grad(loss, y)
    torch.testing.assert_close(grad, (y.detach() - z) / 4)


@pytest.mark.parametrize("lam", [0, -1.0, math.nan, math.inf, None, True, "1"])
def test_bad_lambda_is_a_clear_error(lam):
    y = torch.randn(3, 2)
    for call in (
        lambda: newton_target(y, quartic(torch.eye(2)), curvature="fisher", lam=lam),
        lambda: inject_fisher(y, lam),
    ):
        with pytest.raises(ValueError, match="lam .* must be a positive finite number"):
            call()


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), ()])
def test_output_must_be_2d(shape):
    with pytest.raises(ValueError, match=r"y must be a 2-D \(N, m\) tensor"):
        newton_target(torch.randn(shape), lambda v: v.sum(-1), curvature="hessian", lam=1.0)
    with pytest.raises(ValueError, match=r"y must be a 2-D"):
        inject_fisher(torch.randn(shape), 1.0)


def test_per_sample_loss_of_wrong_shape():
    with pytest.raises(ValueError, match=r"per_sample_loss must return shape \(4,\).*got \(\)"):
        newton_target(torch.randn(4, 2), lambda v: v.sum(), curvature="hessian", lam=1.0)


def test_unknown_curvature():
    with pytest.raises(ValueError, match="curvature must be one of"):
        newton_target(torch.randn(4, 2), lambda v: v.sum(1), curvature="gauss-newton", lam=1.0)


def test_non_finite_gradient_names_the_rows():
    y = torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]])
    sqrt_loss = lambda v: v.sqrt().sum(1)  # d/dv sqrt(v) is inf at 0: rows 1 and 2
    for curvature in ("hessian", "fisher"):
        with pytest.raises(FloatingPointError, match=r"non-finite gradient of the per-sample loss in rows \[1, 2\]"):
            newton_target(y, sqrt_loss, curvature=curvature, lam=1.0)
    with pytest.raises(FloatingPointError, match=r"rows \[1, 2\]"):
        sqrt_loss(inject_fisher(y.clone().requires_grad_(True), 1.0)).mean().backward()
