"""A study's phases, each one Ray Tune experiment in ``STORAGE/STUDY/PHASE``: the grid, the Optuna search, and
the replication of what the search found (or the selection and its replication), then an adaptive replication's
rounds ``replicate-1``, ``replicate-2``, ... (``adaptive.py``). A phase restores from its folder when ``tuner resume``
finds it started, and is marked done in the study state only when its trials are all settled in MLflow (and, for a
search, in its Optuna storage)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.error import TuneError
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from tasks import TASKS
from tasks.contract import lower_is_better

from . import adaptive
from .atomic_files import atomic_filesystem, remove_partials
from .callbacks import MlflowStatus, TrialSummary
from .errors import StudyStateError, TrackingError
from .report.decisions import metric_modes
from .search_phase import close_search, new_searcher
from .search_space import tune_domain
from .selection import close_selection, selected_trials
from .state import StudyState, TrialContext, save_state
from .study import Study
from .tracking import close_orphans, study_runs, tracking_at
from .trainable import run_trial

USER_CHECKPOINT_PERIOD = os.environ.get("TUNE_GLOBAL_CHECKPOINT_S")  # before checkpoint_period() sets it per phase


def phases(study: Study) -> list[str]:
    if study.select is not None:
        return ["select", "replicate"]
    names = ["grid"] if study.grid else []
    if study.search is not None:
        names += ["search"] + (["replicate"] if study.search.replicate else [])
    return names


def run_phases(folder: Path, state: StudyState, context: TrialContext) -> int:
    """Run the phases not done yet; returns the failed trials of the whole study, phases finished before a
    ``tuner resume`` included (their counts are kept in the state). ``context`` is the trials' context, its
    phase set per phase."""
    from mlflow.tracking import MlflowClient

    study, uri = state.study, state.mlflow_uri
    for phase in phases(study):
        if not state.done(phase):
            _run_phase(folder, state, context, phase)
    if study.replicate is not None:
        _adaptive_rounds(folder, state, context)
    total = sum(state.failed.values())
    with tracking_at(uri, "closing the study's parent run"):
        MlflowClient(uri).set_terminated(state.parent_run_id, "FAILED" if total else "FINISHED")
    return total


def _run_phase(folder: Path, state: StudyState, context: TrialContext, phase: str) -> None:
    """Run (or restore) one phase to its end, close it in MLflow, and mark it done in the state."""
    study, uri = state.study, state.mlflow_uri
    state.phases[phase] = "started"
    save_state(folder, state)
    status = MlflowStatus(context.model_copy(update={"phase": phase}), study.keep_checkpoints)
    try:
        results = fit(folder, state, phase, status)
    except (TrackingError, TuneError) as error:
        if isinstance(error, TuneError) and not status.failures:
            raise  # not the tracking store: a bug, with its traceback
        cause = status.failures[0] if status.failures else error
        raise TrackingError(
            f"{cause}; phase {phase!r} stopped and the study is kept as it was: once the tracking "
            f"store answers again, `tuner resume {study.name} --storage {folder.parent}` "
            f"continues it"
        ) from None
    state.failed[phase] = len(results.errors)
    with tracking_at(uri, f"closing phase {phase!r}"):
        orphans = close_orphans(uri, state.experiment_id, state.execution_id, phase)
        if orphans:
            print(
                f"tuner: {orphans} MLflow run(s) of phase {phase!r} belonged to trials lost with the killed "
                f"driver; marked KILLED (tag 'orphaned')",
                flush=True,
            )
        if phase == "search":
            close_search(state, results)
        if phase == "select":
            close_selection(state)
    state.phases[phase] = "done"
    save_state(folder, state)


def _adaptive_rounds(folder: Path, state: StudyState, context: TrialContext) -> None:
    """Adaptive replication (``tuner/adaptive.py``): take the next look once the round before it is done (recorded
    with the round it plans before that round starts), run that round, until a look plans none."""
    while True:
        if not state.looks or state.done(adaptive.round_phase(state.looks[-1].look)):
            state.looks = [*state.looks, _look(state)]
            save_state(folder, state)
        last = state.looks[-1]
        if not last.trials:
            return
        if not state.done(adaptive.round_phase(last.look)):
            _run_phase(folder, state, context, adaptive.round_phase(last.look))


def _look(state: StudyState):
    """The next look, on the finished trials of the base phase and the rounds so far (read from MLflow)."""
    study = state.study
    task = TASKS.get(study.task)
    metric = task.REPORT_METRICS[0]
    mode = metric_modes([metric], dict(zip(study.metrics, study.modes)), lower_is_better(task))[metric]
    with tracking_at(state.mlflow_uri, "reading the trials to judge"):
        runs = study_runs(state.mlflow_uri, state.experiment_id, state.execution_id)
    previous = state.looks[-1] if state.looks else None
    family = adaptive.comparisons(adaptive.first_settings(state)) if previous is None else []
    look = adaptive.take_look(
        study, previous, family, adaptive.finals_of(runs, study, metric), metric, mode, study.report.margin.get(metric)
    )
    counts = {v: sum(r.verdict == v for r in look.rows) for v in ("better", "worse", "equivalent", "undecided")}
    print(
        f"tuner: look {look.look} on {len(look.seeds)} seed(s), spending alpha {look.level:.3g}: {counts}; "
        f"{len(look.trials)} trial(s) next",
        flush=True,
    )
    return look


def fit(folder: Path, state: StudyState, phase: str, status: MlflowStatus):
    """Run (or restore) one phase's Tune experiment to its end."""
    study = state.study
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, context=status.context),
        {"cpu": study.resources.cpu, "gpu": study.resources.gpu},
    )
    path, storage = folder / phase, atomic_filesystem()
    remove_partials(path)  # leftovers of writers killed mid-file; nothing writes there now
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = checkpoint_period(phase)  # read when Tune's controller starts
    if tune.Tuner.can_restore(str(path), storage_filesystem=storage):
        if any(path.glob("experiment_state-*.json")):
            check_tune_state(path)
            return tune.Tuner.restore(
                str(path), trainable=trainable, resume_errored=True, storage_filesystem=storage
            ).fit()
        # Killed between Tune writing its tuner.pkl and its first experiment state: no trial was recorded, and
        # Tune cannot restore such a folder (a search then fails for want of its space). Start the phase anew.
        shutil.rmtree(path)
    search_alg, scheduler, samples, concurrency = None, None, 1, study.max_concurrent
    if phase == "search":
        space = {k: tune_domain(p) for k, p in study.search.space.items()}
        param_space = {**study.search_base(), **space}
        search_alg = ConcurrencyLimiter(
            new_searcher(folder, state, OptunaSearch.convert_search_space(space)), max_concurrent=study.max_concurrent
        )
        samples = planned = study.search.trials
        concurrency = None  # the ConcurrencyLimiter holds it
        if study.search.asha is not None:
            # ASHA-stopped trials reach Optuna as COMPLETE with their value at the stopping rung: TPE then
            # treats them as (pessimistic) observations, which is what early stopping intends.
            max_t = TASKS.get(study.task).total_steps(study.search_base())
            scheduler = ASHAScheduler(
                time_attr="step",
                max_t=max_t,
                grace_period=study.search.asha.grace_period,
                reduction_factor=study.search.asha.reduction_factor,
            )
    else:
        trials = phase_trials(state, phase)
        param_space, planned = {"trial": tune.grid_search(trials)}, len(trials)
    metric, mode = study.primary
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        # reuse_actors: a finished trial's worker process (torch, ray, mlflow and the task imported, the digit
        # pools loaded) runs the next trial instead of a fresh process per trial
        tune_config=tune.TuneConfig(
            metric=metric,
            mode=mode,
            num_samples=samples,
            search_alg=search_alg,
            scheduler=scheduler,
            max_concurrent_trials=concurrency,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=phase,
            storage_path=str(folder),
            storage_filesystem=storage,
            verbose=1,
            failure_config=tune.FailureConfig(max_failures=study.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[TrialSummary(metric, phase, planned, study.shown_keys()), status],
        ),
    )
    return tuner.fit()


def phase_trials(state: StudyState, phase: str) -> list[dict[str, Any]]:
    """The fixed trial list of a phase without a searcher; an adaptive round's as its look recorded it."""
    if phase.startswith(adaptive.ROUND):
        return state.looks[int(phase.removeprefix(adaptive.ROUND)) - 1].trials
    if phase == "grid":
        return state.study.grid_trials()
    return state.study.selection_trials() if phase == "select" else replicate_trials(state)


def replicate_trials(state: StudyState) -> list[dict[str, Any]]:
    """Every setting the search found (its best, or its Pareto front) or the selection chose, on every seed."""
    if state.study.select is not None:
        trials, skipped = selected_trials(state.study, state.selections["select"])
        for line in skipped:
            print(f"tuner: not replicated: {line}", flush=True)
        return trials
    settings = state.front if state.study.multi_objective else [state.best]
    return [{**setting, "seed": seed} for setting in settings for seed in state.study.seeds]


def checkpoint_period(phase: str) -> str:
    """How often Tune saves a phase's experiment state (``TUNE_GLOBAL_CHECKPOINT_S``).

    A search saves on every controller step: a trial the Optuna searcher suggested after the last save would be
    forgotten by a killed driver and replaced by another suggestion. Grids and replications save on Tune's
    adaptive period ("auto": at least every 10 s, at most 5 % of the driver's time): their trials are a fixed
    list whose ids Tune's restored generator hands out again, and a trial that ran past the last save reopens its
    MLflow run, whose logged steps are not logged twice (a finished one is replayed, not retrained). Every save
    copies every trial's record, so saving each step would cost the square of a long grid.
    A user's own ``TUNE_GLOBAL_CHECKPOINT_S`` wins.
    """
    return USER_CHECKPOINT_PERIOD or ("0" if phase == "search" else "auto")


def check_tune_state(path: Path) -> None:
    """Refuse a phase folder whose newest Tune state cannot be read (written by a version without atomic writes,
    or edited): Tune would log the failure and silently start the phase anew, duplicating its finished trials."""
    newest = max(path.glob("experiment_state-*.json"))
    try:
        json.loads(newest.read_text())
    except (OSError, ValueError) as error:
        raise StudyStateError(
            f"Tune's saved state {newest} cannot be read ({error}); tuner resume will not start "
            f"phase {path.name!r} anew over its logged trials: remove the phase folder "
            f"{path} to rerun that phase from scratch"
        ) from None
