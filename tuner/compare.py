"""``tuner compare BEFORE AFTER``: is each setting of AFTER better, worse, equivalent or undecided against the
same setting of BEFORE? Two executions (two study folders, in one ``--storage`` or two), read from their tracking
stores alone, as ``tuner report`` reads one; a CI job runs it after a change and fails on ``--fail-on worse``.

Settings are matched on the parameters both executions vary (variant, λ and the grids' other axes); where that
does not tell one execution's trials apart (BEFORE ran n = 5 and 10, AFTER only n = 5), on the parameters either
varies. Within a matched setting the seeds pair where both ran the same ones. Each setting and report metric (the
task's ``REPORT_METRICS``) gets AFTER − BEFORE with its interval and verdict (``report/decisions.py``; each metric
one Holm family). What else differs is listed: the settings present in one execution only, the parameters each
execution keeps fixed, parameters that differ inside a matched setting, and the recorded environment (the trials'
``git_commit`` and ``env.*`` tags, ``environment.COMPARED``).

Written to ``--out`` (default ``AFTER_STORAGE/AFTER/compare-BEFORE``): ``compare.md``, ``compare.csv`` (one row
per setting and metric; unmatched settings with ``present`` = before/after) and ``compare.png`` (forest plot).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.contract import lower_is_better, percent_metrics

from .environment import COMPARED
from .errors import ReportError
from .export import study_tables
from .report.comparison import comparison_markdown
from .report.decisions import (
    ALPHA,
    VERDICTS,
    difference,
    judged,
    metric_modes,
)
from .report.forest import forest_plot
from .report.stats import seeded, setting_columns
from .state import StudyState, load_state
from .study_file import load_task
from .tracking import probe_tracking

SIDES = ("before", "after")
ALWAYS_KEYS = ("param_variant", "param_lam")
NOT_COMPARED = {"param_seed", "param_data_dir", "param_device"}  # a path or device spelling is no change of setting
ENVIRONMENT = ("git_commit", *(c.replace(".", "_") for c in COMPARED), "device")


def compare_studies(before: Path, after: Path, out: Path | None = None, fail_on: tuple[str, ...] = ()) -> int:
    """Write the comparison of the executions in the study folders ``before`` and ``after``; 1 when a verdict
    is in ``fail_on``, else 0."""
    states = [load_state(Path(folder)) for folder in (before, after)]
    trials = [_finished(state) for state in states]
    if states[0].study.task != states[1].study.task:
        raise ReportError(
            f"BEFORE runs task {states[0].study.task!r} and AFTER {states[1].study.task!r}: "
            f"their metrics cannot be compared"
        )
    study, task = states[1].study, load_task(states[1].study.task, states[1].study.name)
    metrics, percent = list(task.REPORT_METRICS), percent_metrics(task)
    modes = metric_modes(metrics, dict(zip(study.metrics, study.modes)), lower_is_better(task))
    margins = {**states[0].study.report.margin, **study.report.margin}
    key = matching_keys(*trials)
    groups = [_groups(t, key) for t in trials]
    matched = [k for k in groups[0] if k in groups[1]]
    if not matched:
        raise ReportError(
            f"no setting of AFTER ({_some(groups[1])}) matches one of BEFORE ({_some(groups[0])}) on "
            f"{', '.join(c.removeprefix('param_') for c in key)}: nothing to compare"
        )
    fixed = fixed_differences(*trials)
    rows = []
    for k in matched:
        b, a = groups[0][k], groups[1][k]
        changed = _changed(b, a, [c for c in _params(*trials) if c not in key and c not in fixed])
        for metric in metrics:
            result = difference(seeded(a, metric), seeded(b, metric), modes[metric], margins.get(metric))
            rows.append(
                {
                    **_setting(key, k),
                    "label": _label(key, k),
                    "present": "both",
                    "metric": metric,
                    "before_seeds": len(b),
                    "after_seeds": len(a),
                    "before_mean": seeded(b, metric).mean(),
                    "after_mean": seeded(a, metric).mean(),
                    **result.row(),
                    "changed": changed,
                }
            )
    table = pd.concat([judged(g, modes[m], ALPHA) for m, g in pd.DataFrame(rows).groupby("metric", sort=False)])
    table = table.sort_index()
    only = [
        {**_setting(key, k), "label": _label(key, k), "present": side, f"{side}_seeds": len(g)}
        for side, mine, other in (("before", groups[0], groups[1]), ("after", groups[1], groups[0]))
        for k, g in mine.items()
        if k not in other
    ]
    out = Path(out) if out is not None else Path(after) / f"compare-{states[0].study.name}"
    out.mkdir(parents=True, exist_ok=True)
    pd.concat([table, pd.DataFrame(only)], ignore_index=True).rename(columns={"label": "setting"}).to_csv(
        out / "compare.csv", index=False
    )
    names = [f"{s.study.name} ({Path(f).parent})" for s, f in zip(states, (before, after))]
    forest_plot(table, margins, percent, f"{names[1]} against {names[0]}", out / "compare.png")
    environment = environment_differences(*trials)
    (out / "compare.md").write_text(
        comparison_markdown(states, names, table, only, fixed, environment, margins, percent)
    )
    counts = table["verdict"].value_counts()
    print(
        f"compare: AFTER {names[1]} against BEFORE {names[0]}: "
        + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
        + f" ({len(table)} comparisons, {len(matched)} settings; "
        f"{len(only)} setting(s) in one only); wrote {out}/compare.md, compare.csv, compare.png"
    )
    failing = sum(int(counts.get(v, 0)) for v in fail_on)
    if failing:
        print(f"tuner: compare: {failing} verdict(s) {' or '.join(fail_on)} (--fail-on)", file=sys.stderr)
    return 1 if failing else 0


def matching_keys(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    """The param columns that name a setting: those both executions vary, variant and λ always; those either
    varies when that leaves two trials of one execution with the same setting and seed."""
    varying = [set(setting_columns(t)) | set(ALWAYS_KEYS) for t in (before, after)]
    union = sorted((varying[0] | varying[1]) - set(ALWAYS_KEYS)) + list(ALWAYS_KEYS)
    both = [c for c in union if c in varying[0] & varying[1]]

    def unique(key):
        return all(not _frame(t, key + ["param_seed"]).duplicated().any() for t in (before, after))

    return both if unique(both) else union


def fixed_differences(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Params each execution keeps at one value, where the two values differ (or one execution lacks it)."""
    out = {}
    for column in _params(before, after):
        values = [sorted({_text(v) for v in _frame(t, [column])[column]}) for t in (before, after)]
        if all(len(v) == 1 for v in values) and values[0] != values[1]:
            out[column] = (values[0][0], values[1][0])
    return out


def environment_differences(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """The recorded environment (git commit, library versions, Python, CUDA, GPU, code hash, device) where the
    two executions' trials differ: the values each side's trials had, with counts when they are mixed."""
    out = {}
    for column in ENVIRONMENT:
        sides = [_frame(t, [column])[column].map(_text).value_counts() for t in (before, after)]
        if set(sides[0].index) != set(sides[1].index):
            out[column.removeprefix("env_")] = tuple(
                ", ".join(v if len(s) == 1 else f"{v} ({n})" for v, n in s.items()) for s in sides
            )
    return out


def _finished(state: StudyState) -> pd.DataFrame:
    probe_tracking(state.mlflow_uri)
    trials, _ = study_tables(state.mlflow_uri, state.experiment_id, state.execution_id)
    done = trials[trials["status"] == "FINISHED"] if not trials.empty else trials
    if done.empty:
        raise ReportError(f"study {state.study.name!r} has no finished trial to compare")
    return done[done["phase"] != "search"] if (done["phase"] != "search").any() else done


def _params(*trials: pd.DataFrame) -> list[str]:
    columns = dict.fromkeys(c for t in trials for c in t.columns if c.startswith("param_"))
    return [c for c in columns if c not in NOT_COMPARED]


def _frame(trials: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``trials[columns]`` as comparable values (numbers as floats, missing as None), absent columns as None."""
    return pd.DataFrame(
        {c: [_value(v) for v in trials[c]] if c in trials else [None] * len(trials) for c in columns},
        index=trials.index,
        dtype=object,
    )  # None stays None, not NaN


def _value(v):
    if v is None or (pd.api.types.is_scalar(v) and pd.isna(v)):
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    return float(v) if isinstance(v, (int, float, np.integer, np.floating)) else str(v)


def _text(v) -> str:
    v = _value(v)
    return "—" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _groups(trials: pd.DataFrame, key: list[str]) -> dict[tuple, pd.DataFrame]:
    frame = _frame(trials, key)
    index: dict[tuple, list] = {}
    for k, i in zip(frame.itertuples(index=False, name=None), frame.index):
        index.setdefault(k, []).append(i)
    return {k: trials.loc[i] for k, i in index.items()}


def _setting(key: list[str], values: tuple) -> dict:
    return {c.removeprefix("param_"): v for c, v in zip(key, values)}


def _label(key: list[str], values: tuple) -> str:
    return " ".join(f"{c.removeprefix('param_')}={_text(v)}" for c, v in zip(key, values) if v is not None) or (
        "all trials"
    )


def _some(groups: dict) -> str:
    labels = [" ".join(_text(v) for v in k if v is not None) for k in list(groups)[:3]]
    return "; ".join(labels) + (" ..." if len(groups) > 3 else "")


def _changed(before: pd.DataFrame, after: pd.DataFrame, columns: list[str]) -> str:
    """``lr 0.001 → 1e-06; ...``: params whose values differ between the two groups of one setting."""
    parts = []
    for column in columns:
        values = [", ".join(sorted({_text(v) for v in _frame(g, [column])[column]})) for g in (before, after)]
        if values[0] != values[1]:
            parts.append(f"{column.removeprefix('param_')} {values[0]} → {values[1]}")
    return "; ".join(parts)


def verdict_failures(words: str) -> tuple[str, ...]:
    """``--fail-on worse,undecided`` as a tuple of verdicts; anything else is a one-line error."""
    chosen = tuple(w.strip() for w in words.split(",") if w.strip())
    unknown = [w for w in chosen if w not in VERDICTS]
    if unknown:
        raise ReportError(
            f"--fail-on: {', '.join(map(repr, unknown))} is no verdict (give some of "
            f"{', '.join(VERDICTS)}, comma-separated)"
        )
    return chosen
