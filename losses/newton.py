"""Newton losses (Petersen et al., NeurIPS 2024, Section 3, Algorithms 1-2, Appendix F).

A training step is split in two: one regularised Newton step on the loss in output
space gives a target ``z`` (Eq. 7), then the network takes a gradient step on the convex
Newton loss ``mean_i 1/2 ||z_i - y_i||^2`` (Eq. 8), whose gradient ``(y_i - z_i) / N`` is that
Newton step.

Conventions: ``y`` is the (N, m) model output, ``per_sample_loss`` maps (N, m) to (N,)
with row i depending on ``y[i]`` only, and the training loss is their mean.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .finite import check_finite as _check_finite
from .finite import solve

PerSampleLoss = Callable[[torch.Tensor], torch.Tensor]
CURVATURES = ("hessian", "fisher")


def newton_target(
    y: torch.Tensor, per_sample_loss: PerSampleLoss, *, curvature: str, lam: float, monitor=None
) -> torch.Tensor:
    """Tikhonov-regularised Newton target, Eq. 7 with Definition 1 or 2.

    ``z_i = y_i - (M + lam I)^-1 grad l_i(y_i)`` where ``M = mean_j hess l_j(y_j)`` ("hessian",
    Def. 1) or ``M = mean_j grad l_j grad l_j^T`` ("fisher", Def. 2).

    Args:
        y: (N, m) model outputs.
        per_sample_loss: maps (N, m) to the (N,) per-sample losses.
        curvature: "hessian" or "fisher".
        lam: Tikhonov strength, > 0.
        monitor: optional ``NewtonSystemMonitor`` shown the Hessian variant's ``M + lam I``.
    Returns:
        z: (N, m), detached.
    """
    return _target_and_losses(y, per_sample_loss, curvature, lam, monitor)[0]


def newton_objective(
    y: torch.Tensor, per_sample_loss: PerSampleLoss, *, curvature: str, lam: float, monitor=None
) -> torch.Tensor:
    """What a Newton variant trains on: a scalar whose *value* is the algorithmic loss ``mean_i l_i(y_i)`` (so
    training-loss curves of every variant measure the same thing) and whose *gradient* in y is the Newton
    loss's, ``(y_i - z_i) / N`` (Eq. 8)."""
    z, losses = _target_and_losses(y, per_sample_loss, curvature, lam, monitor)
    newton = 0.5 * (z - y).pow(2).sum(1).mean()
    return losses.detach().mean() + (newton - newton.detach())


def _target_and_losses(y, per_sample_loss, curvature, lam, monitor):
    _check_output(y)
    _check_lam(lam)
    if curvature not in CURVATURES:
        raise ValueError(f"curvature must be one of {CURVATURES}, got {curvature!r}")
    y, grad, losses = _gradients(y, per_sample_loss, curvature == "hessian")
    if curvature == "fisher":
        return newton_target_from(y, grad.detach(), "fisher", lam), losses
    return newton_target_from(y, grad.detach(), mean_hessian(y, grad), lam, monitor=monitor), losses


def newton_target_from(y: torch.Tensor, grad: torch.Tensor, curvature, lam: float, *, monitor=None) -> torch.Tensor:
    """Eq. 7 from a given per-sample gradient and curvature (for losses that estimate their own).

    Args:
        y: (N, m) model outputs.
        grad: (N, m); row i is grad l_i(y_i).
        curvature: an (m, m) matrix M, or "fisher" for ``M = grad^T grad / N`` (Def. 2).
        lam: Tikhonov strength, > 0.
        monitor: optional ``NewtonSystemMonitor`` shown ``M + lam I`` when M is given.
    Returns:
        z: (N, m), detached.
    """
    _check_output(y)
    _check_lam(lam)
    _check_finite(grad, "gradient of the per-sample loss")
    y, grad = y.detach(), grad.detach()
    if isinstance(curvature, str):
        if curvature != "fisher":
            raise ValueError(f"a given curvature is an (m, m) matrix or 'fisher', got {curvature!r}")
        step = fisher_solve(grad, lam, scale=y.shape[0])
    else:
        _check_finite(curvature, "curvature")
        system = curvature + lam * torch.eye(y.shape[1], dtype=y.dtype, device=y.device)
        if monitor is not None:
            monitor.observe(system)
        # M is symmetric, so grad @ (M + lam I)^-1 = ((M + lam I)^-1 grad^T)^T.
        step = solve(system, grad.T).T
    return y - step


def newton_loss(
    y: torch.Tensor, per_sample_loss: PerSampleLoss, *, curvature: str, lam: float, monitor=None
) -> torch.Tensor:
    """Newton loss ``mean_i 1/2 ||z_i - y_i||^2`` (Eq. 8, Definitions 1-2); gradients reach ``y`` only."""
    z = newton_target(y, per_sample_loss, curvature=curvature, lam=lam, monitor=monitor)
    return 0.5 * (z - y).pow(2).sum(1).mean()


def inject_fisher(y: torch.Tensor, lam: float) -> torch.Tensor:
    """InjectFisher (Algorithm 2): identity forward; backward maps G to ``G (N G^T G + lam I)^-1``.

    For a mean-reduced loss placed after it, the gradient reaching ``y`` equals the gradient
    of the Fisher Newton loss (Definition 2).
    """
    _check_output(y)
    _check_lam(lam)
    return _InjectFisher.apply(y, lam)


class _InjectFisher(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, lam):
        ctx.lam = lam
        return y.view_as(y)

    @staticmethod
    def backward(ctx, upstream):
        _check_finite(upstream, "gradient reaching inject_fisher")
        # Upstream rows are grad l_i / N; with per-sample rows g = N G,
        # G (N G^T G + lam I)^-1 = g (g^T g / N + lam I)^-1 / N, the Fisher Newton step / N.
        n = upstream.shape[0]
        return fisher_solve(upstream * n, ctx.lam, scale=n) / n, None


def fisher_solve(grad: torch.Tensor, lam: float, *, scale: int) -> torch.Tensor:
    """Rows of ``grad (grad^T grad / scale + lam I_m)^-1`` (Def. 2; Woodbury, App. F, when N < m).

    Push-through identity: ``G (G^T G / s + lam I_m)^-1 = s (G G^T + s lam I_N)^-1 G``,
    which solves an N x N system instead of an m x m one.
    """
    n, m = grad.shape
    if n < m:
        gram = grad @ grad.T
        return scale * solve(gram + scale * lam * torch.eye(n, dtype=grad.dtype, device=grad.device), grad)
    fisher = grad.T @ grad / scale
    return solve(fisher + lam * torch.eye(m, dtype=grad.dtype, device=grad.device), grad.T).T


def per_sample_gradients(y: torch.Tensor, per_sample_loss: PerSampleLoss, *, create_graph: bool = False):
    """Return ``(y_leaf, G)`` with row i of G = grad l_i(y_i), for all rows in one backward pass."""
    return _gradients(y, per_sample_loss, create_graph)[:2]


def _gradients(y, per_sample_loss, create_graph):
    """``(y_leaf, G, losses)``: the per-sample gradients and the (N,) losses they came from."""
    y = y.detach().requires_grad_(True)
    with torch.enable_grad():
        losses = per_sample_loss(y)
        if losses.shape != (y.shape[0],):
            raise ValueError(
                f"per_sample_loss must return shape ({y.shape[0]},) for y of shape {tuple(y.shape)}, "
                f"got {tuple(losses.shape)}"
            )
        (grad,) = torch.autograd.grad(losses.sum(), y, create_graph=create_graph)
    _check_finite(grad, "gradient of the per-sample loss")
    return y, grad, losses


def mean_hessian(y: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``M = mean_j hess l_j(y_j)`` (Def. 1) as m Hessian-vector products in one vmapped double backward.

    Row j of ``grad`` depends on ``y[j]`` only, so the product with the basis vector e_k,
    broadcast to every row, gives row k of every sample's Hessian at once.
    """
    n, m = y.shape
    basis = torch.eye(m, dtype=y.dtype, device=y.device).unsqueeze(1).expand(m, n, m)
    (rows,) = torch.autograd.grad(grad, y, grad_outputs=basis, is_grads_batched=True)
    hessian = rows.mean(1)
    _check_finite(hessian, "Hessian of the per-sample loss")
    return 0.5 * (hessian + hessian.T)  # symmetric in exact arithmetic; remove round-off asymmetry


def _check_lam(lam) -> None:
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam <= 0:
        raise ValueError(f"lam (the Tikhonov strength) must be a positive finite number, got {lam!r}")


def _check_output(y) -> None:
    if not isinstance(y, torch.Tensor) or y.dim() != 2:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"y must be a 2-D (N, m) tensor of model outputs, got {shape}")
