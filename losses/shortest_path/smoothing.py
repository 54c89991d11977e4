"""Gaussian stochastic smoothing estimators (paper App. B.4 eqs. 15-16, App. B.5 eq. 17; SPEC 5).

With noise ``sigma Z``, ``Z ~ N(0, I)``, the exponential-family terms of Lemma 1 are ``grad nu = Z / sigma``
and ``hess nu = I / sigma^2``; subtracting ``f(y)`` (the method of covariates) keeps them unbiased and
lowers their variance:

    grad  E f(y + sigma Z) = E[(f(y + sigma Z) - f(y)) Z] / sigma                       (15)
    hess  E f(y + sigma Z) = E[(f(y + sigma Z) - f(y)) (Z Z^T - I)] / sigma^2           (16)
    jac   E g(y + sigma Z) = E[(g(y + sigma Z) - g(y)) Z^T] / sigma      (Stein; vector-valued g)
"""

from __future__ import annotations

from typing import Callable

import torch


def noise(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise in ``like``'s dtype, drawn on ``like``'s device (its default generator), or on the
    given ``generator``'s device and moved: no host-to-device copy of the noise in a GPU trial."""
    device = like.device if generator is None else generator.device
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=device).to(like.device)


def with_perturbed(y: torch.Tensor, z: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, m) rows and (S, N, m) noise -> the (N + S*N, m) rows ``y`` then ``y + sigma Z`` (sample-major), so the
    function or solver runs once per step on both."""
    return torch.cat([y, (y.unsqueeze(0) + sigma * z).reshape(-1, y.shape[1])])


def smoothed_loss_estimates(
    f: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    sigma: float,
    samples: int,
    generator: torch.Generator | None = None,
    hessian: bool = False,
):
    """Eqs. 15-16 for a per-sample loss ``f`` ((K, m) -> (K,)) at each row of ``y`` (N, m).

    ``f`` is called once, on the unperturbed and the perturbed rows together (one solver call per step).

    Returns:
        value: (N,) ``f(y)``.
        grad: (N, m), row i estimating grad E f(y_i + sigma Z).
        hess: (m, m) estimate of the batch mean of the Hessians (Definition 1's M), or None.
    """
    n, m = y.shape
    z = noise((samples, n, m), generator, y)
    values = f(with_perturbed(y, z, sigma))
    value = values[:n]
    delta = values[n:].reshape(samples, n) - value.unsqueeze(0)  # (S, N)
    grad = (delta.unsqueeze(-1) * z).mean(0) / sigma
    if not hessian:
        return value, grad, None
    flat_z = z.reshape(-1, m)
    outer = (delta.reshape(-1, 1) * flat_z).T @ flat_z  # sum over samples and rows of delta Z Z^T
    mean_hessian = (outer - delta.sum() * torch.eye(m, dtype=y.dtype, device=y.device)) / (samples * n * sigma**2)
    return value, grad, 0.5 * (mean_hessian + mean_hessian.T)


def smoothed_solution_estimates(
    solve: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    sigma: float,
    samples: int,
    generator: torch.Generator | None = None,
):
    """The smoothed solver ``E g(y + sigma Z)`` and the sample noise/differences for its Jacobian; ``solve`` is
    called once, on the unperturbed and the perturbed rows together.

    Returns:
        mean: (N, m) estimate of ``E g(y_i + sigma Z)``.
        z: (S, N, m) the noise; delta: (S, N, m) ``g(y_i + sigma Z) - g(y_i)``. The Jacobian of row i is
        ``mean_s delta[s, i] z[s, i]^T / sigma``; products with it need no (m x m) matrix per row.
        base: (N, m) ``g(y)``.
    """
    n, m = y.shape
    z = noise((samples, n, m), generator, y)
    solved = solve(with_perturbed(y, z, sigma))
    base, perturbed = solved[:n], solved[n:].reshape(samples, n, m)
    return perturbed.mean(0), z, perturbed - base.unsqueeze(0), base
