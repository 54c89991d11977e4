"""Perturbed optimizers with a Fenchel-Young loss (Berthet et al. 2020; paper App. B.5, eq. 17).

For a *minimising* solver y*(c) the loss gradient in the costs is ``w* - E[y*(c + sigma Z)]`` (eq. 17 is for
argmax; argmin(c) = argmax(-c) flips the sign), and its Hessian is the Jacobian of ``-E[y*(c + sigma Z)]``,
estimated by smoothing once more: ``-E[(y*(c + sigma Z) - y*(c)) Z^T] / sigma``, symmetrised.
"""

from __future__ import annotations

import torch

from ..registry import LOSSES
from .estimated import EstimatedLoss, solve_flat
from .smoothing import smoothed_solution_estimates


@LOSSES.register("po_fy")
class PerturbedFenchelYoungLoss(EstimatedLoss):
    """Fenchel-Young loss <c, w*> - E[min_w <c + sigma Z, w>]; paper: sigma 0.1, lr 1e-2, lambda 1000."""

    def estimates(self, y: torch.Tensor, target: torch.Tensor, hessian: bool = False):
        c = y.detach()
        mean, z, delta, base = smoothed_solution_estimates(solve_flat, c, self.sigma, self.samples)
        perturbed = delta + base
        value = (c * target).sum(1) - ((c + self.sigma * z) * perturbed).sum(-1).mean(0)
        mean_hessian = None
        if hessian:
            s, n, m = z.shape
            jacobian = torch.einsum("sni,snj->ij", delta, z) / (s * n * self.sigma)
            mean_hessian = -0.5 * (jacobian + jacobian.T)
        return value, target - mean, mean_hessian
