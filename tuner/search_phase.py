"""The search phase's own pieces: its Optuna searcher (on the phase's Optuna study, seeded by a warm start), and
what closes it: the Optuna storage settled with the execution's MLflow runs, then the best setting (one objective)
or the Pareto-optimal settings (several) recorded in the state and on the parent run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks import TASKS

from .credentials import redact
from .errors import TunerError
from .optuna_study import StoredOptunaSearch, load, new_phase_study, settle_with_runs
from .pareto import pareto_mask
from .search_space import optuna_distribution
from .state import StudyState
from .study import Study
from .tracking import set_tags, study_runs
from .warm_start import warm_start_sources, warm_start_trials


def close_search(state: StudyState, results) -> None:
    """Settle the Optuna storage with the search's MLflow runs, then record what the search found."""
    study = state.study
    runs = [
        r
        for r in study_runs(state.mlflow_uri, state.experiment_id, state.execution_id)
        if r.data.tags.get("phase") == "search"
    ]
    distributions = {name: optuna_distribution(p) for name, p in study.search.space.items()}
    settled = settle_with_runs(state.optuna, runs, study.metrics, distributions)
    if settled:
        print(
            f"tuner: {settled} searched trial(s) that finished on a retry or a resume told to the Optuna study",
            flush=True,
        )
    if study.multi_objective:
        state.front = front_configs(state)
        set_tags(state.mlflow_uri, state.parent_run_id, {"pareto_front": json.dumps(state.front)})
    else:
        state.best = best_config(results, study)
        set_tags(state.mlflow_uri, state.parent_run_id, {"best_config": json.dumps(state.best)})


def new_searcher(folder: Path, state: StudyState, distributions: dict) -> StoredOptunaSearch:
    """The search phase's Optuna searcher on a fresh Optuna study in its storage, seeded by the warm start."""
    study = state.study
    task = TASKS.get(study.task)
    seeded, lines = warm_start_trials(warm_start_sources(study, folder.parent), study, distributions, task.describe)
    for line in lines:
        print(f"tuner: {line}", flush=True)
    new_phase_study(state.optuna, study.directions, distributions, seeded, str(folder))
    from optuna.samplers import TPESampler

    single = not study.multi_objective
    return StoredOptunaSearch(
        state.optuna,
        task.METRICS,
        metric=study.primary.metric if single else list(study.metrics),
        mode=study.primary.mode if single else list(study.modes),
        sampler=TPESampler(seed=study.search.sampler_seed, n_startup_trials=study.search.startup_trials),
    )


def best_config(results, study: Study) -> dict[str, Any]:
    metric, mode = study.primary
    best = results.get_best_result(metric=metric, mode=mode, scope="last", filter_nan_and_inf=True)
    if best is None or best.config is None:
        raise TunerError(f"search of study {study.name!r} produced no finished trial with metric {metric!r}")
    config = {k: v for k, v in best.config.items() if k in study.search_base() or k in study.search.space}
    config.pop("seed", None)
    return config


def front_configs(state: StudyState) -> list[dict[str, Any]]:
    """The settings on the search's Pareto front (its own finished trials, not the warm-start ones), each once."""
    import optuna

    study = state.study
    done = [
        t
        for t in load(state.optuna).get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
        if "warm_start" not in t.user_attrs
    ]
    if not done:
        raise TunerError(
            f"search of study {study.name!r} produced no finished trial with metrics "
            f"{list(study.metrics)} (Optuna storage {redact(state.optuna.url)})"
        )
    front = [t for t, keep in zip(done, pareto_mask([t.values for t in done], study.modes)) if keep]
    settings = {}
    for trial in front:
        setting = {k: v for k, v in {**study.search_base(), **trial.params}.items() if k != "seed"}
        settings.setdefault(json.dumps(setting, sort_keys=True, default=str), setting)
    return list(settings.values())
