"""The blocks a study file is made of, each a frozen, validated model: a searched parameter, a search and its
early stopping, a selection, an adaptive replication, per-trial resources, per-trial telemetry, a named scale,
report options. The ``Study`` that holds them is in ``study.py``."""

from __future__ import annotations

import re
from typing import Any, Literal, NamedTuple, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Scalar = Union[bool, int, float, str, None]
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a study name names a folder: no separators, no leading dot
KINDS = ("log", "uniform", "integer", "choice")
DataNeed = Literal["paper", "any"]  # the paper's own data sets only, or the bundled substitutes too


class Objective(NamedTuple):
    metric: str
    mode: str


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchParam(_Frozen):
    """One searched parameter: exactly one of ``log``, ``uniform``, ``integer`` ([low, high]) or ``choice``."""

    log: Optional[tuple[float, float]] = None
    uniform: Optional[tuple[float, float]] = None
    integer: Optional[tuple[int, int]] = None
    choice: Optional[tuple[Scalar, ...]] = None

    @model_validator(mode="after")
    def _one_kind(self):
        kinds = [k for k in KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of log: [low, high], uniform: [low, high], integer: [low, high], choice: [...]"
            )
        if self.log is not None and not 0 < self.log[0] < self.log[1]:
            raise ValueError(f"log range needs 0 < low < high, got {list(self.log)}")
        for kind in ("uniform", "integer"):
            bounds = getattr(self, kind)
            if bounds is not None and not bounds[0] < bounds[1]:
                raise ValueError(f"{kind} range needs low < high, got {list(bounds)}")
        if self.choice is not None and not self.choice:
            raise ValueError("choice needs at least one value")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    def corners(self) -> list[Scalar]:
        """Values that bound what the search can sample (checked against the task)."""
        return list(self.choice) if self.choice is not None else list(getattr(self, self.kind))


class Asha(_Frozen):
    """Early stopping of searched trials (ASHA, on the task's ``step``)."""

    grace_period: int = Field(gt=0)
    reduction_factor: float = Field(default=2.0, gt=1)


class Search(_Frozen):
    """An Optuna (TPE) search over ``space``, on trial seed ``seed``, then replicated over the study's seeds.

    ``warm_start`` names earlier studies (same ``--storage``, same task) whose finished searched trials seed the
    sampler; ``startup_trials`` is how many finished trials (seeded ones included) TPE waits for before it models
    the space instead of sampling at random (Optuna's ``n_startup_trials``)."""

    trials: int = Field(gt=0)
    space: dict[str, SearchParam]
    fixed: dict[str, Scalar] = Field(default_factory=dict)
    seed: int = 0
    sampler_seed: int = 0
    startup_trials: int = Field(default=10, ge=1)
    warm_start: tuple[str, ...] = ()
    asha: Optional[Asha] = None
    replicate: bool = True

    @field_validator("warm_start", mode="before")
    @classmethod
    def _one_or_many(cls, names):
        return [names] if isinstance(names, str) else names

    @field_validator("warm_start")
    @classmethod
    def _study_names(cls, names):
        for name in names:
            if not NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a study name (letters, digits, '_', '.', '-')")
        return names

    @field_validator("space")
    @classmethod
    def _non_empty(cls, space):
        if not space:
            raise ValueError("search space is empty")
        return space


class Select(_Frozen):
    """The paper's selection protocol (appendix C): the grid on one seed, then, per setting of the other keys, the
    best value of the ``over`` keys (by the study's first objective), then every setting with its selected values
    on every seed of the study. ``by`` restricts the selection to the grid trials with those values (the paper
    chose τ, β, σ and Table 2's learning rate on the baseline: ``by: {variant: baseline}``); the selected values
    then apply to every grid setting that agrees on the other keys."""

    over: tuple[str, ...]
    seed: int = 0
    by: dict[str, Scalar] = Field(default_factory=dict)

    @field_validator("over", mode="before")
    @classmethod
    def _one_or_many(cls, over):
        return [over] if isinstance(over, str) else over

    @field_validator("over")
    @classmethod
    def _some(cls, over):
        if not over or "seed" in over:
            raise ValueError("over names the grid keys to select (e.g. [lam]); not empty, and not seed")
        return over


class Replicate(_Frozen):
    """Adaptive replication (``replicate: {add: 2, max_seeds: 10}``): the study's ``seeds`` run first (the grid, or a
    selection's replication); then each look compares every Newton variant with the baseline of its setting on
    the task's first ``REPORT_METRICS`` metric (the results table's first column, with its ``report.margin``) and
    adds ``add`` seeds, in rounds, only to the comparisons still undecided (and to their baselines, paired by seed),
    until each is decided or has ``max_seeds``. The seeds added are the next integers after the largest of
    ``seeds`` (``seeds: [0, 1, 2]`` adds 3, 4, ...). The looks spend α by Lan-DeMets' O'Brien-Fleming-type function
    with Holm over the study's comparisons (``tuner/report/sequential.py``); round k is the phase ``replicate-k``."""

    add: int = Field(ge=1)
    max_seeds: int = Field(ge=2)


class Resources(_Frozen):
    cpu: float = Field(default=1, gt=0)
    gpu: float = Field(default=0, ge=0)


class Telemetry(_Frozen):
    """What every trial logs about the machine it ran on (docs/performance.md#telemetry): MLflow's system metrics
    (``system/...``: CPU, memory, disk, network, and the trial's GPUs with the ``gpu`` extra) every ``interval``
    seconds and once more when the trial ends, so a trial shorter than the interval still has one sample. The peak
    memory of the trial's own process is logged either way."""

    system_metrics: bool = True
    interval: float = Field(default=10, gt=0)  # seconds; the study's value wins over MLFLOW_SYSTEM_METRICS_*


class Scale(_Frozen):
    """A named override (``tuner run STUDY --scale smoke``): params merged in; grid, seeds, search budget, per-trial
    resources and concurrency replaced (a GPU cluster's ``{cpu: 4, gpu: 0.5}`` never fits a laptop; a selection
    grid of 136 settings need not either). A scale runs on whatever data is at hand (the bundled substitutes
    included) unless it says ``data: paper`` itself."""

    params: dict[str, Scalar] = Field(default_factory=dict)
    grid: Optional[Union[dict[str, Any], list[Any]]] = None
    data: DataNeed | None = None
    seeds: Optional[tuple[int, ...]] = None
    search_trials: Optional[int] = Field(default=None, gt=0)
    resources: Optional[Resources] = None
    max_concurrent: Optional[int] = Field(default=None, gt=0)


class ReportOptions(_Frozen):
    """How ``tuner report`` and ``tuner compare`` judge a difference: ``margin`` names, per reported metric, the
    largest difference in the metric's own units that counts as none (``{test_exact: 0.01}``: one point of a
    [0, 1] accuracy); two settings are **equivalent** when a test shows their difference inside ±margin
    (``tuner/report/decisions.py``). The metrics must be the task's ``REPORT_METRICS`` (``study_file.py``)."""

    margin: dict[str, float] = Field(default_factory=dict)

    @field_validator("margin", mode="before")
    @classmethod
    def _positive_numbers(cls, margin):
        for metric, value in margin.items() if isinstance(margin, dict) else ():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ValueError(f"{metric}: a margin is a positive number (in the metric's units), got {value!r}")
        return margin
