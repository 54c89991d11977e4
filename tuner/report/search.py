"""For searched studies: rebuild the Optuna study from the tracked search-phase runs, then use Optuna's own
optimisation-history plot and parameter importances (fANOVA)."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402

from ..errors import ReportError  # noqa: E402
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
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return _rebuild(trials, study)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _rebuild(trials: pd.DataFrame, study: Study) -> optuna.Study:
    rebuilt = optuna.create_study(study_name=study.name, direction="maximize" if study.mode == "max" else "minimize")
    spaces = {name: distribution(p) for name, p in study.search.space.items()}
    for _, row in trials[trials["phase"] == "search"].sort_values("start_time").iterrows():
        given = json.loads(row["trial_config"]) if isinstance(row.get("trial_config"), str) else {}
        params = {name: searched_value(name, dist, given[name] if name in given else row[f"param_{name}"],
                                       row["trial_id"]) for name, dist in spaces.items()}
        value = row.get(f"final_{study.metric}")
        ok = row["status"] == "FINISHED" and value is not None and not pd.isna(value) and math.isfinite(float(value))
        rebuilt.add_trial(optuna.trial.create_trial(
            params=params, distributions=spaces, value=float(value) if ok else None,
            state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
            user_attrs={"trial_id": row["trial_id"], "run_id": row["run_id"]}))
    return rebuilt


def searched_value(name: str, dist, value, trial_id: str):
    """A trial's value of a searched parameter in the distribution's own type. ``value`` is the value the search
    gave (from the trial's ``trial_config`` tag), or, for runs without that tag, the logged param (text).
    Choices are matched by kind: None to None, booleans to booleans, numbers numerically (``1`` is ``1.0``),
    text exactly; a value that matches no choice is a ``ReportError`` naming the parameter and the trial."""
    if not isinstance(dist, CategoricalDistribution):
        return int(float(value)) if isinstance(dist, IntDistribution) else float(value)
    for choice in dist.choices:
        if _same(choice, value):
            return choice
    raise ReportError(f"search parameter {name!r}: trial {trial_id} has value {value!r}, which matches none of the "
                      f"study's choices {list(dist.choices)} (was the study file changed after the run?)")


def _same(choice, value) -> bool:
    if isinstance(value, str) and not isinstance(choice, str):  # a logged param: text
        value = {"None": None, "True": True, "False": False}.get(value, value)
        if isinstance(value, str) and not isinstance(choice, bool):
            try:
                value = float(value)
            except ValueError:
                return False
    if choice is None or value is None:
        return choice is None and value is None
    if isinstance(choice, bool) or isinstance(value, bool):
        return isinstance(choice, bool) and isinstance(value, bool) and choice == value
    if isinstance(choice, (int, float)) and isinstance(value, (int, float)):
        return math.isclose(choice, value, rel_tol=1e-12, abs_tol=0.0)
    return choice == value


def search_figures(rebuilt: optuna.Study, title: str, out: Path) -> dict:
    """Optimisation history and parameter importances as PNG; returns the best trial and importances."""
    complete = [t for t in rebuilt.trials if t.state == optuna.trial.TrialState.COMPLETE]
    summary = {"trials": len(rebuilt.trials), "complete": len(complete)}
    if not complete:
        return summary
    summary["best"] = {"value": rebuilt.best_value, "params": rebuilt.best_params,
                       "trial_id": rebuilt.best_trial.user_attrs["trial_id"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # Optuna's matplotlib plots
        _plots(rebuilt, complete, title, out, summary)
    return summary


def _plots(rebuilt: optuna.Study, complete: list, title: str, out: Path, summary: dict) -> None:
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
