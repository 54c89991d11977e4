"""Finite checks of the Newton step, decided on the tensors' device.

Eager (the default, for library users): a non-finite gradient, Hessian or curvature, or a singular Newton system,
raises at once: ``FloatingPointError`` naming the rows, ``torch.linalg.LinAlgError`` for the system. Deciding
that needs the host to wait for the device (``bool(tensor)``).

Deferred (inside ``with deferred_checks(step=...) as watch``, how the tasks train): a check only records, on the
device, the first step at which each kind of failure happened; nothing waits. ``watch.failure()`` — called at an
evaluation, where the host waits for the device anyway — returns the first failure (what, and at which step) or
None. A training step then makes no host synchronisation for its checks, and the error still names its step.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

import torch

_WATCH: ContextVar[FiniteWatch | None] = ContextVar("finite_watch", default=None)


class FiniteWatch:
    """The first step of each kind of failure seen since it was made, kept as device tensors (0: none yet)."""

    def __init__(self):
        self.step = 0
        self._first: dict[str, torch.Tensor] = {}

    def note(self, bad: torch.Tensor, what: str) -> None:
        """Record that ``bad`` (a 0-d bool tensor) held at the current step, if nothing of this kind did before."""
        first = self._first.get(what)
        if first is None:
            first = self._first[what] = torch.zeros((), dtype=torch.int64, device=bad.device)
        self._first[what] = torch.where(bad & (first == 0), self.step, first)

    def failure(self) -> tuple[str, int] | None:
        """The earliest recorded failure as (what, step), or None; this waits for the device. At one step, the
        check made first in the step wins (the code checks upstream first: a non-finite model output before the
        loss it poisons, a singular system before the non-finite step it causes)."""
        found = [(int(first), order, what) for order, (what, first) in enumerate(self._first.items())]
        found = [item for item in found if item[0] > 0]
        if not found:
            return None
        step, _, what = min(found)
        return what, step


@contextlib.contextmanager
def deferred_checks(watch: FiniteWatch | None = None):
    """Defer the finite checks made in this context to ``watch`` (a new one by default), which it yields."""
    watch = watch or FiniteWatch()
    token = _WATCH.set(watch)
    try:
        yield watch
    finally:
        _WATCH.reset(token)


def watching() -> FiniteWatch | None:
    """The watch the checks are deferred to, or None when they are eager."""
    return _WATCH.get()


def check_finite(tensor: torch.Tensor, what: str) -> None:
    """``tensor`` holds no NaN or inf: eager, a ``FloatingPointError`` naming the rows; deferred, recorded."""
    watch = watching()
    if watch is not None:
        watch.note(~torch.isfinite(tensor).all(), f"non-finite {what}")
        return
    bad = ~torch.isfinite(tensor)
    if bad.any():
        rows = bad.reshape(bad.shape[0], -1).any(1).nonzero().flatten().tolist()
        raise FloatingPointError(f"non-finite {what} in rows {rows[:20]}{' ...' if len(rows) > 20 else ''}")


def solve(system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``system^-1 rhs`` (``torch.linalg.solve``): a singular system raises ``torch.linalg.LinAlgError`` at once
    (eager), or is recorded as ``singular Newton system`` (deferred; the result then holds inf/NaN)."""
    solution, info = torch.linalg.solve_ex(system, rhs)
    watch = watching()
    if watch is not None:
        watch.note((info != 0).any(), "singular Newton system")
    elif (info != 0).any():
        raise torch.linalg.LinAlgError(f"the Newton system is singular (LAPACK info {info.max().item()})")
    return solution
