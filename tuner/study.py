"""A study: a frozen, validated model of a study file (``study_file.py`` reads and checks the file).

A study names a task, fixed ``params`` for every trial, a ``grid`` (every combination of the
listed values, as one block or a union of blocks), ``seeds`` as replicates, and optionally an
Optuna ``search`` (run on one seed, then its best setting replicated over ``seeds``: the
paper's protocol).
"""

from __future__ import annotations

import itertools
from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from .study_blocks import (  # noqa: F401 - re-exported: the study's blocks are part of its model
    KINDS,
    NAME,
    Asha,
    DataNeed,
    Objective,
    Replicate,
    ReportOptions,
    Resources,
    Scalar,
    Scale,
    Search,
    SearchParam,
    Select,
    Telemetry,
    _Frozen,
)


class Study(_Frozen):
    """``data: paper``: every trial must train on the paper's own data sets (``tuner run``/``resume`` refuse to
    start while the task says a config would use a substitute, ``tuner/paper_data.py``); ``any``: substitutes do."""

    name: str
    task: str
    description: str = ""
    metric: Union[str, tuple[str, ...]]
    mode: Union[Literal["max", "min"], tuple[Literal["max", "min"], ...]] = "max"
    params: dict[str, Scalar] = Field(default_factory=dict)
    grid: tuple[dict[str, tuple[Scalar, ...]], ...] = ()
    seeds: tuple[int, ...] = (0,)
    search: Optional[Search] = None
    select: Optional[Select] = None
    replicate: Optional[Replicate] = None
    resources: Resources = Resources()
    max_concurrent: int = Field(default=1, gt=0)
    max_failures: int = Field(default=1, ge=0)
    data: DataNeed = "any"
    keep_checkpoints: bool = False
    telemetry: Telemetry = Telemetry()
    scales: dict[str, Scale] = Field(default_factory=dict)
    report: ReportOptions = ReportOptions()
    source: str = ""

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, name):
        if not NAME.fullmatch(name):
            raise ValueError(f"name must be letters, digits, '_', '.', '-' (it names a folder), got {name!r}")
        return name

    @field_validator("grid", mode="before")
    @classmethod
    def _one_block_or_many(cls, grid):
        """One mapping or a list of them; a scalar value stands for a one-element list."""
        blocks = [grid] if isinstance(grid, dict) else grid
        if not isinstance(blocks, list):
            return blocks
        return [
            {k: v if isinstance(v, list) else [v] for k, v in b.items()} if isinstance(b, dict) else b for b in blocks
        ]

    @field_validator("grid")
    @classmethod
    def _no_empty_axis(cls, grid):
        for i, block in enumerate(grid):
            if not block:
                raise ValueError(f"grid block {i + 1} is empty")
            for key, values in block.items():
                if not values:
                    raise ValueError(f"grid block {i + 1}: {key} has no values, so the grid is empty")
        return grid

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds):
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        return seeds

    @model_validator(mode="after")
    def _selection(self):
        """``select`` needs the grid it selects from, keys that grid varies, and no search beside it."""
        if self.select is None:
            return self
        if not self.grid or self.search is not None:
            raise ValueError("select: needs a grid to select from, and cannot be combined with a search")
        axes = {key for block in self.grid for key in block}
        unknown = [key for key in self.select.over if key not in axes]
        if unknown:
            raise ValueError(f"select.over: {unknown} are not keys of the grid (its keys: {sorted(axes)})")
        stray = [key for key in self.select.by if key not in axes and key not in self.params]
        if stray:
            raise ValueError(f"select.by: {stray} are neither grid keys nor params")
        return self

    @model_validator(mode="after")
    def _adaptive(self):
        """``replicate`` adds seeds to grid (or selected) settings: not to a search's, and not below ``seeds``."""
        if self.replicate is None:
            return self
        if self.search is not None:
            raise ValueError(
                "replicate: adds seeds to grid or selected settings compared with their baselines, not to a "
                "search's best (use search.replicate); remove one of them"
            )
        if len(self.seeds) < 2 or self.replicate.max_seeds < len(self.seeds):
            raise ValueError(
                f"replicate: the first look needs at least 2 seeds and max_seeds at least as many as seeds "
                f"(seeds: {len(self.seeds)}, max_seeds: {self.replicate.max_seeds})"
            )
        return self

    @model_validator(mode="after")
    def _something_to_run(self):
        if not self.grid and self.search is None:
            raise ValueError("a study needs a grid, a search, or both")
        return self

    @model_validator(mode="after")
    def _objectives(self):
        """``metric: [a, b]`` needs ``mode: [max, min]``, one mode per metric, and no metric twice; early stopping
        compares trials on one metric at a rung, so it is refused with several objectives."""
        if isinstance(self.metric, tuple) != isinstance(self.mode, tuple):
            raise ValueError(
                "metric and mode: give both as lists (one mode per metric, e.g. metric: "
                "[valid_elementwise, time_total], mode: [max, min]) or both as single values"
            )
        if isinstance(self.metric, tuple):
            if not self.metric or len(self.metric) != len(self.mode):
                raise ValueError(f"metric and mode: {len(self.metric)} metric(s) but {len(self.mode)} mode(s)")
            if len(set(self.metric)) != len(self.metric):
                raise ValueError(f"metric: {list(self.metric)} names a metric twice")
            if self.search is not None and self.search.asha is not None and len(self.metric) > 1:
                raise ValueError(
                    "search.asha: early stopping cannot serve several objectives (a trial stopped "
                    "early also looks cheap in time); remove asha or give one metric"
                )
        return self

    @property
    def primary(self) -> "Objective":
        """The first objective: what Tune tracks, what "best" means, what the curves show."""
        return Objective(self.metrics[0], self.modes[0])

    @property
    def metrics(self) -> tuple[str, ...]:
        """The objectives' metrics; the first one is what Tune tracks and what the curves show."""
        return self.metric if isinstance(self.metric, tuple) else (self.metric,)

    @property
    def modes(self) -> tuple[str, ...]:
        return self.mode if isinstance(self.mode, tuple) else (self.mode,)

    @property
    def directions(self) -> list[str]:
        """The objectives' directions as Optuna names them."""
        return ["maximize" if mode == "max" else "minimize" for mode in self.modes]

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    def grid_trials(self) -> list[dict[str, Any]]:
        """Every trial config of the grid phase: each block's combinations x seeds, de-duplicated.

        ``lam`` is dropped for the baseline variant (it has no lambda), so a baseline crossed with
        several lambdas is one trial, not several identical ones.
        """
        trials, seen = [], set()
        for block in self.grid:
            keys = list(block)
            for values in itertools.product(*(block[k] for k in keys)):
                case = {**self.params, **dict(zip(keys, values))}
                if case.get("variant", "baseline") == "baseline":
                    case.pop("lam", None)
                for seed in self.seeds:
                    trial = {**case, "seed": seed}
                    key = tuple(sorted((k, repr(v)) for k, v in trial.items()))
                    if key not in seen:
                        seen.add(key)
                        trials.append(trial)
        return trials

    def selection_trials(self) -> list[dict[str, Any]]:
        """The selection phase's trials: the grid's trials on the selection seed that match ``select.by``."""
        chosen = self.select
        return [
            {**trial, "seed": chosen.seed}
            for trial in self.grid_trials()
            if trial["seed"] == self.seeds[0] and all(trial.get(k) == v for k, v in chosen.by.items())
        ]

    def shown_keys(self) -> list[str]:
        """The keys that tell this study's trials apart (grid axes, searched and fixed search parameters), then
        the seed: what the one-line trial summary shows."""
        keys = [k for block in self.grid for k in block]
        if self.search is not None:
            keys += [*self.search.fixed, *self.search.space]
        return list(dict.fromkeys([k for k in keys if k != "seed"] + ["seed"]))

    def loss_names(self) -> list[str]:
        """Every loss name the study's trials can use (params, grid, search), for resolving and shipping code."""
        names = [self.params.get("loss")] + [v for block in self.grid for v in block.get("loss", ())]
        if self.search is not None:
            names.append(self.search.fixed.get("loss"))
            names += list(self.search.space["loss"].corners()) if "loss" in self.search.space else []
        return [n for n in dict.fromkeys(names) if isinstance(n, str)]

    def search_base(self) -> dict[str, Any]:
        """The fixed part of every searched trial's config."""
        assert self.search is not None
        return {**self.params, **self.search.fixed, "seed": self.search.seed}
