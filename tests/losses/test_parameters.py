"""``inject_fisher_per_sample`` against a closed form: a linear model with an MSE loss.

For y_i = W x_i + b and l_i = ||y_i - t_i||^2, the per-sample gradients are known exactly:
dl_i/dW = 2 r_i x_i^T and dl_i/db = 2 r_i with r_i = y_i - t_i. Stacked (W row-major, then b) they form the
(N, P) matrix g. Algorithm 2 on the per-sample copies of a mean-reduced loss must give the shared parameters the
gradient ``sum_i [G (N G^T G + lam I)^-1]_i`` with G = g / N, which is ``(g^T g / N + lam I)^-1 g^T 1 / N``:
computed here from the SVD of the explicit g (``torch.linalg.svd``, float64), independent of the solve and of
the Woodbury form the library takes when N < P.
"""

import math

import pytest
import torch

from losses import inject_fisher_per_sample

REGIMES = [  # (N, d, k): N < P, N > P, N = 1, N = P - 1
    (3, 20, 2),
    (60, 3, 1),
    (1, 4, 2),
    (8, 4, 1),
    (40, 10, 3),
]
LAMBDAS = [1e-6, 1e-2, 1.0, 1e6]
SCALES = [1e-3, 1.0, 1e3]


def _closed_form(x, t, W, b, lam):
    """The step, and the condition number of its P x P system ``g^T g / N + lam I``."""
    r = x @ W.T + b - t  # (N, k) residuals
    g = torch.cat([(2 * r.unsqueeze(2) * x.unsqueeze(1)).flatten(1), 2 * r], dim=1)  # (N, P) per-sample gradients
    n, p = g.shape
    # (g^T g / N + lam I)^-1 g^T 1 / N = V diag(s / (s^2 + N lam)) U^T 1 with g = U diag(s) V^T
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    step = vh.T @ (s / (s**2 + n * lam) * (u.T @ torch.ones(n, dtype=g.dtype)))
    smallest = s[-1] ** 2 / n if n >= p else 0.0
    condition = (s[0] ** 2 / n + lam) / (smallest + lam)
    return step, g, condition


def _through_helper(x, t, W, b, lam):
    W, b = W.clone().requires_grad_(), b.clone().requires_grad_()
    Wc, bc = inject_fisher_per_sample((W, b), x.shape[0], lam)
    y = torch.einsum("nki,ni->nk", Wc, x) + bc
    ((y - t).pow(2).sum(1)).mean().backward()
    return W.grad, b.grad


@pytest.mark.parametrize("n, d, k", REGIMES)
@pytest.mark.parametrize("lam", LAMBDAS)
def test_the_shared_gradient_is_the_fisher_newton_step_of_the_closed_form(n, d, k, lam):
    generator = torch.Generator().manual_seed(n * 1000 + d * 10 + k)
    checked = 0
    for draw in range(12):
        scale = SCALES[draw % len(SCALES)]
        x = scale * torch.randn(n, d, generator=generator, dtype=torch.float64)
        t = torch.randn(n, k, generator=generator, dtype=torch.float64)
        W, b = (
            torch.randn(k, d, generator=generator, dtype=torch.float64),
            torch.randn(k, generator=generator, dtype=torch.float64),
        )
        if draw == 4:
            x[1:] = x[0]  # every input alike: g has rank <= k
        expected, g, condition = _closed_form(x, t, W, b, lam)
        got = torch.cat([v.flatten() for v in _through_helper(x, t, W, b, lam)])
        # backward error: the step solves the P x P Fisher system up to rounding, however ill-conditioned it is
        # (1e-8, not 1e-15: the Woodbury form solves the N x N system, which is stable there, not in P x P terms)
        system = g.T @ g / n + lam * torch.eye(g.shape[1], dtype=g.dtype)
        rhs = g.mean(0)
        residual = (system @ got - rhs).norm() / (torch.linalg.matrix_norm(system, 2) * got.norm() + rhs.norm())
        assert residual <= 1e-8, (n, d, k, lam, scale, draw)
        # forward error, where float64 determines the step to 1e-6 (tiny lam on rank-deficient or 1e3-scale
        # gradients gives condition numbers of 1e14 and more: there only the backward error is meaningful)
        if condition <= 1e8:
            assert (expected - got).norm() <= 1e-6 * expected.norm(), (n, d, k, lam, scale, draw, condition)
            checked += 1
    assert checked >= 4 if lam >= 1e-2 else checked >= 1


def test_huge_lambda_gives_the_plain_gradient_over_lambda_and_n_one_the_closed_form_rescaling():
    generator = torch.Generator().manual_seed(0)
    x, t = (
        torch.randn(7, 5, generator=generator, dtype=torch.float64),
        torch.randn(7, 2, generator=generator, dtype=torch.float64),
    )
    W = torch.randn(2, 5, generator=generator, dtype=torch.float64).requires_grad_()
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    ((x @ W.T + b - t).pow(2).sum(1)).mean().backward()
    plain = torch.cat([W.grad.flatten(), b.grad])
    got = torch.cat([g.flatten() for g in _through_helper(x, t, W.detach(), b.detach(), 1e9)])
    assert torch.allclose(got * 1e9, plain, rtol=1e-6)
    # N = 1: (g g^T + lam I)^-1 g = g / (lam + |g|^2) (Sherman-Morrison), the direction of the plain gradient
    one = _through_helper(x[:1], t[:1], W.detach(), b.detach(), 0.5)
    W1 = W.detach().clone().requires_grad_()
    b1 = b.detach().clone().requires_grad_()
    ((x[:1] @ W1.T + b1 - t[:1]).pow(2).sum()).backward()
    g = torch.cat([W1.grad.flatten(), b1.grad])
    assert torch.allclose(torch.cat([one[0].flatten(), one[1]]), g / (0.5 + g.dot(g)), rtol=1e-10)


def test_forward_is_copies_and_a_single_tensor_gives_a_tensor():
    W = torch.randn(3, 4, requires_grad=True)
    copies = inject_fisher_per_sample(W, 5, 0.1)
    assert isinstance(copies, torch.Tensor) and copies.shape == (5, 3, 4)
    assert torch.equal(copies, W.detach().expand(5, 3, 4))
    both = inject_fisher_per_sample([W, torch.zeros(3)], 2, 0.1)
    assert isinstance(both, tuple) and [c.shape for c in both] == [(2, 3, 4), (2, 3)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 4, "lam": 0.0}, "lam"),
        ({"n": 4, "lam": math.inf}, "lam"),
        ({"n": 0, "lam": 0.1}, "n \\(the batch"),
        ({"n": 2.0, "lam": 0.1}, "n \\(the batch"),
    ],
)
def test_bad_arguments_are_one_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        inject_fisher_per_sample(torch.zeros(2), **kwargs)
