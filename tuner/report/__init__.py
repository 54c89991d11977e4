"""``tuner report``: a study's tables and figures, built from its MLflow store alone and attached to the
study's parent run (artifact folder ``report/``), so any machine that can read the store can rebuild it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from tasks.contract import labels, lower_is_better, percent_metrics

from ..credentials import redact
from ..errors import ReportError
from ..export import study_tables
from ..state import load_state
from ..study_file import load_task
from ..tracking import executions, tracking_at
from .consistency import mixed_environments, shared_gpu_timings
from .data_sources import table_data
from .decisions import explained, metric_modes
from .newton_system import newton_system_table
from .paired_seeds import paired_report
from .pareto_front import FIGURE as PARETO_FIGURE
from .pareto_front import front_table, pareto_figure, pareto_points
from .plots import curves, lambda_ablation
from .rounds import rounds_markdown, rounds_table
from .search import FIGURES as SEARCH_FIGURES
from .search import rebuild_study, search_figures
from .selection import selection_markdown, selection_table
from .stats import formatted, results_table
from .timings import runtime_table


def build_report(folder: Path, out: Path | None = None) -> Path:
    """Write the report into ``out`` (default ``STUDY/report``) and attach it to the parent run."""
    state = load_state(folder)
    study = state.study
    trials, history = study_tables(state.mlflow_uri, state.experiment_id, state.execution_id)
    if trials.empty or not (trials["status"] == "FINISHED").any():
        raise ReportError(f"study {study.name!r} has no finished trial to report on yet")
    with tracking_at(state.mlflow_uri, "listing the study's executions"):
        others = [
            run for run in executions(state.mlflow_uri, state.experiment_id) if run.info.run_id != state.execution_id
        ]
    out = Path(out) if out is not None else folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    task = load_task(study.task, study.name)
    metric, mode = study.primary  # the first objective: Tune's metric, the curves' y axis
    metrics, percent, label = list(task.REPORT_METRICS), percent_metrics(task), labels(task).get(metric)
    title = f"study {study.name}: {budget(trials)}"
    compared = trials[trials["phase"] != "search"] if (trials["phase"] != "search").any() else trials
    selection = None
    if study.select is not None:  # the results are the replication; the selection trials make their own table
        replicated = trials["phase"].fillna("").str.startswith("replicate")  # and an adaptive study's rounds
        compared = trials[replicated] if replicated.any() else trials
        selection = selection_table(state)
        selection.to_csv(out / "selection.csv", index=False)
    rounds = rounds_table(state) if state.looks else None
    if rounds is not None:
        rounds.to_csv(out / "rounds.csv", index=False)

    warnings = mixed_environments(compared, state.code_hash)
    warnings += shared_gpu_timings(trials, [m for m in study.metrics if m.startswith("time_")])
    modes = metric_modes(metrics, dict(zip(study.metrics, study.modes)), lower_is_better(task))
    table = results_table(compared, metrics, modes, study.report.margin)
    table.to_csv(out / "results.csv", index=False)
    pretty = formatted(table, metrics, percent)
    runtime = runtime_table(compared)
    runtime.to_csv(out / "runtime.csv", index=False)
    paired = paired_report(compared, task, dict(zip(study.metrics, study.modes)))  # a task's PAPER_PER_SEED
    if paired is not None:
        paired.write(out)
    system = newton_system_table(compared, history)
    data = table_data(compared, trials, task, study.multi_objective)  # which data each table rests on
    if not system.empty:
        system.to_csv(out / "newton_system.csv", index=False)
    pretty.to_latex(
        out / "results.tex",
        index=False,
        escape=True,
        caption=f"{title}: mean ± std over seeds{_scaled(metrics, percent)}; "
        f"{protocol(metrics, task)} * Holm-adjusted p < 0.05 "
        f"against the baseline (family: all tests of that metric in this table).{data.caption}",
    )
    figures = []
    if lambda_ablation(compared, metric, title, out / "lambda_ablation.png", label):
        figures.append("lambda_ablation.png")
    shown, shown_label = curve_metric(metric, history, task)  # Figure 3: the test metric where it is logged
    for x, name in (("step", "curves_steps.png"), ("time_total", "curves_time.png")):
        if x == "step" or (history["metric"] == x).any():  # time_total: a task may not report it
            curves(compared, history, shown, mode, x, title, out / name, shown_label, chosen_by=metric)
            figures.append(name)
    search = None
    if study.search is not None and (trials["phase"] == "search").any():
        search = search_figures(rebuild_study(trials, study), metric, title, out)
        figures += [f for f in SEARCH_FIGURES if (out / f).exists()]
        (out / "search.json").write_text(json.dumps(search, indent=2, default=str))
    front = None
    if study.multi_objective:
        points = pareto_points(trials, study)
        if not points.empty:
            front = front_table(points, study)
            front.to_csv(out / "pareto_front.csv", index=False)
            if len(study.metrics) == 2:
                pareto_figure(points, study, title, out / PARETO_FIGURE, labels(task), percent_metrics(task))
                figures.insert(0, PARETO_FIGURE)
    (out / "report.md").write_text(
        _markdown(
            study,
            title,
            pretty,
            runtime,
            system,
            figures,
            search,
            state,
            _scaled(metrics, percent),
            warnings,
            front,
            others,
            data,
            task,
        )
        + (paired.markdown(markdown_table) if paired is not None else "")
        + ("\n".join(selection_markdown(state, selection, markdown_table)) if selection is not None else "")
        + ("\n".join(rounds_markdown(state, rounds, markdown_table)) if rounds is not None else "")
    )
    for line in warnings:
        print(f"tuner: warning: {line}", flush=True)
    with tracking_at(state.mlflow_uri, "attaching the report to the study's parent run"):
        MlflowClient(state.mlflow_uri).log_artifacts(state.parent_run_id, str(out), artifact_path="report")
    return out


def curve_metric(metric: str, history: pd.DataFrame, task) -> tuple[str, str | None]:
    """What the curves show for the study's first objective: its test counterpart when the runs log one (the
    paper's Figure 3 plots test accuracy over steps): ``valid_x`` -> ``test_x``; ``best_valid`` (a running best)
    -> the test metric of the task's first reported ``*_at_best_valid``; otherwise the metric itself."""
    logged = set(history["metric"])
    candidates = [metric.replace("valid_", "test_", 1)] if metric.startswith("valid_") else []
    if metric == "best_valid":
        candidates += [m.removesuffix("_at_best_valid") for m in task.REPORT_METRICS if m.endswith("_at_best_valid")]
    shown = next((m for m in candidates if m in logged), metric)
    return shown, labels(task).get(shown)


def protocol(metrics: list[str], task) -> str:
    """Which evaluation protocol the results table's metrics follow, in one sentence."""
    if metrics and all(m.endswith("_at_best_valid") for m in metrics):
        select = getattr(task, "SELECT", "the validation metric")
        return (
            f"Test metrics at the evaluation with the best validation {select} of each run (the authors' "
            f"protocol, diffsort's experiments/main.py)."
        )
    return "Final values: the metrics of each run's last evaluation."


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    cell = lambda v: "" if pd.api.types.is_scalar(v) and pd.isna(v) else str(v).replace("|", "\\|")  # None, NaN, <NA>
    rows = [[str(c) for c in frame.columns]] + [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    return "\n".join(
        ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        + ["| " + " | ".join(r) + " |" for r in rows[1:]]
    )


def budget(trials: pd.DataFrame) -> str:
    def one(column, fmt):
        values = trials.get(column, pd.Series(dtype=object)).dropna().unique()
        return fmt.format(values[0]) if len(values) == 1 else None

    seeds = trials["param_seed"].nunique() if "param_seed" in trials else 0
    parts = [
        one("param_steps", "{} steps"),
        one("param_batch_size", "batch {}"),
        f"{seeds} seed(s)",
        one("param_data_source", "data {}"),
    ]
    return ", ".join(p for p in parts if p)


def _scaled(metrics: list[str], percent: tuple[str, ...]) -> str:
    shown = [m for m in metrics if m in percent]
    return "" if not shown else (", ×100" if len(shown) == len(metrics) else f"; {', '.join(shown)} ×100")


def _markdown(
    study, title, pretty, runtime, system, figures, search, state, scaled, warnings, front, others, data, task
) -> str:
    lines = [f"# Report: {title}", "", study.description, ""]
    lines += [
        f"Execution: parent run {state.execution_id} (study folder `{state.study.name}`; every table and "
        f"figure reads this execution's trials only)."
    ]
    if others:
        listed = ", ".join(f"{run.info.run_id} ({run.data.tags.get('storage', '?')})" for run in others)
        lines += [
            f"The MLflow experiment `{study.name}` also holds {len(others)} other execution(s) of this study "
            f"name, not read here: {listed}."
        ]
    lines += data.header + [""]
    if warnings:
        lines += ["**Warning: the compared trials did not all run alike.**", ""] + [f"- {w}" for w in warnings] + [""]
    objectives = ", ".join(f"`{m}` ({mode})" for m, mode in zip(study.metrics, study.modes))
    lines += [
        f"{'Objectives' if study.multi_objective else 'Metric optimised'}: {objectives}. MLflow: "
        f"`{redact(state.mlflow_uri)}`, experiment {state.experiment_id}, parent run {state.parent_run_id}.",
        "",
        f"## Results (mean ± std over seeds{scaled})",
        "",
        protocol(list(task.REPORT_METRICS), task),
        "",
        "Each Newton variant against the baseline of the same setting: two-sided paired t-test over seeds "
        "(Welch's t-test when seeds differ); raw p, Holm-adjusted p over all tests of that metric in this "
        f"table (the family-wise error rate), Cohen's d; `*` marks Holm-adjusted p < 0.05.{data.caption}",
        "",
        explained(study.report.margin, "the variant", "its baseline"),
        "",
        markdown_table(pretty),
        "",
        "## Runtime (seconds, mean over seeds)",
        "",
        *([data.caption.strip(), ""] if data.caption else []),
        markdown_table(runtime.round(3)),
        "",
    ]
    if not system.empty:
        lines += [
            "## Newton system of the Hessian variant",
            "",
            "Smallest eigenvalue of M + λI in any logged interval, and the mean share of steps where it was "
            "≤ 0 (the loss's mean Hessian M outgrew λ; the Newton target then goes uphill along it)."
            f"{data.caption}",
            "",
            markdown_table(system.round(4)),
            "",
        ]
    if front is not None:
        lines += [
            "## Pareto front",
            "",
            f"Settings no other finished {'searched ' if study.search else ''}trial beats in every objective "
            f"({', '.join(f'{m} {mode}' for m, mode in zip(study.metrics, study.modes))}); one row per trial."
            f"{data.front_caption}",
            "",
            markdown_table(front.round(4)),
            "",
        ]
    lines += ["## Figures", ""]
    lines += [f"![{f}]({f})" for f in figures]
    if search:
        lines += ["", "## Search", "", f"{search['complete']} of {search['trials']} searched trials completed."]
        if "best" in search:
            lines += [
                f"Best: `{study.primary.metric}` = {search['best']['value']:.4g} with {search['best']['params']} "
                f"(trial {search['best']['trial_id']})."
            ]
        if "importances" in search:
            lines += [
                "Parameter importances (fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in search["importances"].items())
            ]
    return "\n".join(lines) + "\n"
