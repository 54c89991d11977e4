"""The selection table of a study with ``select:`` (the paper's protocol): per group, every candidate's final value
of the objective on the selection seed, and what was selected."""

from __future__ import annotations

import pandas as pd

from ..state import StudyState


def selection_table(state: StudyState) -> pd.DataFrame:
    """One row per candidate: the group's keys, the candidate's values of the selected keys, its objective value,
    and whether it was selected (read from the study state, where the selection phase recorded it)."""
    rows = []
    over = state.study.select.over
    for group in state.selections.get("select", []):
        for candidate in group["candidates"]:
            chosen = group["selected"] is not None and all(candidate[k] == group["selected"][k] for k in over)
            rows.append(
                {
                    **group["group"],
                    **{k: candidate[k] for k in over},
                    group["metric"]: candidate["value"],
                    "selected": "yes" if chosen else "",
                }
            )
    return pd.DataFrame(rows)


def selection_markdown(state: StudyState, table: pd.DataFrame, markdown_table) -> list[str]:
    study = state.study
    by = f", among the trials with {study.select.by}" if study.select.by else ""
    varying = [c for c in table.columns if table[c].astype(str).nunique() > 1 or c in (*study.select.over, "selected")]
    return [
        "## Selection",
        "",
        f"The grid ran on seed {study.select.seed}{by}; per setting of the other keys, the value of "
        f"{', '.join(study.select.over)} with the best final {study.primary.metric} ({study.primary.mode}; the first "
        f"of equal ones) was selected, then every selected setting ran on every seed (the tables above).",
        "",
        markdown_table(table[varying]),
        "",
    ]
