"""For studies with several objectives (``metric: [valid_elementwise, time_total]``, ``mode: [max, min]``): the
Pareto front of the trials, as a figure (the first objective against the second, one point per trial, coloured by
variant, the baseline marked) and a table of the non-dominated settings."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..pareto import pareto_mask  # noqa: E402
from ..study import Study  # noqa: E402
from .plots import COLORS  # noqa: E402

FIGURE = "pareto_front.png"


def pareto_points(trials: pd.DataFrame, study: Study) -> pd.DataFrame:
    """The finished trials of the searched phase (of every phase for a grid study) with a finite value of each
    objective, the settings the study varies as columns, and ``on_front``."""
    pool = trials[trials["phase"] == "search"] if study.search is not None else trials
    columns = [f"final_{m}" for m in study.metrics]
    if not all(c in pool for c in columns):
        return pd.DataFrame()
    pool = pool[(pool["status"] == "FINISHED") & np.isfinite(pool[columns].astype(float)).all(axis=1)]
    if pool.empty:
        return pd.DataFrame()
    configs = [json.loads(c) if isinstance(c, str) else {} for c in pool.get("trial_config", [None] * len(pool))]
    shown = [k for k in study.shown_keys() if k != "seed"]
    table = pd.DataFrame({"trial": pool["run_name"].values})
    for key in shown:
        table[key] = [config.get(key) for config in configs]
    for metric, column in zip(study.metrics, columns):
        table[metric] = pool[column].astype(float).values
    table["on_front"] = pareto_mask(table[list(study.metrics)].values, study.modes) if len(table) else []
    return table


def front_table(points: pd.DataFrame, study: Study) -> pd.DataFrame:
    """The non-dominated settings, best first in the first objective."""
    front = points[points["on_front"]].drop(columns="on_front")
    return front.sort_values(study.primary.metric, ascending=study.primary.mode == "min").reset_index(drop=True)


def pareto_figure(
    points: pd.DataFrame, study: Study, title: str, path: Path, labels: dict[str, str], percent: tuple[str, ...]
) -> None:
    """The first objective (y) against the second (x): every trial, the front as a step line, baselines as stars."""
    y_metric, x_metric = study.metrics[0], study.metrics[1]
    scale = lambda m: 100.0 if m in percent else 1.0
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    variants = points["variant"] if "variant" in points else pd.Series(["all"] * len(points))
    for variant in sorted(variants.fillna("").astype(str).unique()):
        chosen = points[variants.fillna("").astype(str).values == variant]
        baseline = variant == "baseline"
        ax.scatter(
            chosen[x_metric] * scale(x_metric),
            chosen[y_metric] * scale(y_metric),
            c=COLORS.get(variant, "tab:green"),
            marker="*" if baseline else "o",
            s=140 if baseline else 40,
            edgecolors="black" if baseline else "none",
            label=variant or "trials",
            zorder=3,
        )
    front = points[points["on_front"]].sort_values(x_metric, ascending=study.modes[1] == "min")
    ax.step(
        front[x_metric] * scale(x_metric),
        front[y_metric] * scale(y_metric),
        where="post",
        color="black",
        linewidth=1,
        alpha=0.6,
        label="Pareto front",
        zorder=2,
    )
    ax.set_xlabel(labels.get(x_metric, x_metric) + (" (×100)" if x_metric in percent else ""))
    ax.set_ylabel(labels.get(y_metric, y_metric) + (" (×100)" if y_metric in percent else ""))
    ax.set_title(f"Pareto front: {y_metric} ({study.modes[0]}) vs {x_metric} ({study.modes[1]})\n{title}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
