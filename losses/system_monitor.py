"""Watch the Hessian variant's regularised Newton system ``M + lam I`` (Eq. 7, Definition 1).

The relaxed losses are non-convex: the mean Hessian M can have negative eigenvalues. The paper adds Tikhonov
regularisation so that ``M + lam I`` is well conditioned (Section 3), which holds only while lam exceeds
``-lambda_min(M)``. When it does not, the target ``z`` leaves along an ascent direction, or far away when an
eigenvalue of ``M + lam I`` is near 0. The Fisher variant's ``M + lam I`` is positive definite by construction
(its smallest eigenvalue is at least lam), so only the Hessian variant is watched.

Statistics accumulate on the device, so watching adds no host synchronisation per step.
"""
from __future__ import annotations

import torch


class NewtonSystemMonitor:
    """Smallest eigenvalue of ``M + lam I`` and the share of steps where it was <= 0, since the last ``take``."""

    def __init__(self):
        self._reset()

    def observe(self, system: torch.Tensor) -> None:
        smallest = torch.linalg.eigvalsh(system.detach()).min()
        self._min = smallest if self._min is None else torch.minimum(self._min, smallest)
        self._indefinite = self._indefinite + (smallest <= 0)
        self._steps += 1

    def take(self) -> dict[str, float]:
        """``newton_min_eigenvalue`` and ``newton_indefinite_share`` over the steps since the last call
        (empty when there were none); then start over."""
        if not self._steps:
            return {}
        stats = {"newton_min_eigenvalue": self._min.item(),
                 "newton_indefinite_share": float(self._indefinite) / self._steps}
        self._reset()
        return stats

    def _reset(self) -> None:
        self._min, self._indefinite, self._steps = None, 0, 0
