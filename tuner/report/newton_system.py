"""Was the Hessian variant's ``M + lam I`` positive definite? Per setting and lam, over the whole run.

The paper's Tikhonov term keeps the Newton system well conditioned only while lam exceeds the most negative
eigenvalue of the (non-convex) loss's mean Hessian; ``losses.system_monitor`` logs both numbers per interval.
"""

from __future__ import annotations

import pandas as pd

from .stats import by_setting, setting_columns

MIN_EIG, SHARE = "newton_min_eigenvalue", "newton_indefinite_share"


def newton_system_table(trials: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """One row per setting and lam of the Hessian variant: seeds, the smallest eigenvalue of ``M + lam I`` seen
    in any logged interval of any seed, and the mean share of steps where it was <= 0 (empty if none ran)."""
    done = trials[(trials["status"] == "FINISHED") & (trials["param_variant"] == "hessian")]
    logged = history[history["metric"].isin([MIN_EIG, SHARE]) & history["run_id"].isin(done["run_id"])]
    if logged.empty:
        return pd.DataFrame()
    per_run = logged.pivot_table(index="run_id", columns="metric", values="value", aggfunc=["min", "mean"])
    runs = done.set_index("run_id").join(
        pd.DataFrame({"min_eig": per_run[("min", MIN_EIG)], "share": per_run[("mean", SHARE)]}), how="inner"
    )
    keys = setting_columns(trials) + ["param_lam"]
    rows = []
    for setting, group in by_setting(runs, keys):
        rows.append(
            {
                **setting,
                "seeds": len(group),
                "min_eigenvalue": group["min_eig"].min(),
                "indefinite_share": group["share"].mean(),
            }
        )
    return pd.DataFrame(rows)
