"""The paper-style results table: mean ± std over seeds, each Newton variant against its baseline.

Test: two-sided, paired t-test over the seeds both have when seeds match (``scipy.stats.ttest_rel``),
Welch's t-test otherwise (``ttest_ind(equal_var=False)``). Effect size: Cohen's d (paired: mean of
the differences over their std; Welch: difference of means over the pooled std).

A table holds many tests per metric (a Figure-4 study: ~50), so raw p < 0.05 would mark a few by chance alone.
Each metric's tests form one family: the table reports the raw p and the Holm-adjusted p (Holm 1979: controls
the family-wise error rate at 0.05 under any dependence), and ``*`` marks adjusted p < 0.05.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

NAN = float("nan")
NO_SPREAD = 1e-12  # a standard deviation at or below this is zero up to floating-point rounding
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


def compare(newton: pd.DataFrame, baseline: pd.DataFrame, metric: str) -> dict[str, float | str]:
    """Two-sided test of a Newton variant's final metric against the baseline's, over seeds.

    With no spread (every paired difference equal, or both groups constant) the t statistic is ±inf or 0/0, and
    scipy's p = 0 would mark a granularity artefact (two seeds, accuracies on a few hundred sets) as
    significant: such a test is reported as undefined instead, with p and d NaN.
    """
    a = newton.set_index("param_seed")[f"final_{metric}"].astype(float)
    b = baseline.set_index("param_seed")[f"final_{metric}"].astype(float)
    common = a.index.intersection(b.index)
    if len(common) >= 2 and len(common) == len(a) == len(b):
        diff = a.loc[common] - b.loc[common]
        sd = diff.std(ddof=1)
        if sd <= NO_SPREAD:
            return {"test": "paired t (undefined: equal differences)", "p": NAN, "d": NAN, "n_pairs": len(common)}
        p = stats.ttest_rel(a.loc[common], b.loc[common]).pvalue
        return {"test": "paired t", "p": float(p), "d": float(diff.mean() / sd), "n_pairs": len(common)}
    if len(a) >= 2 and len(b) >= 2:
        pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
        if pooled <= NO_SPREAD:
            return {"test": "Welch t (undefined: no spread)", "p": NAN, "d": NAN, "n_pairs": 0}
        p = stats.ttest_ind(a, b, equal_var=False).pvalue
        return {"test": "Welch t", "p": float(p), "d": float((a.mean() - b.mean()) / pooled), "n_pairs": 0}
    return {"test": "n/a (< 2 seeds)", "p": NAN, "d": NAN, "n_pairs": 0}


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment: with the m defined p-values sorted ascending, ``p_(i)`` becomes
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``. NaN (undefined tests) stays NaN and does not count in m."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    order = defined[np.argsort(p[defined], kind="stable")]
    m = len(order)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return adjusted


def results_table(trials: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per (setting, variant, λ): mean ± std of each metric over seeds, and the test against baseline."""
    done = trials[trials["status"] == "FINISHED"]
    keys = setting_columns(done)
    rows = []
    for setting, group in by_setting(done, keys):
        base = group[group["param_variant"] == "baseline"]
        for (variant, lam), cell in group.groupby(["param_variant", group["param_lam"].astype("Float64")],
                                                  dropna=False, sort=False):
            row = {**setting, "variant": variant, "lam": lam, "seeds": len(cell)}
            for metric in metrics:
                values = final_values(cell, metric)
                row[f"{metric}_mean"], row[f"{metric}_std"] = values.mean(), values.std(ddof=1)
                if variant != "baseline" and len(base):
                    result = compare(cell, base, metric)
                    row.update({f"{metric}_{k}": v for k, v in result.items()})
            rows.append(row)
    table = pd.DataFrame(rows)
    for metric in metrics:
        if f"{metric}_p" in table:
            table.insert(table.columns.get_loc(f"{metric}_p") + 1, f"{metric}_p_holm", holm(table[f"{metric}_p"]))
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
        mark = table.get(f"{metric}_p_holm", pd.Series(np.nan, index=table.index)).map(lambda p: " *" if p < 0.05 else "")
        out[metric] = [f"{m * scale:.2f}" + ("" if pd.isna(s) else f" ± {s * scale:.2f}") + k
                       for m, s, k in zip(table[f"{metric}_mean"], table[f"{metric}_std"], mark)]
        if f"{metric}_p" in table:
            out[f"{metric} p"] = table[f"{metric}_p"].map(lambda p: "" if pd.isna(p) else f"{p:.3g}")
            out[f"{metric} p (Holm)"] = table[f"{metric}_p_holm"].map(lambda p: "" if pd.isna(p) else f"{p:.3g}")
            out[f"{metric} d"] = table[f"{metric}_d"].map(lambda d: "" if pd.isna(d) else f"{d:+.2f}")
    return out
