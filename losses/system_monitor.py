"""Watch the Hessian variant's regularised Newton system ``M + lam I`` (Eq. 7, Definition 1).

The relaxed losses are non-convex: the mean Hessian M can have negative eigenvalues. The paper adds Tikhonov
regularisation so that ``M + lam I`` is well conditioned (Section 3), which holds only while lam exceeds
``-lambda_min(M)``. When it does not, the target ``z`` leaves along an ascent direction, or far away when an
eigenvalue of ``M + lam I`` is near 0. The Fisher variant's ``M + lam I`` is positive definite by construction
(its smallest eigenvalue is at least lam), so only the Hessian variant is watched.

Cost: watching must not bias the runtime of the step it watches (the paper's Table 6 is about that time).
``observe`` only keeps a reference to the system (no linear algebra, no host synchronisation); ``take``, which
the tasks call during evaluation (so its time lands in ``time_eval``, not ``time_loss``), computes the
eigenvalues of all kept systems in one batched ``eigvalsh``. To bound memory, at most ``capacity`` systems are
kept between two ``take`` calls: when the buffer is full every other one is dropped and from then on only
every second (fourth, ...) step is kept, so the kept steps stay evenly spread over the interval.
"""

from __future__ import annotations

import torch

KEPT_ELEMENTS = 1 << 22  # at most ~4M matrix entries kept between evaluations (32 MB in float64)


class NewtonSystemMonitor:
    """Smallest eigenvalue of ``M + lam I`` and the share of (kept) steps where it was <= 0, per interval."""

    def __init__(self, capacity: int | None = None):
        self.capacity = capacity
        self._reset()

    def observe(self, system: torch.Tensor) -> None:
        """Keep this step's ``M + lam I`` (m, m) if it falls on the current stride."""
        if self._seen % self._stride == 0:
            self._kept.append(system.detach())
            if len(self._kept) >= self._capacity(system.shape[-1]):
                self._kept = self._kept[::2]
                self._stride *= 2
        self._seen += 1

    def take(self) -> dict[str, float]:
        """``newton_min_eigenvalue`` and ``newton_indefinite_share`` over the kept steps since the last call
        (empty when there were none); then start over."""
        if not self._kept:
            return {}
        smallest = torch.linalg.eigvalsh(torch.stack(self._kept)).min(-1).values
        stats = {
            "newton_min_eigenvalue": smallest.min().item(),
            "newton_indefinite_share": (smallest <= 0).double().mean().item(),
        }
        self._reset()
        return stats

    def _capacity(self, m: int) -> int:
        return self.capacity or max(16, min(1024, KEPT_ELEMENTS // (m * m)))

    def _reset(self) -> None:
        self._kept: list[torch.Tensor] = []
        self._seen, self._stride = 0, 1
