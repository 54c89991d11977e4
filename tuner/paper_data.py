"""A study with ``data: paper`` trains on the paper's data sets or does not start.

Study files are validated without data (``tuner validate`` passes anywhere); this check runs at ``tuner run`` and
``tuner resume``, before Ray starts and before anything is written. It asks the task, for every trial config the
study can produce, whether that config would use a substitute (``missing_paper_data``, ``tasks/contract.py``).
"""

from __future__ import annotations

from .errors import DataError
from .study import Study
from .study_file import load_task


def check_paper_data(study: Study, resuming: bool = False) -> None:
    """Raise a one-line ``DataError`` naming the fix when a trial of a ``data: paper`` study would use a substitute."""
    if study.data != "paper":
        return
    task = load_task(study.task, study.name)
    for config in _configs(study):
        problem = task.missing_paper_data(config)
        if problem:
            raise DataError(
                f"study {study.name!r} must train on the paper's data (data: paper), but {problem}"
                f"{_otherwise(study, resuming)}"
            )


def _configs(study: Study) -> list[dict]:
    """Every grid trial and the search's corners (the search space's bounds and choices over its fixed part)."""
    configs = study.grid_trials()
    if study.search is not None:
        base = study.search_base()
        configs += [
            {**base, **{k: p.corners()[0] for k, p in study.search.space.items()}, name: value}
            for name, param in study.search.space.items()
            for value in param.corners()
        ]
    return configs


def _otherwise(study: Study, resuming: bool) -> str:
    if resuming:
        return " (it started on the paper's data: name that folder again, then resume)"
    if not study.scales:
        return ""
    scale = "smoke" if "smoke" in study.scales else next(iter(study.scales))
    return f"; or run it smaller on the bundled substitute: `tuner run {study.source or 'STUDY.yaml'} --scale {scale}`"
