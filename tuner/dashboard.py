"""``tuner dashboard``: optuna-dashboard on one study's Optuna study, read-only.

optuna-dashboard serves every study of the storage it is given, with endpoints that create, delete and rename
studies, tell trials and write notes. On a shared PostgreSQL storage that is every user's studies. Here it is
given ``OneStudyReadOnly``: a storage that shows only this execution's Optuna study and refuses every write, so
the dashboard lists that one study, shows its trials, history, plots and attributes, and answers any write
(delete, rename, tell, notes, a new study) with an error while the storage stays as it was.
"""

from __future__ import annotations

from typing import Any

from optuna.storages import BaseStorage

from .credentials import redact
from .errors import StudyStateError
from .optuna_study import open_storage
from .state import StudyState


class ReadOnlyStorageError(RuntimeError):
    """A write through the dashboard's read-only storage."""


class OneStudyReadOnly(BaseStorage):
    """Reads of one study of ``storage``; other studies do not exist here, and writes raise."""

    def __init__(self, storage: BaseStorage, study_name: str):
        self._storage, self._name = storage, study_name
        self._id = storage.get_study_id_from_name(study_name)

    def _own(self, study_id: int) -> int:
        if study_id != self._id:
            raise KeyError(f"No study with study_id {study_id} exists.")
        return study_id

    def _own_trial(self, trial_id: int) -> int:
        if trial_id not in {t._trial_id for t in self._storage.get_all_trials(self._id, deepcopy=False)}:
            raise KeyError(f"No trial with trial_id {trial_id} exists.")
        return trial_id

    # reads, limited to the one study
    def get_all_studies(self):
        return [s for s in self._storage.get_all_studies() if s._study_id == self._id]

    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name != self._name:
            raise KeyError(f"No such study {study_name}.")
        return self._id

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._storage.get_study_name_from_id(self._own(study_id))

    def get_study_directions(self, study_id: int):
        return self._storage.get_study_directions(self._own(study_id))

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._storage.get_study_user_attrs(self._own(study_id))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._storage.get_study_system_attrs(self._own(study_id))

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._storage.get_trial_id_from_study_id_trial_number(self._own(study_id), trial_number)

    def get_trial(self, trial_id: int):
        return self._storage.get_trial(self._own_trial(trial_id))

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states=None):
        return self._storage.get_all_trials(self._own(study_id), deepcopy=deepcopy, states=states)

    # every write is refused
    def _refuse(self, *args, **kwargs):
        raise ReadOnlyStorageError("tuner dashboard is read-only: use Optuna's own API to change a study")

    create_new_study = delete_study = set_study_user_attr = set_study_system_attr = _refuse
    create_new_trial = set_trial_param = set_trial_state_values = set_trial_intermediate_value = _refuse
    set_trial_user_attr = set_trial_system_attr = _refuse


def serve_study(state: StudyState, host: str, port: int) -> None:
    """Serve the execution's Optuna study, read-only, until interrupted."""
    from optuna_dashboard import run_server

    if state.optuna is None:
        raise StudyStateError(
            f"study {state.study.name!r} has no Optuna storage (it has no search phase, or ran "
            f"before searches kept their Optuna study)"
        )
    storage = open_storage(state.optuna.url)
    try:
        shown = OneStudyReadOnly(storage, state.optuna.study)
    except KeyError:
        raise StudyStateError(
            f"the Optuna storage {redact(state.optuna.url)} holds no study {state.optuna.study!r} "
            f"(its search phase never started)"
        ) from None
    print(
        f"Optuna dashboard for {state.study.name!r} (read-only; {redact(state.optuna.url)}, Optuna study "
        f"{state.optuna.study!r}): http://{host}:{port}/dashboard/  (Ctrl-C to stop)",
        flush=True,
    )
    run_server(shown, host=host, port=port)
