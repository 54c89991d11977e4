"""A searched phase's Optuna study in an Optuna RDB storage, so that it outlives the driver: ``optuna-dashboard``
shows it, ``tuner resume`` continues it, and later studies start from it (``search.warm_start``).

By default the storage is a SQLite file in the study's folder (only the driver writes it: Ray's ``OptunaSearch``
lives there); on a cluster it may be the database server the tracking uses (``--optuna-storage
postgresql+psycopg://USER@HOST/optuna``; the password comes from libpq's environment, never from a file). Each
Optuna trial carries its Tune trial id (from its suggestion on), its MLflow run id and its final metrics as user
attributes.

Exactness across killed drivers, retries and resumes (the search's ``StoredOptunaSearch`` and
``settle_with_runs``):

- Tune saves the searcher with its state on every controller step of a search, but the storage is written at
  once, so after a kill the two can differ. A trial asked after the last save is unknown to the restored Tune
  (its MLflow run is closed as orphaned): its Optuna trial is marked FAIL with the user attribute ``orphaned``.
  A trial told after the last save is run again by Tune, which replays its finished MLflow run: it is remembered
  as *told before restore* and not told twice. That set is kept across restores (a second kill before such a
  replay finishes must not forget it), so any number of kill/resume rounds settle the same way.
- A trial that failed, was told FAIL, and then finished on a retry or a resume (``resume_errored``) never reaches
  the searcher again (Ray's concurrency limiter drops completions of trials it no longer counts as live). At
  the end of the phase every finished searched run of the execution is matched with the storage: a run without a
  COMPLETE trial of its values gets one (``retry_of`` names the failed trial), so the storage ends consistent
  with MLflow, values included.
"""

from __future__ import annotations

import contextlib
import math

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

from .credentials import redact
from .errors import OptunaStorageError
from .state import OptunaRef
from .trainable import RUN_ID_KEY

DB_FILE = "optuna.db"
OWNER = "tuner_study_folder"  # a user attribute of each Optuna study: the study folder it belongs to


def open_storage(url: str) -> RDBStorage:
    """The RDB storage at ``url`` (its tables created if new), or a one-line ``OptunaStorageError``."""
    try:  # a database server may drop idle connections during a long study: test each before use
        return RDBStorage(url, engine_kwargs=None if url.startswith("sqlite") else {"pool_pre_ping": True})
    except Exception as error:  # noqa: BLE001 - sqlalchemy: bad URL, missing driver, server down, wrong password
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        hint = (
            " (the password comes from PGPASSWORD or a libpq password file, PGPASSFILE)"
            if "password" in first.lower()
            else ""
        )
        raise OptunaStorageError(f"cannot open the Optuna storage {redact(url)}: {redact(first)}{hint}") from None


def load(ref: OptunaRef, sampler=None) -> optuna.Study:
    """The Optuna study ``ref`` names, or a one-line error when it is not there (a search that never started)."""
    try:
        return optuna.load_study(study_name=ref.study, storage=open_storage(ref.url), sampler=sampler)
    except KeyError:
        raise OptunaStorageError(
            f"the Optuna storage {redact(ref.url)} holds no study {ref.study!r} (its search phase never started)"
        ) from None


def check_name_free(url: str, name: str) -> None:
    """Refuse a new study whose Optuna study name is taken in a (shared) storage: its trials would mix."""
    if name in optuna.get_all_study_names(open_storage(url)):
        raise OptunaStorageError(
            f"the Optuna storage {redact(url)} already holds a study named {name!r}: pass "
            f"another --optuna-storage, or delete that study there (optuna delete-study)"
        )


def reserve_study(url: str, name: str, directions: list[str], owner: str) -> None:
    """Create the (empty) Optuna study when the study starts, so that its name is taken in a shared storage from
    then on; ``owner`` (the study's folder) says whose it is."""
    created = optuna.create_study(storage=open_storage(url), study_name=name, directions=directions)
    created.set_user_attr(OWNER, owner)


def drop_study(url: str, name: str) -> None:
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=open_storage(url))


def new_phase_study(ref: OptunaRef, directions: list[str], distributions: dict, seeded: list, owner: str) -> None:
    """Create the phase's Optuna study afresh (a phase started anew after a kill drops its earlier copy) and add
    the ``seeded`` warm-start trials, with their origin as user attributes (the dashboard shows them). A study
    of that name that another study folder reserved is refused, never dropped."""
    storage = open_storage(ref.url)
    with contextlib.suppress(KeyError):
        existing = optuna.load_study(study_name=ref.study, storage=storage).user_attrs.get(OWNER, owner)
        if existing != owner:
            raise OptunaStorageError(
                f"the Optuna storage {redact(ref.url)} holds a study named {ref.study!r} that "
                f"belongs to the study in {existing}, not to this one ({owner})"
            )
        optuna.delete_study(study_name=ref.study, storage=storage)
    study = optuna.create_study(storage=storage, study_name=ref.study, directions=directions)
    study.set_user_attr(OWNER, owner)
    for trial in seeded:
        study.add_trial(
            optuna.trial.create_trial(
                params=trial["params"],
                distributions=distributions,
                values=trial["values"],
                user_attrs=trial["user_attrs"],
            )
        )


def settle_with_runs(ref: OptunaRef, runs: list, metrics: tuple[str, ...], distributions: dict) -> int:
    """Make the storage agree with the execution's finished searched MLflow ``runs``: each gets one COMPLETE trial
    whose values are the run's final ``metrics``. A run whose trial is still RUNNING is told; one whose trial was
    told FAIL (it succeeded on a retry or a resume) gets a COMPLETE copy, ``retry_of`` naming the failed trial
    (a finished Optuna trial cannot be changed).
    Returns how many trials were told or added. Idempotent."""
    study = load(ref)
    trials = [t for t in study.get_trials(deepcopy=False) if "warm_start" not in t.user_attrs]
    by_tune_id: dict[str, list] = {}
    for trial in trials:
        by_tune_id.setdefault(trial.user_attrs.get("tune_trial_id"), []).append(trial)
    settled = 0
    for run in runs:
        values = [run.data.metrics.get(metric) for metric in metrics]
        if run.info.status != "FINISHED" or not all(isinstance(v, float) and math.isfinite(v) for v in values):
            continue
        mine = by_tune_id.get(run.data.tags.get("trial_id"), [])
        if any(t.state == TrialState.COMPLETE for t in mine) or not mine:
            continue
        attrs = {
            "tune_trial_id": run.data.tags["trial_id"],
            "mlflow_run_id": run.info.run_id,
            "metrics": {k: v for k, v in run.data.metrics.items() if isinstance(v, float) and math.isfinite(v)},
        }
        running = [t for t in mine if t.state == TrialState.RUNNING]
        if running:
            for key, value in attrs.items():
                study._storage.set_trial_user_attr(running[0]._trial_id, key, value)
            study.tell(running[0].number, values if len(values) > 1 else values[0])
        else:
            failed = mine[-1]
            study.add_trial(
                optuna.trial.create_trial(
                    params=failed.params,
                    distributions={k: distributions[k] for k in failed.params},
                    values=values,
                    user_attrs={**attrs, "retry_of": failed.number},
                )
            )
        settled += 1
    return settled


class StoredOptunaSearch(OptunaSearch):
    """Ray's ``OptunaSearch`` on the phase's RDB storage: trials carry their Tune trial id, MLflow run id and final
    metrics, and a restore after a killed driver settles the storage with Tune's saved state (module docstring)."""

    def __init__(self, ref: OptunaRef, kept_metrics: tuple[str, ...], **kwargs):
        super().__init__(storage=open_storage(ref.url), study_name=ref.study, **kwargs)
        self._ref, self._kept_metrics = ref, tuple(kept_metrics)
        self._attributed: set[str] = set()
        self._told_before_restore: set[str] = set()

    def set_search_properties(self, metric, mode, config, **spec):
        """The study's own objectives (given at construction) win over Tune's single ``metric``/``mode``."""
        return super().set_search_properties(None, None, config, **spec)

    def suggest(self, trial_id: str):
        config = super().suggest(trial_id)
        if trial_id in self._ot_trials:  # named from the start, so a trial that fails before reporting is found
            self._ot_trials[trial_id].set_user_attr("tune_trial_id", trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict):
        if trial_id in self._told_before_restore or trial_id not in self._ot_trials:
            return
        self._attribute(trial_id, result)
        # Optuna's intermediate values are keyed by the task's step, as MLflow's histories are, not by Tune's
        # report count: a trial retrained from its start (an emptied checkpoint, tuner/atomic_files.py) reports
        # its steps again under later counts, and each step must keep its own value (Optuna ignores a repeat).
        super().on_trial_result(
            trial_id, {**result, TRAINING_ITERATION: result.get("step", result[TRAINING_ITERATION])}
        )

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id in self._told_before_restore:  # told before a kill; Tune replayed its finished run
            self._completed_trials.add(trial_id)
            return
        if trial_id not in self._ot_trials:
            return  # settled at the end of the phase (settle_with_runs)
        if trial_id not in self._completed_trials and result:
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
        """Tune's saved searcher, then the study reloaded from the storage and settled with it. The trials told
        before any earlier restore stay remembered (the saved searcher holds them)."""
        super().restore(checkpoint_path)
        self._ref = getattr(self, "_ref", None) or OptunaRef(url=self._url, study=self._study_name)
        self._storage = open_storage(self._ref.url)
        self._ot_study = optuna.load_study(
            study_name=self._study_name, storage=self._storage, sampler=self._ot_study.sampler
        )
        known = {trial_id: trial._trial_id for trial_id, trial in self._ot_trials.items()}  # Tune's -> storage's id
        stored = {t._trial_id: t for t in self._ot_study.get_trials(deepcopy=False)}
        told_now = {
            trial_id
            for trial_id, stored_id in known.items()
            if trial_id not in self._completed_trials and stored[stored_id].state.is_finished()
        }
        self._told_before_restore = set(getattr(self, "_told_before_restore", set())) | told_now
        self._ot_trials = {
            trial_id: optuna.Trial(self._ot_study, stored_id)
            for trial_id, stored_id in known.items()
            if trial_id not in self._completed_trials and trial_id not in self._told_before_restore
        }
        for stored_id, trial in stored.items():
            if trial.state == TrialState.RUNNING and stored_id not in known.values():
                self._storage.set_trial_user_attr(stored_id, "orphaned", True)
                self._storage.set_trial_state_values(stored_id, TrialState.FAIL)
