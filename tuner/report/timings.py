"""Runtime table (paper Tables 6-8): total training time per variant, its ratio to the baseline, and the
split into loss + Newton step versus network time, means over seeds. The timings are the task's ``time_*``
metrics; a task that reports fewer of them (the contract requires none) gets the columns it has."""

from __future__ import annotations

import pandas as pd

from .stats import by_setting, setting_columns

PHASES = {"loss_newton_s": "time_loss", "network_s": "time_network", "data_s": "time_data", "eval_s": "time_eval"}


def runtime_table(trials: pd.DataFrame) -> pd.DataFrame:
    done = trials[trials["status"] == "FINISHED"]
    if "final_time_total" not in done:
        return pd.DataFrame()
    keys = setting_columns(done)
    rows = []
    for setting, group in by_setting(done, keys):
        base = group.loc[group["param_variant"] == "baseline", "final_time_total"].astype(float).mean()
        for variant, cell in group.groupby("param_variant", sort=False):
            row = dict(setting)
            total = cell["final_time_total"].astype(float).mean()
            row.update(
                {
                    "variant": variant,
                    "trials": len(cell),
                    "total_s": total,
                    "ratio_to_baseline": total / base if base == base and base > 0 else float("nan"),
                }
            )
            row.update(
                {
                    column: cell[f"final_{metric}"].astype(float).mean()
                    for column, metric in PHASES.items()
                    if f"final_{metric}" in cell
                }
            )
            rows.append(row)
    return pd.DataFrame(rows)
