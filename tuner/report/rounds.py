"""The rounds of an adaptive replication (``replicate:``), read from the study state where each look recorded them:
one row per comparison and look it was tested at, with the seeds, the α that look spent and the verdict."""

from __future__ import annotations

import pandas as pd

from .. import adaptive  # a module, not its names: adaptive imports this package
from ..state import StudyState
from .decisions import ALPHA, VERDICTS


def rounds_table(state: StudyState) -> pd.DataFrame:
    """One row per (look, comparison tested at it): the look, the comparison's seeds, the α the look spent and had
    spent in all, the keys that tell the comparisons apart, Δ, p, the score (min p / α over its looks), verdict."""
    configs = [row.variant for row in state.looks[0].rows]
    shown = [
        k
        for k in dict.fromkeys(k for c in configs for k in c)
        if k not in adaptive.NOT_SETTING or k in ("variant", "lam")
    ]
    varying = [k for k in shown if k in ("variant", "lam") or len({str(c.get(k)) for c in configs}) > 1]
    rows = [
        {
            "look": look.look,
            "seeds": row.seeds,
            "alpha_look": look.level,
            "alpha_spent": look.spent,
            **{k: row.variant.get(k) for k in varying},
            "diff": row.diff,
            "p": row.p,
            "score": row.score,
            "verdict": row.verdict,
        }
        for look in state.looks
        for row in look.rows
        if row.tested
    ]
    return pd.DataFrame(rows)


def rounds_markdown(state: StudyState, table: pd.DataFrame, markdown_table) -> list[str]:
    """The section of report.md: the rule, the trials the design ran against a fixed design's, and the table."""
    study, last = state.study, state.looks[-1]
    limit, settings = study.replicate.max_seeds, len(adaptive.first_settings(state))
    ran = settings * len(study.seeds) + sum(len(look.trials) for look in state.looks)
    counts = ", ".join(f"{v} {sum(r.verdict == v for r in last.rows)}" for v in VERDICTS)
    shown = table.copy()
    for column in ("alpha_look", "alpha_spent", "p", "score"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
    shown["diff"] = shown["diff"].map(lambda v: "" if pd.isna(v) else f"{v:+.4g}")
    shown = shown.rename(columns={"alpha_look": "α of the look", "alpha_spent": "α spent", "diff": "Δ"})
    margin = f", and TOST against ±{last.margin:g}" if last.margin else ""
    return [
        "## Adaptive replication",
        "",
        f"The study's {len(study.seeds)} seeds ran first; at each look every Newton variant still undecided was "
        f"tested against the baseline of its setting on `{last.metric}` ({last.mode}; the report's paired t-test"
        f"{margin}) and, while undecided, got {study.replicate.add} more seed(s) with its baseline, up to {limit}. "
        f"Look k spends α_k = α(t_k) − α(t_(k−1)) of Lan-DeMets' O'Brien-Fleming-type α(t) = 2 − 2Φ(z_(1−α/2)/√t), "
        f"t = seeds / {limit}, α = {ALPHA:g}; a comparison's score is its smallest p / α_k over its looks, and Holm "
        f"over the scores of all {len(last.rows)} comparisons at level 1 decides (a closed test: the chance of any "
        f"false better/worse verdict over all looks together is at most α). At the last look: {counts}. Trials "
        f"replicated (first seeds and rounds): {ran}; every setting on {limit} seeds would have been "
        f"{settings * limit}. The results table above "
        f"tests all seeds run at once (paired only where both sides ran the same seeds) and ignores the looks; "
        f"these verdicts are the design's.",
        "",
        markdown_table(shown),
        "",
    ]
