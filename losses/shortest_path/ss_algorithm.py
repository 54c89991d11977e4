"""Stochastic smoothing of the algorithm only (paper App. B.4.1): the smoothed path E[y*(c + sigma Z)] is
compared with the true path by L1 or squared L2 outside the solver; the gradient goes through the Stein
Jacobian estimate. Its loss Hessian (144^4 entries) is infeasible, so only baseline and fisher exist."""
from __future__ import annotations

import torch

from .estimated import EstimatedLoss, solve_flat
from ..registry import LOSSES
from .smoothing import smoothed_solution_estimates


@LOSSES.register("ss_algorithm")
class SmoothedAlgorithmLoss(EstimatedLoss):
    """l(y) = ||E path(y + sigma Z) - w*|| (norm "l1" or "l2" for squared L2); paper: sigma 0.1, lambda 1000."""

    variants = ("baseline", "fisher")

    def __init__(self, sigma: float = 0.1, samples: int = 10, norm: str = "l1"):
        super().__init__(sigma, samples)
        if norm not in ("l1", "l2"):
            raise ValueError(f"norm must be 'l1' or 'l2' (squared L2), got {norm!r}")
        self.norm = norm

    def estimates(self, y: torch.Tensor, target: torch.Tensor, hessian: bool = False):
        mean, z, delta, _ = smoothed_solution_estimates(solve_flat, y.detach(), self.sigma, self.samples)
        diff = mean - target
        value, outer = (diff.abs().sum(1), diff.sign()) if self.norm == "l1" else (diff.pow(2).sum(1), 2 * diff)
        # J_i^T g_i with J_i = E[delta z^T] / sigma, without forming J_i: E[z <delta, g_i>] / sigma
        grad = ((delta * outer).sum(-1, keepdim=True) * z).mean(0) / self.sigma
        return value, grad, None
