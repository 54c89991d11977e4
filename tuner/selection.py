"""The selection phase's decision (``select:`` in a study; the paper's protocol, appendix C and Table 4): per
setting of the other keys, the value of the ``over`` keys whose trial on the selection seed reached the best final
value of the study's first objective; then the settings that the replication phase runs, each on every seed.

A *group* is a selection-phase trial's config without the ``over`` keys, the seed and the ``by`` keys; each group
gets the ``over`` values of its best finished trial (the first in grid order among equal values). A grid setting
takes the values selected for the most specific group it agrees with on every key of the group (with ``by``, a
Fisher setting with its own λ takes the learning rate selected on the baseline of the same loop and norm);
settings that differ only in their ``over`` values become one.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .state import StudyState
from .study import Study
from .tracking import set_tags, study_runs


def _group(config: dict[str, Any], study: Study) -> str:
    dropped = {*study.select.over, *study.select.by, "seed"}
    return json.dumps({k: v for k, v in config.items() if k not in dropped}, sort_keys=True, default=str)


def select_settings(study: Study, finals: list[tuple[dict[str, Any], float | None]]) -> list[dict[str, Any]]:
    """The selection from the selection trials' configs (as the grid gave them) and their final objective values
    (None for a trial that did not finish), in grid order: per group, the candidates and what was selected."""
    metric, mode = study.primary
    order = {json.dumps(trial, sort_keys=True, default=str): i for i, trial in enumerate(study.selection_trials())}
    ranked = sorted(finals, key=lambda item: order.get(json.dumps(item[0], sort_keys=True, default=str), len(order)))
    groups: dict[str, dict[str, Any]] = {}
    for config, value in ranked:
        group = groups.setdefault(
            _group(config, study),
            {"group": json.loads(_group(config, study)), "metric": metric, "mode": mode, "candidates": []},
        )
        over = {key: config.get(key) for key in study.select.over}
        group["candidates"].append({**over, "value": value})
    for group in groups.values():
        finished = [c for c in group["candidates"] if c["value"] is not None and math.isfinite(c["value"])]
        if not finished:
            group["selected"] = None
            continue
        sign = 1 if mode == "max" else -1
        best = max(finished, key=lambda c: sign * c["value"])  # max keeps the first of equal ones
        group["selected"] = {key: best[key] for key in study.select.over}
    return list(groups.values())


def selected_trials(study: Study, selections: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every grid setting with the values selected for its group, on every seed of the study; and, one line each,
    the settings that get nothing (their group's candidates all failed, or no group agrees with them)."""
    settings, skipped = {}, []
    for trial in study.grid_trials():
        if trial["seed"] != study.seeds[0]:
            continue
        rest = {k: v for k, v in trial.items() if k not in study.select.over and k != "seed"}
        matching = [s for s in selections if all(k in rest and rest[k] == v for k, v in s["group"].items())]
        if not matching:
            skipped.append(f"{rest}: no selection group agrees with it")
            continue
        group = max(matching, key=lambda s: len(s["group"]))
        if group["selected"] is None:
            skipped.append(f"{rest}: every candidate of its group failed")
            continue
        setting = {**rest, **group["selected"]}
        if setting.get("variant", "baseline") == "baseline":
            setting.pop("lam", None)
        settings.setdefault(json.dumps(setting, sort_keys=True, default=str), setting)
    trials = [{**setting, "seed": seed} for setting in settings.values() for seed in study.seeds]
    return trials, sorted(set(skipped))


def close_selection(state: StudyState) -> None:
    """Decide the selection from the execution's selection trials, keep it in the state, and record on the parent
    run what was selected and why (the tag ``selection``, and ``selection.json`` with every candidate)."""
    from mlflow.tracking import MlflowClient

    study, metric = state.study, state.study.primary.metric
    runs = [
        r
        for r in study_runs(state.mlflow_uri, state.experiment_id, state.execution_id)
        if r.data.tags.get("phase") == "select"
    ]
    finals = [
        (json.loads(r.data.tags["trial_config"]), r.data.metrics.get(metric) if r.info.status == "FINISHED" else None)
        for r in runs
        if "trial_config" in r.data.tags
    ]
    state.selections["select"] = select_settings(study, finals)
    summary = [{**s["group"], **(s["selected"] or {"selected": None})} for s in state.selections["select"]]
    set_tags(state.mlflow_uri, state.parent_run_id, {"selection": json.dumps(summary, default=str)[:5000]})
    MlflowClient(state.mlflow_uri).log_dict(
        state.parent_run_id, {"selections": state.selections["select"]}, "selection.json"
    )
    for line in summary:
        print(f"tuner: selected {line}", flush=True)
