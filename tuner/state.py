"""A study execution's saved state (``STUDY/study.json``) and the identity every trial carries, as typed models.

An *execution* is one ``tuner run`` of a study file into one study folder; ``tuner resume`` continues it. Its
id is the id of its MLflow parent run: every trial's run carries it (``mlflow.parentRunId``), and every read,
sweep and report of the execution filters by it, so two executions of one study name on one tracking server
(two users, a rerun after the folder was deleted, another ``--storage``) never mix.

This module is the only one that reads or writes ``study.json``; it imports no Ray, so the report and the export
load a study without starting anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .atomic_files import replace_durably
from .errors import StudyStateError
from .study import NAME, Study, Telemetry

STATE_FILE = "study.json"
STATE_VERSION = 2
PhaseStatus = Literal["started", "done"]
Verdict = Literal["better", "worse", "equivalent", "undecided"]


class OptunaRef(BaseModel):
    """Where a searched phase keeps its Optuna study: an RDB URL (never with a password) and the study name."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str
    study: str


class LookRow(BaseModel):
    """One comparison (a Newton variant against the baseline of its setting) at one look of an adaptive
    replication (``tuner/adaptive.py``); None where a number is undefined (no test yet, no spread, a NaN value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    variant: dict[str, Any]  # the variant's trial config without its seed
    baseline: dict[str, Any]  # the baseline of its setting, likewise
    tested: bool  # tested at this look (False: decided at an earlier look, its numbers carried over)
    seeds: int  # the variant's seeds with a final value at its last test
    diff: Optional[float] = None  # Δ (variant − baseline) at its last test
    p: Optional[float] = None  # two-sided p at its last test
    p_tost: Optional[float] = None
    score: Optional[float] = None  # min over its looks of p / the look's α (tuner/report/sequential.py); None: ∞
    score_tost: Optional[float] = None
    lead: Optional[float] = None  # Δ at the look that gave ``score``: the direction of better/worse
    verdict: Verdict = "undecided"
    decided_at: Optional[int] = None  # the look that gave the verdict


class Look(BaseModel):
    """One look of an adaptive replication: the verdicts it recorded and the round of trials it planned."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    look: int  # 1, 2, ...; round k (phase ``replicate-k``) runs the trials look k planned
    seeds: tuple[int, ...]  # the seeds of the open comparisons at this look
    t: float  # information time: len(seeds) / max_seeds
    level: float  # the α this look spends: α(t) − α(t of the previous look)
    spent: float  # α(t)
    metric: str
    mode: str
    margin: Optional[float] = None
    rows: list[LookRow]
    trials: list[dict[str, Any]] = Field(default_factory=list)  # the next round; empty: the replication is over


class StudyState(BaseModel):
    """What ``tuner resume``, ``report`` and ``export`` need of an execution, and where its phases stand."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    version: int = STATE_VERSION
    study: Study
    mlflow_uri: str  # without credentials (tuner/credentials.py)
    experiment_id: str
    parent_run_id: str  # the execution's id
    git_commit: str = "unknown"
    git_dirty: str = "unknown"
    code_hash: str = ""  # of the code the driver ships and runs (tuner/plugins.py)
    phases: dict[str, PhaseStatus] = Field(default_factory=dict)
    failed: dict[str, int] = Field(default_factory=dict)
    best: Optional[dict[str, Any]] = None
    front: Optional[list[dict[str, Any]]] = None
    selections: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    optuna: Optional[OptunaRef] = None
    looks: list[Look] = Field(default_factory=list)  # adaptive replication (``replicate:``), recorded look by look

    @property
    def execution_id(self) -> str:
        return self.parent_run_id

    def done(self, phase: str) -> bool:
        return self.phases.get(phase) == "done"


class TrialContext(BaseModel):
    """What a trial needs to know of its execution, handed to every trial by the driver (Tune pickles it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    study: str
    task: str
    phase: str
    execution_id: str
    mlflow_uri: str
    experiment_id: str
    git_commit: str
    git_dirty: str
    code_hash: str
    objectives: tuple[str, ...]
    plugins: dict[str, dict[str, str]] = Field(default_factory=dict)
    shown: tuple[str, ...] = ("variant", "lam", "seed")
    telemetry: Telemetry = Telemetry()


def study_dir(storage: str | Path, name: str) -> Path:
    """``STORAGE/NAME``; ``name`` must be a name a study file may have, so it never leaves the storage folder, and
    the storage a local (or mounted shared) folder: a URI such as ``s3://bucket`` is refused in one line."""
    if not NAME.fullmatch(str(name)):
        raise StudyStateError(f"{name!r} is not a study name (letters, digits, '_', '.', '-'; not starting with '.')")
    if "://" in str(storage):
        raise StudyStateError(
            f"--storage {storage}: the tuner keeps studies in a folder every node can see (a local "
            f"disk, or NFS and the like mounted on every node); object-store URIs are not "
            f"supported: mount the bucket (e.g. s3fs, gcsfuse) and pass its folder"
        )
    return Path(storage).expanduser().resolve() / name


def load_state(folder: Path) -> StudyState:
    """The saved state of the study in ``folder``, or a one-line ``StudyStateError``."""
    path = folder / STATE_FILE
    if not path.is_file():
        raise StudyStateError(f"no study in {folder} (expected {path}; run it first with `tuner run STUDY.yaml`)")
    try:
        raw = json.loads(path.read_text())
        return StudyState(**_upgraded(raw))
    except (OSError, ValueError, TypeError, ValidationError) as error:
        first = str(error).strip().splitlines()[0]
        raise StudyStateError(
            f"the study state {path} cannot be read ({first}); it was written by another version or edited by hand"
        ) from None


def save_state(folder: Path, state: StudyState) -> None:
    """Write ``study.json`` whole or not at all, and durably (a host crash leaves the old or the new file)."""
    replace_durably(folder / STATE_FILE, state.model_dump_json(indent=2).encode())


def _upgraded(raw: dict[str, Any]) -> dict[str, Any]:
    """A state written before version 2 (an untyped dict) in this version's shape."""
    if not isinstance(raw, dict):
        raise ValueError(f"a study state is a JSON object, got {type(raw).__name__}")
    if raw.get("version", 1) >= STATE_VERSION:
        return raw
    raw = dict(raw)
    url, name = raw.pop("optuna_storage", None), raw.pop("optuna_study", None)
    if url:
        raw["optuna"] = {"url": url, "study": name or raw["study"]["name"]}
    raw["version"] = STATE_VERSION
    return {key: value for key, value in raw.items() if key in StudyState.model_fields}
