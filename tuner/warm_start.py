"""Warm starts (``search.warm_start``): the finished searched trials of earlier studies in the same ``--storage``
seed a new search's Optuna study, when they ran what the new study runs on every setting it does not search."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from .errors import StudyError, StudyStateError
from .optuna_study import load
from .state import StudyState, load_state, study_dir
from .study import Study


def warm_start_sources(study: Study, storage: Path) -> list[tuple[str, Study, StudyState]]:
    """The earlier studies ``search.warm_start`` names, each (name, study, saved state), checked: present in the
    same storage folder, of the same task, with a searched phase whose Optuna study is in its storage."""
    sources = []
    for name in study.search.warm_start if study.search else ():
        where = f"{study.source or study.name}: search.warm_start: study {name!r}"
        if name == study.name:
            raise StudyError(f"{where} is this study itself")
        try:
            state = load_state(study_dir(storage, name))
        except StudyStateError:
            raise StudyError(f"{where} is not in {storage} (warm starts read studies of the same --storage)") from None
        other = state.study
        if other.task != study.task:
            raise StudyError(f"{where} is of task {other.task!r}, not {study.task!r}")
        if state.optuna is None:
            raise StudyError(f"{where} kept no Optuna storage (it has no search, or ran before searches kept one)")
        if "search" not in state.phases:
            raise StudyError(f"{where} has not started its search phase, so it has no trials to seed with")
        load(state.optuna)
        sources.append((name, other, state))
    return sources


def warm_start_trials(
    sources: list[tuple[str, Any, Any]], study, distributions: dict, describe
) -> tuple[list, list[str]]:
    """The finished searched trials of earlier studies that may seed ``study``'s search, and one log line per
    source with what was used and why the rest was skipped.

    ``sources``: (name, Study, StudyState) of each earlier study; ``describe``: the task's ``describe`` (the fully
    resolved config, defaults filled in). A trial is used when

    - every parameter of the new space has a value in that trial's config (its searched values over its fixed
      ones) that the new space contains;
    - its resolved config agrees with the new study's on every key the new space does not search (fixed keys,
      params, defaults, data source: a Hessian trial never seeds a Fisher search), the seed excepted (the search's
      noise, not a setting);
    - it has a final value of each of the new study's metrics.

    Only trials a study ran itself are used (not the ones it was seeded with).
    """
    mine = describe(study.search_base())
    seeded, lines = [], []
    for name, other, state in sources:
        used, unfinished, skipped = 0, 0, {}
        for trial in load(state.optuna).get_trials(deepcopy=False):
            if "warm_start" in trial.user_attrs:
                continue
            if trial.state != TrialState.COMPLETE:
                unfinished += 1
                continue
            config = {**other.search_base(), **trial.params}
            reason = _disagreement(config, mine, distributions, describe)
            values = [trial.user_attrs.get("metrics", {}).get(metric) for metric in study.metrics]
            if reason is None and not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                reason = f"no final {'/'.join(study.metrics)}"
            if reason is not None:
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            used += 1
            seeded.append(
                {
                    "params": {key: config[key] for key in distributions},
                    "values": values,
                    "user_attrs": {
                        "warm_start": name,
                        "source_trial": trial.number,
                        "mlflow_run_id": trial.user_attrs.get("mlflow_run_id", ""),
                    },
                }
            )
        why = "; ".join(f"{n} {reason}" for reason, n in sorted(skipped.items(), key=lambda item: (-item[1], item[0])))
        lines.append(
            f"warm start from study {name!r}: {used} trial(s) seed the search, {sum(skipped.values())} "
            f"skipped{f' ({why})' if why else ''}, {unfinished} unfinished"
        )
    return seeded, lines


def _disagreement(config: dict, mine: dict, distributions: dict, describe) -> str | None:
    """Why a trial's ``config`` cannot seed a search whose fixed part resolves to ``mine``, or None."""
    for key, dist in distributions.items():
        if key not in config or not _contains(dist, config[key]):
            return f"outside this space in {key}"
    try:
        theirs = describe(config)
    except (KeyError, TypeError, ValueError) as error:
        return f"not a config of this task ({error.args[0] if error.args else error})"
    for key in sorted(set(mine) | set(theirs)):
        if key in distributions or key == "seed":
            continue
        if mine.get(key) != theirs.get(key):
            return f"ran with {key}={theirs.get(key)!r} (this study: {mine.get(key)!r})"
    return None


def _contains(distribution, value) -> bool:
    try:
        return distribution._contains(distribution.to_internal_repr(value))
    except (ValueError, TypeError):
        return False
