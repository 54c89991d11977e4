"""For searched studies: rebuild the Optuna study from the tracked search-phase runs, then use Optuna's own
optimisation-history plot and parameter importances (fANOVA)."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402

from ..study import SearchParam, Study  # noqa: E402


def distribution(param: SearchParam):
    if param.log is not None:
        return FloatDistribution(*param.log, log=True)
    if param.uniform is not None:
        return FloatDistribution(*param.uniform)
    if param.integer is not None:
        return IntDistribution(*param.integer)
    return CategoricalDistribution(list(param.choice))


def rebuild_study(trials: pd.DataFrame, study: Study) -> optuna.Study:
    """An in-memory Optuna study holding the search phase's trials in start order, from MLflow data alone."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rebuilt = optuna.create_study(study_name=study.name, direction="maximize" if study.mode == "max" else "minimize")
    spaces = {name: distribution(p) for name, p in study.search.space.items()}
    for _, row in trials[trials["phase"] == "search"].sort_values("start_time").iterrows():
        params = {name: _cast(dist, row[f"param_{name}"]) for name, dist in spaces.items()}
        value = row.get(f"final_{study.metric}")
        ok = row["status"] == "FINISHED" and value is not None and not pd.isna(value) and math.isfinite(float(value))
        rebuilt.add_trial(optuna.trial.create_trial(
            params=params, distributions=spaces, value=float(value) if ok else None,
            state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
            user_attrs={"trial_id": row["trial_id"], "run_id": row["run_id"]}))
    return rebuilt


def _cast(dist, value):
    """MLflow stores params as text: map back to the distribution's own type."""
    if isinstance(dist, CategoricalDistribution):
        return next(c for c in dist.choices if str(c) == str(value))
    return int(value) if isinstance(dist, IntDistribution) else float(value)


def search_figures(rebuilt: optuna.Study, title: str, out: Path) -> dict:
    """Optimisation history and parameter importances as PNG; returns the best trial and importances."""
    complete = [t for t in rebuilt.trials if t.state == optuna.trial.TrialState.COMPLETE]
    summary = {"trials": len(rebuilt.trials), "complete": len(complete)}
    if not complete:
        return summary
    summary["best"] = {"value": rebuilt.best_value, "params": rebuilt.best_params,
                       "trial_id": rebuilt.best_trial.user_attrs["trial_id"]}
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    ax = optuna.visualization.matplotlib.plot_optimization_history(rebuilt)
    ax.set_title(f"Optuna optimisation history\n{title}", fontsize=10)
    ax.figure.tight_layout()
    ax.figure.savefig(out / "search_history.png", dpi=130)
    plt.close(ax.figure)
    if len(complete) >= 2:
        try:
            summary["importances"] = optuna.importance.get_param_importances(rebuilt)
        except (RuntimeError, ValueError) as error:  # e.g. every trial had the same parameters
            summary["importances_error"] = str(error)
        else:
            ax = optuna.visualization.matplotlib.plot_param_importances(rebuilt)
            ax.set_title(f"parameter importances (fANOVA)\n{title}", fontsize=10)
            ax.figure.tight_layout()
            ax.figure.savefig(out / "search_importances.png", dpi=130)
            plt.close(ax.figure)
    return summary
