"""Report figures (matplotlib, PNG): the λ ablation (paper Figure 4) and metric curves over steps and wall
time with 95 % confidence bands over seeds (Figures 3 and 5)."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from .stats import by_setting, setting_columns  # noqa: E402

COLORS = {"baseline": "tab:gray", "hessian": "tab:blue", "fisher": "tab:orange"}


def _setting_groups(trials: pd.DataFrame):
    """(panel title, group) per setting."""
    for setting, group in by_setting(trials, setting_columns(trials)):
        yield ", ".join(f"{k}={v}" for k, v in setting.items()) or "all trials", group


def _lambdas_per_variant(group: pd.DataFrame) -> int:
    newton = group[group["param_variant"] != "baseline"]
    return 0 if newton.empty else int(newton.groupby("param_variant")["param_lam"].nunique().max())


def lambda_ablation(trials: pd.DataFrame, metric: str, title: str, path: Path, label: str | None = None) -> bool:
    """Metric against λ (log axis): one faint line per seed, the seed mean bold, the baseline as a mean ± std band.

    Returns False (and writes nothing) when no setting ran a variant at two or more λ values (Table 2's one λ
    per norm is no ablation).
    """
    done = trials[trials["status"] == "FINISHED"]
    groups = list(_setting_groups(done))
    if not any(_lambdas_per_variant(group) >= 2 for _, group in groups):
        return False
    fig, axes = _figure(len(groups))
    for ax, (name, group) in zip(axes[0], groups):
        base = group.loc[group["param_variant"] == "baseline", f"final_{metric}"].astype(float)
        if len(base):
            ax.axhspan(
                base.mean() - base.std(ddof=1 if len(base) > 1 else 0),
                base.mean() + base.std(ddof=1 if len(base) > 1 else 0),
                color=COLORS["baseline"],
                alpha=0.25,
            )
            ax.axhline(base.mean(), color=COLORS["baseline"], lw=2, label=f"baseline (mean ± std, {len(base)} seeds)")
        for variant, cells in group[group["param_variant"] != "baseline"].groupby("param_variant"):
            table = cells.pivot_table(index="param_lam", columns="param_seed", values=f"final_{metric}", aggfunc="mean")
            lams = table.index.astype(float)
            for seed in table.columns:
                ax.plot(lams, table[seed], color=COLORS.get(variant), alpha=0.2, lw=1)
            ax.plot(
                lams,
                table.mean(axis=1),
                color=COLORS.get(variant),
                lw=2.5,
                marker="o",
                label=f"NL {variant} (mean of {table.shape[1]} seeds)",
            )
        ax.set_xscale("log")
        ax.set_xlabel("λ (Tikhonov regularisation strength)")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(label or metric)
    fig.suptitle(f"λ ablation: final {metric}\n{title}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def curves(
    trials: pd.DataFrame,
    history: pd.DataFrame,
    metric: str,
    mode: str,
    x: str,
    title: str,
    path: Path,
    label: str | None = None,
    chosen_by: str | None = None,
) -> None:
    """Metric over steps (``x="step"``) or wall time (``x="time_total"``): mean and 95 % CI over seeds.

    Per setting and variant, the λ with the best final mean of ``chosen_by`` (the study's objective, a validation
    metric; by default the metric drawn; highest for ``mode="max"``, lowest for "min") is drawn (the others are in
    the λ ablation): the λ of a test curve is never chosen on the test metric.
    """
    done = trials[trials["status"] == "FINISHED"]
    groups = list(_setting_groups(done))
    fig, axes = _figure(len(groups))
    wide = (
        history[history["metric"].isin([metric, "time_total"])]
        .pivot_table(index=["run_id", "step"], columns="metric", values="value")
        .reset_index()
    )
    for ax, (name, group) in zip(axes[0], groups):
        for variant, cells in group.groupby("param_variant", sort=False):
            best_lam = best_lambda(cells, chosen_by or metric, mode)
            chosen = cells[cells["param_lam"].astype(float).fillna(-1) == best_lam]
            series = wide[wide["run_id"].isin(chosen["run_id"])]
            if series.empty:
                continue
            grid, values = _aligned(series, x, metric)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before the first evaluation
                mean = np.nanmean(values, axis=0)
                n = np.sum(~np.isnan(values), axis=0)
                sem = np.nanstd(values, axis=0, ddof=1) / np.sqrt(np.maximum(n, 1)) if values.shape[0] > 1 else 0 * mean
            half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sem
            label = (
                f"{'NL ' if variant != 'baseline' else ''}{variant}"
                + (f" λ={best_lam:g}" if best_lam >= 0 else "")
                + f" ({values.shape[0]} seeds)"
            )
            ax.plot(grid, mean, color=COLORS.get(variant), lw=2, label=label)
            ax.fill_between(grid, mean - half, mean + half, color=COLORS.get(variant), alpha=0.2)
        ax.set_xlabel("training step" if x == "step" else "wall time (s, training incl. evaluation)")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(label or metric)
    fig.suptitle(
        f"{metric} over {'steps' if x == 'step' else 'wall time'} (mean and 95 % CI over seeds)\n{title}", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def best_lambda(cells: pd.DataFrame, metric: str, mode: str) -> float:
    """The λ (-1 for the baseline's none) whose seeds' mean final metric is best: highest for ``mode="max"``,
    lowest for "min"."""
    finals = cells.groupby(cells["param_lam"].astype(float).fillna(-1))[f"final_{metric}"].mean()
    return float(finals.idxmax() if mode == "max" else finals.idxmin())


def _figure(panels: int):
    return plt.subplots(1, panels, figsize=(max(8.0, 5.5 * panels), 4.8), squeeze=False, sharey=True)


def _aligned(series: pd.DataFrame, x: str, metric: str):
    """Seeds on a common x grid: steps are shared; wall times are interpolated onto their union."""
    runs = [g.sort_values("step") for _, g in series.groupby("run_id")]
    if x == "step":
        grid = np.array(sorted(series["step"].unique()), dtype=float)
        values = np.array([np.interp(grid, r["step"], r[metric], left=np.nan, right=np.nan) for r in runs])
    else:
        grid = np.linspace(0, max(r["time_total"].max() for r in runs), 50)
        values = np.array([np.interp(grid, r["time_total"], r[metric], left=np.nan, right=np.nan) for r in runs])
    return grid, values
