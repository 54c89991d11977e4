"""Stochastic smoothing of the algorithm only (paper App. B.4.1): the smoothed path E[y*(c + sigma Z)] is
compared with the true path by a differentiable loss outside the solver; the gradient goes through the Stein
Jacobian estimate. The paper's example of that loss is ``MSE(f(y), label)`` (App. B.4.1), the default here (the mean
over the path's cells of the squared difference); L1 and the summed squared L2 are options. Its loss Hessian
(144^4 entries) is infeasible, so only baseline and fisher exist."""

from __future__ import annotations

import torch

from ..registry import LOSSES
from .estimated import EstimatedLoss, solve_flat
from .smoothing import smoothed_solution_estimates


@LOSSES.register("ss_algorithm")
class SmoothedAlgorithmLoss(EstimatedLoss):
    """l(y) = loss(E path(y + sigma Z), w*) with loss "mse" (the paper's example: mean of squares over the cells),
    "l1" (sum of absolute differences) or "l2" (sum of squares); paper: sigma 0.1, lambda 1000."""

    variants = ("baseline", "fisher")
    NORMS = ("mse", "l1", "l2")

    def __init__(self, sigma: float = 0.1, samples: int = 10, norm: str = "mse"):
        super().__init__(sigma, samples)
        if norm not in self.NORMS:
            raise ValueError(f"norm must be one of {', '.join(self.NORMS)} (mse: the paper's), got {norm!r}")
        self.norm = norm

    def estimates(self, y: torch.Tensor, target: torch.Tensor, hessian: bool = False):
        mean, z, delta, _ = smoothed_solution_estimates(solve_flat, y.detach(), self.sigma, self.samples)
        diff = mean - target
        if self.norm == "l1":
            value, outer = diff.abs().sum(1), diff.sign()
        elif self.norm == "l2":
            value, outer = diff.pow(2).sum(1), 2 * diff
        else:  # mse: the mean over the m cells
            value, outer = diff.pow(2).mean(1), 2 * diff / diff.shape[1]
        # J_i^T g_i with J_i = E[delta z^T] / sigma, without forming J_i: E[z <delta, g_i>] / sigma
        grad = ((delta * outer).sum(-1, keepdim=True) * z).mean(0) / self.sigma
        return value, grad, None
