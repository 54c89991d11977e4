"""The three methods every table of the paper compares, behind one callable.

``baseline``: the algorithmic loss itself; ``hessian``: the Newton loss of Definition 1
(Algorithm 1); ``fisher``: the empirical-Fisher Newton loss injected into the backward pass
(Definition 2, Algorithm 2). Training code calls ``objective(y, target)`` and backpropagates
the scalar it returns, without knowing which variant it got. The scalar's *value* is the algorithmic
loss for every variant (what ``train_loss`` reports, comparable across variants); its *gradient* is the
variant's. ``objective.monitor`` is the Hessian variant's ``NewtonSystemMonitor`` (None for the others).
"""

from __future__ import annotations

from typing import Callable

import torch

from .newton import _check_lam, inject_fisher, newton_objective, newton_target_from
from .system_monitor import NewtonSystemMonitor

VARIANTS = ("baseline", "hessian", "fisher")
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_objective(loss: Callable, variant: str, lam: float | None = None) -> Objective:
    """Wrap a per-sample loss ``loss(y, target) -> (N,)`` into the chosen variant's scalar objective.

    A loss with ``estimates`` (the stochastic shortest-path losses) hands over its own gradient and
    curvature estimates, which go through ``newton_target_from``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (valid: {', '.join(VARIANTS)})")
    supported = getattr(loss, "variants", VARIANTS)
    if variant not in supported:
        raise ValueError(f"loss {type(loss).__name__} has no {variant!r} variant (it supports: {', '.join(supported)})")
    if variant != "baseline":
        _check_lam(lam)
    monitor = NewtonSystemMonitor() if variant == "hessian" else None
    if hasattr(loss, "estimates"):
        objective = _estimated_objective(loss, variant, lam, monitor)
    elif variant == "baseline":
        objective = lambda y, target: loss(y, target).mean()
    elif variant == "hessian":
        objective = lambda y, target: newton_objective(
            y, lambda v: loss(v, target), curvature="hessian", lam=lam, monitor=monitor
        )
    else:
        objective = lambda y, target: loss(inject_fisher(y, lam), target).mean()
    objective.monitor = monitor
    return objective


def _estimated_objective(loss, variant: str, lam: float | None, monitor) -> Objective:
    """The loss's estimated value, carrying the variant's gradient: ``grad / N`` for the baseline, the Newton
    step ``(y - z) / N`` otherwise (Definition 1 with the estimated Hessian, or Definition 2)."""

    def objective(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        values, grad, mean_hessian = loss.estimates(y, target, hessian=variant == "hessian")
        if variant == "baseline":
            surrogate = (grad * y).sum(1).mean()
        else:
            z = newton_target_from(y, grad, mean_hessian if variant == "hessian" else "fisher", lam, monitor=monitor)
            surrogate = 0.5 * (z - y).pow(2).sum(1).mean()
        return values.mean() + surrogate - surrogate.detach()

    return objective
