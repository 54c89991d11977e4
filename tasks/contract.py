"""The task contract: what a task provides, and all that the tuner, its callbacks and its reports rely on.

A task is any object with these attributes — a module (the built-ins are modules), a class or an instance —
registered under a name (``TASKS.register``), named by import path in a study (``task: mylab.tasks:topk``), or
declared by an installed package as an entry point in the group ``newton_losses.tasks``. It is checked against
this contract when it is first resolved; the error names what is missing.

``train`` calls ``report(metrics, state)`` after every evaluation. ``metrics`` maps names to numbers and holds
``step`` (an increasing int, the x axis of every curve and the unit of ``total_steps``); ``state`` is whatever
``train(config, report, resume=state)`` needs to continue exactly from there, saved with ``torch.save`` and
loaded with ``weights_only=True`` (tensors, numbers, strings, lists, tuples, dicts). The run's config keys
``loss``, ``variant``, ``lam`` and ``seed`` are the tuner's: variants and λ form the comparisons, seeds the
replicates. An optional ``device`` key ("cpu", "cuda", "auto") lets each run's ``device`` tag name the GPU.

Data. A task whose benchmark has a published data set and a bundled substitute says which one a run uses: its
``describe`` names the source as ``data_source`` (logged with the run), ``PAPER_DATA_SOURCES`` lists the prefixes
of the sources that are the paper's own data (any other is a substitute; the report says so), and
``missing_paper_data(config)`` returns None when that config will train on the paper's data on this machine, or
else one line saying what it would use instead and how to get the real data. A study with ``data: paper`` needs
the latter, and ``tuner run``/``resume`` call it for every trial config before anything starts.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Protocol, runtime_checkable

Report = Callable[[dict[str, float], dict[str, Any]], None]
TUNER_KEYS = ("loss", "variant", "lam", "seed")


@runtime_checkable
class Task(Protocol):
    """Required attributes of a task (optional ones: ``METRIC_LABELS``, ``PERCENT_METRICS``,
    ``PAPER_DATA_SOURCES``, ``missing_paper_data``)."""

    LOSS_KIND: str  # the ``task_kind`` of the losses it takes (a loss declaring none fits any)
    DEFAULTS: dict[str, Any]  # every config key it takes, with its default (the loss's own are added)
    METRICS: tuple[str, ...]  # what ``report`` may log; a study's ``metric`` must be one of them
    REPORT_METRICS: tuple[str, ...]  # final metrics ``tuner report`` tables (mean ± std over seeds)

    def describe(self, config: dict[str, Any]) -> dict[str, Any]:
        """The fully resolved config (defaults and the loss's parameters filled in), logged as the run's params."""

    def check(self, config: dict[str, Any]) -> None:
        """Raise the error ``train`` would raise for this config, without loading data or training."""

    def total_steps(self, config: dict[str, Any]) -> int:
        """The ``step`` the run reports last (the horizon of early stopping)."""

    def train(self, config: dict[str, Any], report: Report, resume: dict[str, Any] | None = None) -> dict[str, float]:
        """Train and evaluate, calling ``report`` at every evaluation; return the last metrics."""


# Optional: METRIC_LABELS {metric: axis label} for the report's figures; PERCENT_METRICS, metrics shown x100;
# PAPER_DATA_SOURCES and missing_paper_data(config) -> str | None, see "Data" above; LOWER_IS_BETTER, metrics whose
# lower values are better (the report's verdicts; time_* metrics are, and any other is higher-better).
OPTIONAL = {
    "METRIC_LABELS": dict,
    "PERCENT_METRICS": (tuple, list),
    "PAPER_DATA_SOURCES": (tuple, list),
    "LOWER_IS_BETTER": (tuple, list),
}
OPTIONAL_FUNCTIONS = ("missing_paper_data",)
ATTRIBUTES = {"LOSS_KIND": str, "DEFAULTS": dict, "METRICS": (tuple, list), "REPORT_METRICS": (tuple, list)}
FUNCTIONS = ("describe", "check", "total_steps", "train")


def check_task(name: str, task: Any) -> None:
    """Raise ``TypeError`` naming everything ``task`` lacks or has wrong, against the contract above."""
    problems = [f"{key} (missing)" for key in ATTRIBUTES if not hasattr(task, key)]
    problems += [
        f"{key} (a {_kinds(kind)}, got {type(getattr(task, key)).__name__})"
        for key, kind in {**ATTRIBUTES, **OPTIONAL}.items()
        if hasattr(task, key) and not isinstance(getattr(task, key), kind)
    ]
    problems += [f"{fn}() (missing)" for fn in FUNCTIONS if not callable(getattr(task, fn, None))]
    problems += [
        f"{fn} (not callable)" for fn in OPTIONAL_FUNCTIONS if hasattr(task, fn) and not callable(getattr(task, fn))
    ]
    if not problems:
        problems += [f"DEFAULTS lacks {key!r}" for key in TUNER_KEYS if key not in task.DEFAULTS]
        problems += [f"REPORT_METRICS {m!r} is not in METRICS" for m in task.REPORT_METRICS if m not in task.METRICS]
        if "resume" not in inspect.signature(task.train).parameters:
            problems.append("train() takes no `resume` argument")
    if problems:
        raise TypeError(f"task {name!r} does not meet the task contract (tasks/contract.py): {'; '.join(problems)}")


def _kinds(kind) -> str:
    return " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))


def labels(task: Any) -> dict[str, str]:
    return dict(getattr(task, "METRIC_LABELS", {}))


def percent_metrics(task: Any) -> tuple[str, ...]:
    return tuple(getattr(task, "PERCENT_METRICS", ()))


def lower_is_better(task: Any) -> tuple[str, ...]:
    return tuple(getattr(task, "LOWER_IS_BETTER", ()))


def paper_data_sources(task: Any) -> tuple[str, ...] | None:
    """Prefixes of the ``data_source`` values that are the paper's own data; None: the task does not say."""
    sources = getattr(task, "PAPER_DATA_SOURCES", None)
    return None if sources is None else tuple(sources)
