"""A searched phase's Optuna study in an Optuna RDB storage, so that it outlives the driver: ``optuna-dashboard``
shows it live, ``tuner resume`` continues it, and later studies start from it (``search.warm_start``).

By default the storage is a SQLite file in the study's folder (only the driver writes it: Ray's ``OptunaSearch``
lives there); on a cluster it may be the database server the tracking uses (``--optuna-storage
postgresql+psycopg://...``). Each Optuna trial carries its Tune trial id, its MLflow run id and its final metrics
as user attributes.

Exactness across a killed driver. Tune saves the searcher with its state on every controller step of a search,
but the storage is written at once, so after a kill the two can differ in two ways, both settled on restore
(:meth:`StoredOptunaSearch.restore`): a trial asked after the last save is unknown to the restored Tune (its MLflow
run is closed as orphaned), so its Optuna trial is marked FAIL with the user attribute ``orphaned``; a trial told
after the last save is run again by Tune, which replays its finished MLflow run, and is not told twice.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from .errors import OptunaStorageError
from .trainable import RUN_ID_KEY

DB_FILE = "optuna.db"
OWNER = "tuner_study_folder"  # a user attribute of each Optuna study: the study folder it belongs to


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url
    with contextlib.suppress(Exception):
        return make_url(url).render_as_string(hide_password=True)
    return url


def open_storage(url: str) -> RDBStorage:
    """The RDB storage at ``url`` (its tables created if new), or a one-line ``OptunaStorageError``."""
    try:  # a database server may drop idle connections during a long study: test each before use
        return RDBStorage(url, engine_kwargs=None if url.startswith("sqlite") else {"pool_pre_ping": True})
    except Exception as error:  # sqlalchemy: bad URL, missing driver, server down, wrong password
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OptunaStorageError(f"cannot open the Optuna storage {shown_url(url)}: {first}") from None


def check_name_free(url: str, name: str) -> None:
    """Refuse a new study whose Optuna study name is taken in a (shared) storage: its trials would mix."""
    if name in optuna.get_all_study_names(open_storage(url)):
        raise OptunaStorageError(f"the Optuna storage {shown_url(url)} already holds a study named {name!r}: pass "
                                 f"another --optuna-storage, or delete that study there (optuna delete-study)")


def reserve_study(url: str, name: str, directions: list[str], owner: str) -> None:
    """Create the (empty) Optuna study when the study starts, so that its name is taken in a shared storage from
    then on; ``owner`` (the study's folder) says whose it is."""
    created = optuna.create_study(storage=open_storage(url), study_name=name, directions=directions)
    created.set_user_attr(OWNER, owner)


def drop_study(url: str, name: str) -> None:
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=open_storage(url))


def new_phase_study(url: str, name: str, directions: list[str], distributions: dict, seeded: list, owner: str) -> None:
    """Create the phase's Optuna study afresh (a phase started anew after a kill drops its earlier copy) and add
    the ``seeded`` warm-start trials, with their origin as user attributes (the dashboard shows them). A study
    of that name that another study folder reserved is refused, never dropped."""
    storage = open_storage(url)
    with contextlib.suppress(KeyError):
        existing = optuna.load_study(study_name=name, storage=storage).user_attrs.get(OWNER, owner)
        if existing != owner:
            raise OptunaStorageError(f"the Optuna storage {shown_url(url)} holds a study named {name!r} that belongs "
                                     f"to the study in {existing}, not to this one ({owner})")
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    study.set_user_attr(OWNER, owner)
    for trial in seeded:
        study.add_trial(optuna.trial.create_trial(params=trial["params"], distributions=distributions,
                                                  values=trial["values"], user_attrs=trial["user_attrs"]))


def warm_start_trials(sources: list[tuple[str, Any, dict]], study, distributions: dict) -> tuple[list, list[str]]:
    """The finished searched trials of earlier studies, mapped onto ``study``'s search space by parameter name.

    ``sources``: (name, Study, saved state) of each earlier study. A trial is used when each parameter of the new
    space has a value in that trial's config (its searched values over its fixed ones) that the new space contains,
    and the trial has a final value of each of the new study's metrics. Only trials a study ran itself are used
    (not the ones it was seeded with). Returns the trials and one log line per source.
    """
    seeded, lines = [], []
    for name, other, state in sources:
        found = optuna.load_study(study_name=state["optuna_study"], storage=open_storage(state["optuna_storage"]))
        used = outside = unfinished = 0
        for trial in found.get_trials(deepcopy=False):
            if "warm_start" in trial.user_attrs:
                continue
            if trial.state != TrialState.COMPLETE:
                unfinished += 1
                continue
            config = {**other.search_base(), **trial.params}
            params = {key: config.get(key) for key in distributions}
            values = [trial.user_attrs.get("metrics", {}).get(metric) for metric in study.metrics]
            if not all(key in config and _contains(dist, config[key]) for key, dist in distributions.items()) \
                    or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                outside += 1
                continue
            used += 1
            seeded.append({"params": params, "values": values,
                           "user_attrs": {"warm_start": name, "source_trial": trial.number,
                                          "mlflow_run_id": trial.user_attrs.get("mlflow_run_id", "")}})
        lines.append(f"warm start from study {name!r}: {used} trial(s) seed the search, {outside} skipped (outside "
                     f"this search space or without its metrics), {unfinished} unfinished")
    return seeded, lines


def _contains(distribution, value) -> bool:
    try:
        return distribution._contains(distribution.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


class StoredOptunaSearch(OptunaSearch):
    """Ray's ``OptunaSearch`` on the phase's RDB storage: trials carry their Tune trial id, MLflow run id and final
    metrics, and a restore after a killed driver settles the storage with Tune's saved state (module docstring)."""

    def __init__(self, url: str, study_name: str, kept_metrics: tuple[str, ...], **kwargs):
        super().__init__(storage=open_storage(url), study_name=study_name, **kwargs)
        self._url, self._kept_metrics = url, tuple(kept_metrics)
        self._attributed: set[str] = set()
        self._told_before_restore: set[str] = set()

    def set_search_properties(self, metric, mode, config, **spec):
        """The study's own objectives (given at construction) win over Tune's single ``metric``/``mode``."""
        return super().set_search_properties(None, None, config, **spec)

    def on_trial_result(self, trial_id: str, result: dict):
        if trial_id in self._told_before_restore:
            return
        self._attribute(trial_id, result)
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id in self._told_before_restore:  # told before the kill; Tune replayed its finished run
            self._completed_trials.add(trial_id)
            return
        if trial_id in self._ot_trials and trial_id not in self._completed_trials and result:
            self._attribute(trial_id, result)
            final = {k: float(result[k]) for k in self._kept_metrics if isinstance(result.get(k), (int, float))}
            self._ot_trials[trial_id].set_user_attr("metrics", final)
        super().on_trial_complete(trial_id, result, error)

    def _attribute(self, trial_id: str, result: dict) -> None:
        if trial_id in self._attributed or trial_id not in self._ot_trials or not result.get(RUN_ID_KEY):
            return
        trial = self._ot_trials[trial_id]
        trial.set_user_attr("tune_trial_id", trial_id)
        trial.set_user_attr("mlflow_run_id", result[RUN_ID_KEY])
        self._attributed.add(trial_id)

    def restore(self, checkpoint_path: str):
        """Tune's saved searcher, then the study reloaded from the storage and settled with it."""
        super().restore(checkpoint_path)
        self._storage = open_storage(self._url)
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=self._storage,
                                           sampler=self._ot_study.sampler)
        known = {trial_id: trial._trial_id for trial_id, trial in self._ot_trials.items()}  # Tune's -> storage's id
        stored = {t._trial_id: t for t in self._ot_study.get_trials(deepcopy=False)}
        self._told_before_restore = {trial_id for trial_id, stored_id in known.items()
                                     if trial_id not in self._completed_trials and stored[stored_id].state.is_finished()}
        self._ot_trials = {trial_id: optuna.Trial(self._ot_study, stored_id) for trial_id, stored_id in known.items()
                           if trial_id not in self._completed_trials and trial_id not in self._told_before_restore}
        for stored_id, trial in stored.items():
            if trial.state == TrialState.RUNNING and stored_id not in known.values():
                self._storage.set_trial_user_attr(stored_id, "orphaned", True)
                self._storage.set_trial_state_values(stored_id, TrialState.FAIL)
