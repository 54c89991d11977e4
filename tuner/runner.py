"""Start and resume study executions: everything checked before anything is written, then the phases.

An execution's state (``tuner/state.py``) lives in ``STORAGE/STUDY/study.json``; its phases
(``tuner/phases.py``) each keep a Ray Tune experiment in ``STORAGE/STUDY/PHASE``, so ``tuner resume`` continues
after the driver was killed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .cluster import check_resources_fit, check_tracking_fits_cluster, init_ray
from .environment import git_state
from .errors import StudyError, StudyStateError
from .optuna_study import DB_FILE, check_name_free, drop_study, open_storage, reserve_study
from .paper_data import check_paper_data
from .phases import phases, run_phases
from .plugins import code_hash, code_tags, plugins, user_code_dirs
from .state import STATE_FILE, OptunaRef, StudyState, TrialContext, load_state, save_state, study_dir
from .study import Study
from .study_file import check_study
from .tracking import prepare_experiment, probe_tracking, set_tags, sqlite_uri, start_parent_run, tracking_at
from .warm_start import warm_start_sources


def run_study(
    study: Study,
    storage: str | Path,
    mlflow_uri: str | None = None,
    address: str | None = None,
    optuna_storage: str | None = None,
) -> int:
    """Start a new study execution; returns the number of failed trials.

    Everything that can be checked is checked before the first file is written (the study folder exists only
    once the tracking store holds the study's experiment and parent run): an existing study, the tracking
    server, the Optuna storage and the studies a search warm-starts from, the Ray cluster, whether a node can
    hold a trial, and whether the tracking store suits the cluster; a ``data: paper`` study's data before those.
    URLs arrive without credentials (``tuner/credentials.py``).
    """
    folder = study_dir(storage, study.name)
    if (folder / STATE_FILE).exists():
        raise StudyStateError(
            f"study {study.name!r} already exists in {folder}: continue it with "
            f"`tuner resume {study.name} --storage {folder.parent}`, or choose another --storage"
        )
    if optuna_storage and study.search is None:
        raise StudyError(f"--optuna-storage: study {study.name!r} has no search phase to keep there")
    check_paper_data(study)  # data: paper and a task that would train on a substitute
    if mlflow_uri:
        probe_tracking(mlflow_uri)
    if optuna_storage:
        check_name_free(optuna_storage, study.name)
    warm_start_sources(study, folder.parent)
    init_ray(address, user_code_dirs(study))
    check_resources_fit(study)
    uri = mlflow_uri or sqlite_uri(folder)
    check_tracking_fits_cluster(uri)
    created, reserved = not folder.exists(), False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if optuna_storage:  # a shared storage: the study's name is taken there from now on
            reserve_study(optuna_storage, study.name, study.directions, str(folder))
            reserved = True
        shipped = code_hash(tuple(t for names in plugins(study).values() for t in names.values()))
        with tracking_at(uri, f"creating the experiment of study {study.name!r}"):
            experiment_id = prepare_experiment(uri, study.name, folder / "artifacts")
            git = git_state(Path(__file__).resolve().parent)
            parent = start_parent_run(
                uri,
                experiment_id,
                f"{study.name} study",
                study_params(study),
                {"study": study.name, **git, "storage": str(folder), "env.code_hash": shipped, **code_tags(study)},
                artifact=study.source,
            )
        optuna = (
            OptunaRef(url=optuna_storage or f"sqlite:///{folder / DB_FILE}", study=study.name) if study.search else None
        )
        state = StudyState(
            study=study,
            mlflow_uri=uri,
            experiment_id=experiment_id,
            parent_run_id=parent,
            code_hash=shipped,
            optuna=optuna,
            **git,
        )
        save_state(folder, state)
    except BaseException:
        if created:  # nothing half-written: the folder goes with the failed setup
            shutil.rmtree(folder, ignore_errors=True)
        if reserved:
            drop_study(optuna_storage, study.name)
        raise
    return run_phases(folder, state, trial_context(state))


def resume_study(folder: Path, address: str | None = None) -> int:
    """Continue a study whose driver stopped: done phases are skipped, started ones restored."""
    state = load_state(folder)
    study = state.study
    check_study(study, folder / STATE_FILE)  # its task and losses still load here (user code may be gone)
    check_paper_data(study, resuming=True)  # the data it started on is still named here
    probe_tracking(state.mlflow_uri)
    if study.search is not None:
        if state.optuna is None:  # a study begun before searches kept their Optuna study
            state.optuna = OptunaRef(url=f"sqlite:///{folder / DB_FILE}", study=study.name)
        open_storage(state.optuna.url)
    if not state.done("search"):
        warm_start_sources(study, folder.parent)
    init_ray(address, user_code_dirs(study))
    check_resources_fit(study)
    check_tracking_fits_cluster(state.mlflow_uri)
    with tracking_at(state.mlflow_uri, "tagging the study's parent run as resumed"):
        set_tags(state.mlflow_uri, state.parent_run_id, {"resumed": "true"})
    return run_phases(folder, state, trial_context(state))


def trial_context(state: StudyState) -> TrialContext:
    """What every trial of this execution is told (its phase is set per phase)."""
    study = state.study
    return TrialContext(
        study=study.name,
        task=study.task,
        phase="grid",
        execution_id=state.execution_id,
        mlflow_uri=state.mlflow_uri,
        experiment_id=state.experiment_id,
        git_commit=state.git_commit,
        git_dirty=state.git_dirty,
        code_hash=state.code_hash,
        objectives=study.metrics,
        plugins=plugins(study),
        shown=tuple(study.shown_keys()),
        telemetry=study.telemetry,
    )


def study_params(study: Study) -> dict[str, Any]:
    """The parent run's params: what the execution is."""
    return {
        "task": study.task,
        "metric": ",".join(study.metrics),
        "mode": ",".join(study.modes),
        "seeds": list(study.seeds),
        "phases": phases(study),
        "study_file": study.source,
        "grid_trials": len(study.grid_trials()),
        "search_trials": study.search.trials if study.search else 0,
    }
