"""Adaptive replication (``replicate: {add, max_seeds}``): seeds spent where they decide.

The study's ``seeds`` run first (its grid, or a selection's replication: the *base phase*). Then look 1 judges the
family of comparisons, every Newton variant against the baseline of its setting (the setting: the config without
variant, λ, seed, data folder and device, as the report groups it), on the task's first report metric, by the
sequential rule of ``report/sequential.py``; it records the verdicts and plans round 1: the next ``add`` seeds of the
schedule for every comparison still undecided and for its baseline. Round k runs as the phase ``replicate-k``, and
look k + 1 judges again on all seeds so far, until no comparison is undecided or they have ``max_seeds``.

Each look is recorded in the study state (``StudyState.looks``) with the trials it planned, before its round
starts; a resume runs the recorded rounds and never judges a recorded look again.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from .report.decisions import difference
from .report.sequential import UNDECIDED, sequential_look, spending
from .state import Look, LookRow, StudyState
from .study import Study

ROUND = "replicate-"  # round k is the phase replicate-k
NOT_SETTING = {"variant", "lam", "seed", "data_dir", "device"}  # the report's setting ignores these (stats.IGNORED)


def base_phase(study: Study) -> str:
    """The phase whose trials the first look judges."""
    return "replicate" if study.select is not None else "grid"


def round_phase(look: int) -> str:
    return f"{ROUND}{look}"


def schedule(study: Study) -> list[int]:
    """Every seed a comparison can get, in order: ``seeds``, then the next integers after the largest of them."""
    first, top = list(study.seeds), max(study.seeds)
    return first + list(range(top + 1, top + 1 + study.replicate.max_seeds - len(first)))


def seeds_at(study: Study, look: int) -> int:
    """How many seeds the open comparisons have at ``look`` (1, 2, ...; 0 before the first)."""
    if look < 1:
        return 0
    return min(len(study.seeds) + (look - 1) * study.replicate.add, study.replicate.max_seeds)


def key(config: dict[str, Any]) -> str:
    """A config without its seed, as a string (the trial's ``trial_config`` tag, less the seed)."""
    return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)


def first_settings(state: StudyState) -> list[dict[str, Any]]:
    """The settings (configs without seed) of the base phase, in its order."""
    study = state.study
    if study.select is None:
        trials = study.grid_trials()
    else:
        from .selection import selected_trials  # only a selection study needs it

        trials = selected_trials(study, state.selections["select"])[0]
    return [{k: v for k, v in t.items() if k != "seed"} for t in trials if t["seed"] == study.seeds[0]]


def comparisons(settings: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(variant, baseline) for every non-baseline setting whose setting has a baseline, in the settings' order."""
    baselines = {}
    for config in settings:
        if config.get("variant", "baseline") == "baseline":
            baselines.setdefault(_setting(config), config)
    return [
        (config, baselines[_setting(config)])
        for config in settings
        if config.get("variant", "baseline") != "baseline" and _setting(config) in baselines
    ]


def _setting(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items() if k not in NOT_SETTING}, sort_keys=True, default=str)


def round_trials(rows: list[LookRow], seeds: list[int]) -> list[dict[str, Any]]:
    """The trials of a round: each undecided comparison's variant and its baseline on each of ``seeds`` (a baseline
    shared by several comparisons once), seed by seed, in the family's order."""
    configs = {}
    for row in rows:
        if row.verdict == UNDECIDED:
            configs.setdefault(key(row.baseline), row.baseline)
            configs.setdefault(key(row.variant), row.variant)
    return [{**config, "seed": seed} for seed in seeds for config in configs.values()]


def take_look(
    study: Study,
    previous: Look | None,
    family: list[tuple[dict[str, Any], dict[str, Any]]],
    finals: dict[tuple[str, int], float],
    metric: str,
    mode: str,
    margin: float | None = None,
) -> Look:
    """The next look: the open comparisons tested on the schedule's seeds so far (``finals``: the final value of
    ``metric`` per (``key(config)``, seed) of the finished trials), the sequential rule applied to the family, and
    the round it plans. ``family``: the comparisons, used at the first look (later ones keep the previous look's)."""
    number = 1 if previous is None else previous.look + 1
    order, n = schedule(study), seeds_at(study, number)
    limit = study.replicate.max_seeds
    level = spending(n / limit) - spending(seeds_at(study, number - 1) / limit)
    if previous is None:
        rows = [LookRow(variant=variant, baseline=baseline, tested=False, seeds=0) for variant, baseline in family]
    else:
        rows = previous.rows
    tests = [_test(row, order[:n], finals, mode, margin) if row.verdict == UNDECIDED else None for row in rows]
    score, score_tost, lead, verdicts = sequential_look(
        [_inf(r.score) for r in rows],
        [_inf(r.score_tost) for r in rows],
        [_nan(r.lead) for r in rows],
        [r.verdict for r in rows],
        [t.p if t else math.nan for t in tests],
        [t.p_tost if t else math.nan for t in tests],
        [t.diff if t else math.nan for t in tests],
        level,
        mode,
    )
    updated = []
    for i, (row, test) in enumerate(zip(rows, tests)):
        numbers = {}
        if test is not None:
            numbers = {"seeds": test.n_a, "diff": _none(test.diff), "p": _none(test.p), "p_tost": _none(test.p_tost)}
        decided = row.verdict == UNDECIDED and verdicts[i] != UNDECIDED
        updated.append(
            row.model_copy(
                update={
                    **numbers,
                    "tested": test is not None,
                    "score": _none(score[i]),
                    "score_tost": _none(score_tost[i]),
                    "lead": _none(lead[i]),
                    "verdict": verdicts[i],
                    "decided_at": number if decided else row.decided_at,
                }
            )
        )
    more = order[n : seeds_at(study, number + 1)] if n < limit else []
    return Look(
        look=number,
        seeds=tuple(order[:n]),
        t=n / limit,
        level=level,
        spent=spending(n / limit),
        metric=metric,
        mode=mode,
        margin=margin,
        rows=updated,
        trials=round_trials(updated, more),
    )


def _test(row: LookRow, seeds: list[int], finals, mode: str, margin: float | None):
    """The report's paired test of one comparison on the seeds so far that both sides finished."""

    def values(config):
        found = {s: finals[(key(config), s)] for s in seeds if (key(config), s) in finals}
        return pd.Series(found, dtype=float)

    return difference(values(row.variant), values(row.baseline), mode, margin, resamples=999)


def finals_of(runs, study: Study, metric: str) -> dict[tuple[str, int], float]:
    """The final ``metric`` of every finished trial of the base phase and the rounds, by (``key(config)``, seed)."""
    finals = {}
    for run in runs:
        phase = run.data.tags.get("phase", "")
        if phase != base_phase(study) and not phase.startswith(ROUND):
            continue
        value = run.data.metrics.get(metric)
        if run.info.status != "FINISHED" or value is None or "trial_config" not in run.data.tags:
            continue
        config = json.loads(run.data.tags["trial_config"])
        finals[(key(config), config["seed"])] = float(value)
    return finals


def _inf(value: float | None) -> float:
    return math.inf if value is None else value


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _none(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
