"""The three methods every table of the paper compares, behind one callable.

``baseline``: the algorithmic loss itself; ``hessian``: the Newton loss of Definition 1
(Algorithm 1); ``fisher``: the empirical-Fisher Newton loss injected into the backward pass
(Definition 2, Algorithm 2). Training code calls ``objective(y, target)`` and backpropagates
the scalar it returns, without knowing which variant it got.
"""
from __future__ import annotations

from typing import Callable

import torch

from .newton import _check_lam, inject_fisher, newton_loss

VARIANTS = ("baseline", "hessian", "fisher")
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_objective(loss: Callable, variant: str, lam: float | None = None) -> Objective:
    """Wrap a per-sample loss ``loss(y, target) -> (N,)`` into the chosen variant's scalar objective."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (valid: {', '.join(VARIANTS)})")
    if variant == "baseline":
        return lambda y, target: loss(y, target).mean()
    _check_lam(lam)
    if variant == "hessian":
        return lambda y, target: newton_loss(y, lambda v: loss(v, target), curvature="hessian", lam=lam)
    return lambda y, target: loss(inject_fisher(y, lam), target).mean()
