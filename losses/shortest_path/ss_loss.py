"""Stochastic smoothing of the whole loss (paper Section 4.2.2, App. B.4): Gaussian noise on the predicted
costs, a hard shortest-path solver inside, the Hamming loss to the true path, eqs. 15-16 estimators."""

from __future__ import annotations

import torch

from ..registry import LOSSES
from .estimated import EstimatedLoss, solve_flat
from .smoothing import smoothed_loss_estimates


@LOSSES.register("ss_loss")
class SmoothedShortestPathLoss(EstimatedLoss):
    """l(y) = E ||path(y + sigma Z) - w*||_1 (L1 and squared L2 coincide on 0/1 paths); paper: sigma 0.1,
    samples 3 / 10 / 30; variants baseline, hessian (eq. 16) and fisher."""

    def estimates(self, y: torch.Tensor, target: torch.Tensor, hessian: bool = False):
        def hard(costs):  # (S*N, m), sample-major -> (S*N,)
            return (solve_flat(costs) - target.repeat(len(costs) // len(target), 1)).abs().sum(1)

        return smoothed_loss_estimates(hard, y.detach(), self.sigma, self.samples, hessian=hessian)
