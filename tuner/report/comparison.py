"""The Markdown of ``tuner compare``: the verdict table of every matched setting and metric, the settings in one
execution only, and the fixed parameters and recorded environment where the two executions differ."""

from __future__ import annotations

import pandas as pd

from . import markdown_table
from .decisions import explained
from .stats import verdict_cells


def comparison_markdown(states, names, table, only, fixed, environment, margins, percent) -> str:
    shown = []
    for metric, rows in table.groupby("metric", sort=False):
        scale = 100 if metric in percent else 1
        cells = verdict_cells(rows, "", scale)

        def number(v, scale=scale):
            return f"{v * scale:.2f}" if scale == 100 else f"{v:.4g}"

        shown.append(
            pd.concat(
                [
                    rows[["label", "metric"]].rename(columns={"label": "setting"}),
                    pd.DataFrame(
                        {
                            "seeds (before/after)": [
                                f"{b}/{a}" + (" paired" if p else "")
                                for b, a, p in zip(rows["before_seeds"], rows["after_seeds"], rows["paired"])
                            ],
                            "before": rows["before_mean"].map(number),
                            "after": rows["after_mean"].map(number),
                        },
                        index=rows.index,
                    ),
                    cells,
                    pd.DataFrame(
                        {
                            "p (Holm)": rows["p_holm"].map(lambda p: "" if pd.isna(p) else f"{p:.3g}"),
                            "TOST p (Holm)": rows["p_tost_holm"].map(lambda p: "" if pd.isna(p) else f"{p:.3g}"),
                            "also changed": rows["changed"],
                        },
                        index=rows.index,
                    ),
                ],
                axis=1,
            )
        )
    verdicts = pd.concat(shown).sort_index()
    before, after = states
    lines = [f"# Compare: {names[1]} against {names[0]}", ""]
    lines += [
        f"- {side}: study `{s.study.name}`, execution {s.execution_id}, git {s.git_commit}"
        + (" (uncommitted changes)" if s.git_dirty == "True" else "")
        for side, s in zip(("BEFORE", "AFTER"), states)
    ]
    lines += [
        "",
        explained(margins, "AFTER", "BEFORE"),
        "Metrics shown ×100: " + (", ".join(m for m in dict.fromkeys(table["metric"]) if m in percent) or "none") + ".",
        "",
        "## Verdicts",
        "",
        markdown_table(verdicts),
        "",
        "![forest plot](compare.png)",
        "",
    ]
    if only:
        lines += (
            ["## Settings in one execution only", ""]
            + [
                f"- {row['present'].upper()} only: {row['label']} ({row[row['present'] + '_seeds']} seeds)"
                for row in only
            ]
            + [""]
        )
    lines += ["## Parameters each execution keeps fixed, where they differ", ""]
    lines += [f"- {c.removeprefix('param_')}: {b} → {a}" for c, (b, a) in fixed.items()] or ["None."]
    lines += ["", "## Recorded environment, where it differs (BEFORE → AFTER)", ""]
    lines += [f"- {name}: {b} → {a}" for name, (b, a) in environment.items()] or [
        "None: the same git commit, library versions, Python, CUDA/cuDNN, GPU, code hash and device."
    ]
    if (before.study.metrics, before.study.modes) != (after.study.metrics, after.study.modes):
        lines += [
            "",
            (
                f"The studies' objectives differ: BEFORE {list(before.study.metrics)} "
                f"{list(before.study.modes)}, AFTER {list(after.study.metrics)} {list(after.study.modes)}; "
                f"the directions here are AFTER's."
            ),
        ]
    return "\n".join(lines) + "\n"
