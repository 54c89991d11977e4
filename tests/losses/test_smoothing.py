"""Smoothing estimators against closed forms: unbiased within sampling error (App. B.4, eqs. 15-16)."""

import torch

from losses.shortest_path.smoothing import smoothed_loss_estimates, smoothed_solution_estimates


def test_gradient_and_hessian_of_a_quadratic_are_unbiased():
    """f(y) = y^T A y + b^T y: E f(y + sZ) = f(y) + s^2 tr(A), so its gradient is (A + A^T) y + b and its Hessian
    A + A^T at every y. 200 000 samples: the errors must be within 5 standard errors of the estimators."""
    torch.manual_seed(0)
    a = torch.randn(3, 3, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64)
    f = lambda v: torch.einsum("ki,ij,kj->k", v, a, v) + v @ b
    y = torch.randn(2, 3, dtype=torch.float64)
    samples, sigma = 200_000, 0.5
    generator = torch.Generator().manual_seed(1)
    _, grad, hess = smoothed_loss_estimates(f, y, sigma, samples, generator, hessian=True)
    true_grad = y @ (a + a.T).T + b
    # per-sample terms for the standard errors, from the same noise
    z = torch.randn((samples, 2, 3), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    delta = f((y + sigma * z).reshape(-1, 3)).reshape(samples, 2) - f(y)
    se_grad = (delta.unsqueeze(-1) * z / sigma).std(0) / samples**0.5
    assert ((grad - true_grad).abs() < 5 * se_grad).all()
    terms = (delta.reshape(-1, 1, 1) * (z.reshape(-1, 3, 1) * z.reshape(-1, 1, 3) - torch.eye(3))) / sigma**2
    se_hess = terms.std(0) / (2 * samples) ** 0.5
    assert ((hess - (a + a.T)).abs() < 5 * se_hess + 1e-12).all()
    assert (hess - (a + a.T)).abs().max() < 0.1  # and the estimate is informative, not just noisy


def test_variance_reduction_leaves_a_constant_loss_at_zero():
    """f = const: (f(y + sZ) - f(y)) = 0 exactly, so both estimates are exactly zero whatever the noise."""
    _, grad, hess = smoothed_loss_estimates(
        lambda v: torch.full((len(v),), 3.0), torch.randn(4, 5), 0.1, 7, hessian=True
    )
    assert torch.equal(grad, torch.zeros(4, 5)) and torch.equal(hess, torch.zeros(5, 5))


def test_jacobian_of_a_smoothed_step_function_matches_the_gaussian_density():
    """g(y) = 1[y > 0] elementwise: E g(y + sZ) = Phi(y / s) and its Jacobian is diag(phi(y / s) / s)."""
    y = torch.tensor([[-0.1, 0.0, 0.2]], dtype=torch.float64)
    sigma, samples = 0.3, 400_000
    mean, z, delta, _ = smoothed_solution_estimates(
        lambda v: (v > 0).double(), y, sigma, samples, torch.Generator().manual_seed(2)
    )
    normal = torch.distributions.Normal(0.0, 1.0)
    torch.testing.assert_close(mean[0], normal.cdf(y[0] / sigma), atol=4e-3, rtol=0)
    jacobian = torch.einsum("si,sj->ij", delta[:, 0], z[:, 0]) / samples / sigma
    expected = torch.diag(normal.log_prob(y[0] / sigma).exp() / sigma)
    torch.testing.assert_close(jacobian, expected, atol=0.03, rtol=0)


def test_each_estimate_calls_the_solver_once_with_the_unperturbed_rows_first():
    """One call per training step (a batched solver pays per call): rows 0..N-1 are y itself, and the value or
    base returned is f(y) / g(y) from that same call."""
    y = torch.randn(4, 6, dtype=torch.float64)
    calls = []

    def f(v):
        calls.append(v.clone())
        return v.sum(1)

    def g(v):
        calls.append(v.clone())
        return (v > 0).double()

    value, _, _ = smoothed_loss_estimates(f, y, 0.1, 5, hessian=True)
    assert len(calls) == 1 and calls[0].shape == (4 * 6, 6) and torch.equal(calls[0][:4], y)
    torch.testing.assert_close(value, y.sum(1), rtol=0, atol=0)
    *_, base = smoothed_solution_estimates(g, y, 0.1, 5)
    assert len(calls) == 2 and torch.equal(calls[1][:4], y) and torch.equal(base, (y > 0).double())
