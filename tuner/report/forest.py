"""The forest plot of ``tuner compare``: each matched setting's difference with its 95 % interval, one panel per
metric, coloured by verdict, with zero and the study's equivalence margin marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

COLORS = {"better": "tab:green", "worse": "tab:red", "equivalent": "tab:blue", "undecided": "tab:gray"}


def forest_plot(
    table: pd.DataFrame, margins: dict[str, float], percent: tuple[str, ...], title: str, path: Path
) -> None:
    """``table``: one row per (setting, metric) with ``label``, ``metric``, ``diff``, ``ci_low``, ``ci_high`` and
    ``verdict``; metrics in ``percent`` are drawn ×100 (points), as the tables show them."""
    metrics = list(dict.fromkeys(table["metric"]))
    labels = list(dict.fromkeys(table["label"]))
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(4.5 * len(metrics) + 2, 1.2 + 0.4 * len(labels)), sharey=True, squeeze=False
    )
    y = {label: len(labels) - 1 - i for i, label in enumerate(labels)}
    for ax, metric in zip(axes[0], metrics):
        rows = table[table["metric"] == metric]
        scale = 100 if metric in percent else 1
        if metric in margins:
            ax.axvspan(
                -margins[metric] * scale, margins[metric] * scale, color="tab:blue", alpha=0.08, label="± margin"
            )
        ax.axvline(0, color="black", linewidth=0.8)
        for row in rows.itertuples(index=False):
            color = COLORS.get(row.verdict, "tab:gray")
            low, high = (np.nan_to_num(row.ci_low, nan=row.diff), np.nan_to_num(row.ci_high, nan=row.diff))
            ax.plot([low * scale, high * scale], [y[row.label]] * 2, color=color, linewidth=2)
            ax.plot(row.diff * scale, y[row.label], "o", color=color)
        ax.set_title(metric)
        ax.set_xlabel(f"after − before{' (points)' if scale == 100 else ''}")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(list(y.values()), list(y))
    handles = [plt.Line2D([], [], color=c, marker="o", label=v) for v, c in COLORS.items()]
    fig.legend(handles=handles, loc="upper right", ncol=len(COLORS), fontsize="small", frameon=False)
    fig.suptitle(title, x=0.01, ha="left", fontsize="medium")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=120)
    plt.close(fig)
