"""The paper-style results table: mean ± std over seeds, each Newton variant against its baseline.

Test: two-sided, paired t-test over the seeds both have when seeds match (``scipy.stats.ttest_rel``),
Welch's t-test otherwise (``ttest_ind(equal_var=False)``). Effect size: Cohen's d (paired: mean of
the differences over their std; Welch: difference of means over the pooled std).

A table holds many tests per metric (a Figure-4 study: ~50), so raw p < 0.05 would mark a few by chance alone.
Each metric's tests form one family: the table reports the raw p and the Holm-adjusted p (Holm 1979: controls
the family-wise error rate at 0.05 under any dependence), and ``*`` marks adjusted p < 0.05.

Each comparison also gets its difference with a bootstrap interval, P(better), a verdict (better, worse,
equivalent within the study's margin, undecided) and, when undecided, the seeds that would decide it
(``decisions.py``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .decisions import ALPHA, MAX_SEEDS, difference, holm, judged, no_spread

NAN = float("nan")
__all__ = ["compare", "formatted", "holm", "results_table"]
IGNORED = {"param_seed", "param_lam", "param_variant", "param_data_dir", "param_device"}


def setting_columns(trials: pd.DataFrame) -> list[str]:
    """Params that vary between trials and define a 'setting' (loss, n, tau, ...), not variant/λ/seed."""
    params = [c for c in trials.columns if c.startswith("param_") and c not in IGNORED]
    return [c for c in params if trials[c].astype("string").nunique(dropna=False) > 1]


def by_setting(trials: pd.DataFrame, keys: list[str]):
    """Yield ``(setting, group)`` per distinct value of the ``keys`` columns, the setting as ``{name: value}``
    without the ``param_`` prefix (missing values kept); all trials as one group when there are no keys."""
    if not keys:
        yield {}, trials
        return
    for values, group in trials.groupby(keys, dropna=False, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        yield {k.removeprefix("param_"): v for k, v in zip(keys, values)}, group


def final_values(trials: pd.DataFrame, metric: str) -> pd.Series:
    return trials[f"final_{metric}"].astype(float)


def seeded(trials: pd.DataFrame, metric: str) -> pd.Series:
    """A group's final values of ``metric`` indexed by seed."""
    return trials.set_index("param_seed")[f"final_{metric}"].astype(float)


def compare(newton: pd.DataFrame, baseline: pd.DataFrame, metric: str) -> dict[str, float | str]:
    """Two-sided test of a Newton variant's final metric against the baseline's, over seeds.

    With no spread (every paired difference equal, or both groups constant) the t statistic is ±inf or 0/0, and
    scipy's p = 0 would mark a granularity artefact (two seeds, accuracies on a few hundred sets) as
    significant: such a test is reported as undefined instead, with p and d NaN.
    """
    a, b = seeded(newton, metric), seeded(baseline, metric)
    common = a.index.intersection(b.index)
    if len(common) >= 2 and len(common) == len(a) == len(b):
        diff = a.loc[common] - b.loc[common]
        sd = diff.std(ddof=1)
        if no_spread(sd, a.to_numpy(), b.to_numpy()):
            return {"test": "paired t (undefined: equal differences)", "p": NAN, "d": NAN, "n_pairs": len(common)}
        p = stats.ttest_rel(a.loc[common], b.loc[common]).pvalue
        return {"test": "paired t", "p": float(p), "d": float(diff.mean() / sd), "n_pairs": len(common)}
    if len(a) >= 2 and len(b) >= 2:
        pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
        if no_spread(pooled, a.to_numpy(), b.to_numpy()):
            return {"test": "Welch t (undefined: no spread)", "p": NAN, "d": NAN, "n_pairs": 0}
        p = stats.ttest_ind(a, b, equal_var=False).pvalue
        return {"test": "Welch t", "p": float(p), "d": float((a.mean() - b.mean()) / pooled), "n_pairs": 0}
    return {"test": "n/a (< 2 seeds)", "p": NAN, "d": NAN, "n_pairs": 0}


def results_table(
    trials: pd.DataFrame,
    metrics: list[str],
    modes: dict[str, str] | None = None,
    margins: dict[str, float] | None = None,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """One row per (setting, variant, λ): mean ± std of each metric over seeds, and the test against baseline with
    its verdict (``decisions.py``; ``modes``: each metric's direction, default max; ``margins``: the study's
    equivalence margins)."""
    modes, margins = modes or {}, margins or {}
    done = trials[trials["status"] == "FINISHED"]
    keys = setting_columns(done)
    rows = []
    for setting, group in by_setting(done, keys):
        base = group[group["param_variant"] == "baseline"]
        for (variant, lam), cell in group.groupby(
            ["param_variant", group["param_lam"].astype("Float64")], dropna=False, sort=False
        ):
            row = {**setting, "variant": variant, "lam": lam, "seeds": len(cell)}
            for metric in metrics:
                values = final_values(cell, metric)
                row[f"{metric}_mean"], row[f"{metric}_std"] = values.mean(), values.std(ddof=1)
                if variant != "baseline" and len(base):
                    result = compare(cell, base, metric)
                    row.update({f"{metric}_{k}": v for k, v in result.items()})
                    decision = difference(
                        seeded(cell, metric),
                        seeded(base, metric),
                        modes.get(metric, "max"),
                        margins.get(metric),
                        alpha=alpha,
                    )
                    row.update({k: v for k, v in decision.row(f"{metric}_").items() if k != f"{metric}_p"})  # = p
            rows.append(row)
    table = pd.DataFrame(rows)
    for metric in metrics:
        if f"{metric}_p" in table:
            table.insert(table.columns.get_loc(f"{metric}_p") + 1, f"{metric}_p_holm", holm(table[f"{metric}_p"]))
            table = judged(table, modes.get(metric, "max"), alpha, f"{metric}_")
    order = {"baseline": 0, "hessian": 1, "fisher": 2}
    sort_keys = [k.removeprefix("param_") for k in keys] + ["_order", "lam"]
    return table.assign(_order=table["variant"].map(order)).sort_values(sort_keys).drop(columns="_order")


def formatted(table: pd.DataFrame, metrics: list[str], percent: tuple[str, ...] = ()) -> pd.DataFrame:
    """Human-readable cells: ``83.31 ± 1.70 *`` (×100 for the metrics in ``percent``, the task's
    ``PERCENT_METRICS``; ``*``: Holm-adjusted p < 0.05), raw and adjusted p-values and effect sizes."""
    out = table[[c for c in table.columns if not any(c.startswith(m) for m in metrics)]].copy()
    out["lam"] = out["lam"].map(lambda v: "" if pd.isna(v) else f"{v:g}")
    for metric in metrics:
        scale = 100 if metric in percent else 1
        mark = table.get(f"{metric}_p_holm", pd.Series(np.nan, index=table.index)).map(
            lambda p: " *" if p < 0.05 else ""
        )
        out[metric] = [
            f"{m * scale:.2f}" + ("" if pd.isna(s) else f" ± {s * scale:.2f}") + k
            for m, s, k in zip(table[f"{metric}_mean"], table[f"{metric}_std"], mark)
        ]
        if f"{metric}_p" in table:
            out[f"{metric} p"] = table[f"{metric}_p"].map(lambda p: "" if pd.isna(p) else f"{p:.3g}")
            out[f"{metric} p (Holm)"] = table[f"{metric}_p_holm"].map(lambda p: "" if pd.isna(p) else f"{p:.3g}")
            out[f"{metric} d"] = table[f"{metric}_d"].map(lambda d: "" if pd.isna(d) else f"{d:+.2f}")
        if f"{metric}_verdict" in table:
            out = out.join(verdict_cells(table, f"{metric}_", scale, f"{metric} "))
    return out


def verdict_cells(table: pd.DataFrame, prefix: str = "", scale: float = 1, label: str = "") -> pd.DataFrame:
    """``Δ [95% CI]`` (×``scale``), ``P(better)``, the verdict and, when undecided, the seeds needed (``> 1000``
    beyond the cap; why not, when undefined) from the ``{prefix}diff``, ... columns; blank where no verdict."""

    def number(v):  # percent points as the table shows them; other units with 4 significant digits
        return f"{v * scale:+.2f}" if scale == 100 else f"{v * scale:+.4g}"

    def interval(d, low, high):
        return "" if pd.isna(d) else number(d) + ("" if pd.isna(low) else f" [{number(low)}, {number(high)}]")

    def seeds(word, n, note):
        if word != "undecided":
            return ""
        return note or "n/a" if pd.isna(n) else f"> {MAX_SEEDS}" if math.isinf(n) else f"{n:.0f}"

    get = {
        k: table[f"{prefix}{k}"] for k in ("diff", "ci_low", "ci_high", "p_better", "verdict", "seeds_needed", "note")
    }
    return pd.DataFrame(
        {
            f"{label}Δ [95% CI]": [interval(*v) for v in zip(get["diff"], get["ci_low"], get["ci_high"])],
            f"{label}P(better)": get["p_better"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}"),
            f"{label}verdict": get["verdict"].fillna(""),
            f"{label}seeds needed": [seeds(*v) for v in zip(get["verdict"], get["seeds_needed"], get["note"])],
        },
        index=table.index,
    )
