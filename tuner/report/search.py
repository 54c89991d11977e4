"""For searched studies: rebuild the Optuna study from the tracked search-phase runs, then use Optuna's own
plots: optimisation history, parameter importances (fANOVA), parallel coordinates, and a contour and a slice
plot of the two most important parameters. With several objectives these plots show the first one."""

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
from optuna.distributions import CategoricalDistribution, IntDistribution  # noqa: E402

from ..errors import ReportError  # noqa: E402
from ..search_space import optuna_distribution  # noqa: E402
from ..study import Study  # noqa: E402


def rebuild_study(trials: pd.DataFrame, study: Study) -> optuna.Study:
    """An in-memory Optuna study holding the search phase's trials in start order, from MLflow data alone."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return _rebuild(trials, study)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _rebuild(trials: pd.DataFrame, study: Study) -> optuna.Study:
    rebuilt = optuna.create_study(study_name=study.name, directions=study.directions)
    spaces = {name: optuna_distribution(p) for name, p in study.search.space.items()}
    for _, row in trials[trials["phase"] == "search"].sort_values("start_time").iterrows():
        given = json.loads(row["trial_config"]) if isinstance(row.get("trial_config"), str) else {}
        params = {
            name: searched_value(name, dist, given[name] if name in given else row[f"param_{name}"], row["trial_id"])
            for name, dist in spaces.items()
        }
        values = [row.get(f"final_{metric}") for metric in study.metrics]
        ok = row["status"] == "FINISHED" and all(
            v is not None and not pd.isna(v) and math.isfinite(float(v)) for v in values
        )
        rebuilt.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=spaces,
                values=[float(v) for v in values] if ok else None,
                state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
                user_attrs={"trial_id": row["trial_id"], "run_id": row["run_id"]},
            )
        )
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
    raise ReportError(
        f"search parameter {name!r}: trial {trial_id} has value {value!r}, which matches none of the "
        f"study's choices {list(dist.choices)} (was the study file changed after the run?)"
    )


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


FIGURES = (
    "search_history.png",
    "search_importances.png",
    "search_parallel.png",
    "search_contour.png",
    "search_slice.png",
)


def search_figures(rebuilt: optuna.Study, metric: str, title: str, out: Path) -> dict:
    """Optuna's plots of ``metric`` (the first objective) as PNG; returns the best trial (single objective) and
    the importances."""
    complete = [t for t in rebuilt.trials if t.state == optuna.trial.TrialState.COMPLETE]
    summary = {"trials": len(rebuilt.trials), "complete": len(complete)}
    if not complete:
        return summary
    if len(rebuilt.directions) == 1:
        summary["best"] = {
            "value": rebuilt.best_value,
            "params": rebuilt.best_params,
            "trial_id": rebuilt.best_trial.user_attrs["trial_id"],
        }
    target = {"target": lambda t: t.values[0], "target_name": metric}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # Optuna's matplotlib plots
        warnings.filterwarnings("ignore", "This figure includes Axes that are not compatible with tight_layout")
        with matplotlib.rc_context():  # Optuna's plots switch matplotlib to its own style: not for the report's others
            _plots(rebuilt, complete, target, title, out, summary)
    return summary


def _plots(rebuilt: optuna.Study, complete: list, target: dict, title: str, out: Path, summary: dict) -> None:
    plots = optuna.visualization.matplotlib
    _save(
        plots.plot_optimization_history(rebuilt, **target),
        f"Optuna optimisation history\n{title}",
        out / "search_history.png",
    )
    if len(complete) < 2:
        return
    # fANOVA, named: Optuna 5's default is PED-ANOVA, which ranks parameters by how they reach *low* target values
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        importances = optuna.importance.get_param_importances(rebuilt, evaluator=evaluator, target=target["target"])
    except (RuntimeError, ValueError) as error:  # e.g. every trial had the same parameters
        summary["importances_error"] = str(error)
        return
    summary["importances"] = importances
    top = list(importances)[:2]
    _save(
        plots.plot_param_importances(rebuilt, evaluator=evaluator, **target),
        f"parameter importances (fANOVA)\n{title}",
        out / "search_importances.png",
    )
    _save(
        plots.plot_parallel_coordinate(rebuilt, **target), f"parallel coordinates\n{title}", out / "search_parallel.png"
    )
    if len(top) == 2:
        _save(
            plots.plot_contour(rebuilt, params=top, **target),
            f"contour: {top[0]} x {top[1]}\n{title}",
            out / "search_contour.png",
        )
    _save(
        plots.plot_slice(rebuilt, params=top, **target), f"slice: {', '.join(top)}\n{title}", out / "search_slice.png"
    )


def _save(ax, title: str, path: Path) -> None:
    """Save an Optuna matplotlib plot (an Axes, or an array of them for the slice and contour plots)."""
    figure = ax.flat[0].figure if hasattr(ax, "flat") else ax.figure
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)
