"""A section of the GPU check under a hard wall-clock budget, with the warnings it raised.

A section fills ``section.figures`` as it measures, so what it measured survives when it is cut: at its budget
``SIGALRM`` raises ``SectionCut`` wherever the section is (between two Python bytecodes; the processes it started
are ended by its own ``finally`` blocks). A section that cannot measure on this device raises ``NotMeasured``
with the reason; its figures stay null.
"""

from __future__ import annotations

import signal
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

MAX_WARNINGS = 20  # distinct warnings kept per section (each with its count)


class SectionCut(BaseException):
    """The section ran past its budget (a BaseException: no ``except Exception`` on the way may swallow it)."""


class NotMeasured(Exception):
    """The section cannot measure here (its reason is the message): its figures are null, never a stand-in."""


@dataclass
class Section:
    """What a running section sees: its budget, the figures so far, warnings its child processes reported."""

    name: str
    budget_s: float
    figures: Any = None
    child_warnings: Counter = field(default_factory=Counter)  # warning -> count, from the trials it started
    started: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        """Seconds left of the budget."""
        return self.budget_s - (time.monotonic() - self.started)


def guarded(rows: list, label: dict, measure: Callable[[], dict]) -> None:
    """Append ``measure()``'s row, or ``label`` with the error, so that one failing loss costs no other row."""
    try:
        rows.append(measure())
    except Exception as error:
        rows.append({**label, "error": first_line(error)})


def raise_row_errors(rows: list[dict]) -> None:
    """Fail the section (its rows kept) if any row failed."""
    failed = [row for row in rows if row.get("error")]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(rows)} rows failed; the first: {failed[0]['error']}")


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def _cut(signum, frame):
    raise SectionCut


def run_section(name: str, budget_s: float, measure: Callable[[Section], Any]) -> tuple[Any, dict]:
    """Run ``measure(section)`` for at most ``budget_s`` seconds; returns (figures, record of how it went).

    The record: ``status`` (ok, cut, failed or not measured), ``seconds``, ``budget_s``, ``error`` (the
    exception's first line; ``traceback``, its last lines), ``reason`` (why not measured) and ``warnings``."""
    section = Section(name, budget_s)
    record: dict[str, Any] = {"status": "ok", "budget_s": budget_s, "error": None, "reason": None}
    previous = signal.signal(signal.SIGALRM, _cut)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, budget_s)
                measure(section)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except SectionCut:
            record["status"] = "cut"
        except NotMeasured as why:
            record["status"], record["reason"] = "not measured", str(why)
        except Exception as error:  # one failed section must not cost the others' figures on scarce GPU time
            record["status"], record["error"] = "failed", first_line(error)
            record["traceback"] = traceback.format_exc().splitlines()[-8:]
        finally:
            signal.signal(signal.SIGALRM, previous)
    record["seconds"] = round(time.monotonic() - section.started, 2)
    record["warnings"] = summarise_warnings(Counter(_describe(w) for w in caught) + section.child_warnings)
    return section.figures, record


def _describe(warning: warnings.WarningMessage) -> str:
    first = str(warning.message).splitlines()[0][:300] if str(warning.message) else ""
    return f"{warning.category.__name__}: {first} ({warning.filename.rsplit('/', 1)[-1]}:{warning.lineno})"


def summarise_warnings(counts: Counter) -> list[dict]:
    """Distinct warnings with how often each was raised, the most frequent first."""
    return [{"warning": text, "count": n} for text, n in counts.most_common(MAX_WARNINGS)]
