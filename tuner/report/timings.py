"""Runtime table (paper Tables 6-8): total training time per variant, its ratio to the baseline, and the
split into loss + Newton step versus network time, means over seeds."""
from __future__ import annotations

import pandas as pd

from .stats import by_setting, setting_columns


def runtime_table(trials: pd.DataFrame) -> pd.DataFrame:
    done = trials[trials["status"] == "FINISHED"]
    keys = setting_columns(done)
    rows = []
    for setting, group in by_setting(done, keys):
        base = group.loc[group["param_variant"] == "baseline", "final_time_total"].astype(float).mean()
        for variant, cell in group.groupby("param_variant", sort=False):
            row = dict(setting)
            total = cell["final_time_total"].astype(float).mean()
            row.update({"variant": variant, "trials": len(cell), "total_s": total,
                        "ratio_to_baseline": total / base if base == base and base > 0 else float("nan"),
                        "loss_newton_s": cell["final_time_loss"].astype(float).mean(),
                        "network_s": cell["final_time_network"].astype(float).mean(),
                        "data_s": cell["final_time_data"].astype(float).mean(),
                        "eval_s": cell["final_time_eval"].astype(float).mean()})
            rows.append(row)
    return pd.DataFrame(rows)
