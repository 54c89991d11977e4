"""Parquet export of a study from its MLflow store: one row per trial, and the full metric history.

Written with pyarrow, readable by pandas, polars or DuckDB without this package.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from mlflow.tracking import MlflowClient

from .state import load_state
from .tracking import study_runs, tracking_at

SYSTEM = "system/"  # MLflow's system metrics
HISTORY_FETCHERS = 8  # concurrent history requests to a tracking server (benchmarks/export_history.py: 7x)
TRIAL_COLUMNS = (
    "study",
    "execution_id",
    "phase",
    "trial_id",
    "run_id",
    "run_name",
    "status",
    "error",
    "device",
    "git_commit",
    "start_time",
    "end_time",
    "trial_config",
)


def export_study(folder: Path, out: Path | None = None) -> tuple[Path, Path]:
    """Write ``trials.parquet`` and ``history.parquet`` of the study's execution into ``out`` (default
    ``STUDY/export``)."""
    state = load_state(folder)
    trials, history = study_tables(state.mlflow_uri, state.experiment_id, state.execution_id, system=True)
    out = Path(out) if out is not None else folder / "export"
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "trials.parquet", out / "history.parquet"
    for table, path in zip((trials, history), paths):
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), tmp)
        tmp.replace(path)
    return paths


def study_tables(
    uri: str, experiment_id: str, execution_id: str, system: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, history) of one execution as DataFrames, straight from the tracking store. The history holds the
    ``system/...`` metrics (tuner/telemetry.py) only with ``system``: nothing in the report reads them, and they
    would double its requests (one per run x metric); their last values are in ``trials`` either way."""
    with tracking_at(uri, "reading the study's runs"):
        return _tables(uri, experiment_id, execution_id, system)


def _tables(uri: str, experiment_id: str, execution_id: str, system: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    client = MlflowClient(uri)
    runs = study_runs(uri, experiment_id, execution_id)
    rows = [_trial_row(run) for run in runs]
    requests = [
        (row, run.info.run_id, key)
        for row, run in zip(rows, runs)
        for key in run.data.metrics
        if system or not key.startswith(SYSTEM)
    ]
    # MLflow has no bulk history call: one request per run x metric. Against a server they mostly wait on the
    # network and are overlapped; a local SQLite file is faster read by one thread (measured 0.4x with 8).
    fetchers = HISTORY_FETCHERS if uri.startswith(("http://", "https://")) else 1
    with ThreadPoolExecutor(fetchers) as pool:
        histories = pool.map(lambda request: client.get_metric_history(request[1], request[2]), requests)
        events = [
            {
                "trial_id": row["trial_id"],
                "phase": row["phase"],
                "run_id": run_id,
                "metric": key,
                "step": m.step,
                "value": m.value,
                "timestamp": _time(m.timestamp),
            }
            for (row, run_id, key), history in zip(requests, histories)
            for m in history
        ]
    trials = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS) + sorted({k for r in rows for k in r} - set(TRIAL_COLUMNS)))
    for column in [c for c in trials.columns if c.startswith("param_")]:
        trials[column] = _typed(trials[column])
    history = pd.DataFrame(events, columns=["trial_id", "phase", "run_id", "metric", "step", "value", "timestamp"])
    return trials.sort_values(["phase", "trial_id"], ignore_index=True), history.sort_values(
        ["phase", "trial_id", "metric", "step"], ignore_index=True
    )


def _trial_row(run) -> dict:
    tags, info = run.data.tags, run.info
    row = {
        "study": tags.get("study"),
        "execution_id": tags.get("mlflow.parentRunId"),
        "phase": tags.get("phase"),
        "trial_id": tags.get("trial_id"),
        "run_id": info.run_id,
        "run_name": info.run_name,
        "status": info.status,
        "error": tags.get("error"),
        "device": tags.get("device"),
        "ray_gpu_ids": tags.get("ray_gpu_ids"),
        "git_commit": tags.get("git_commit"),
        "trial_config": tags.get("trial_config"),
        "start_time": _time(info.start_time),
        "end_time": _time(info.end_time),
    }
    row.update({k.replace(".", "_"): v for k, v in tags.items() if k.startswith("env.")})
    row.update({f"param_{k}": v for k, v in run.data.params.items()})
    row.update({f"final_{k}": v for k, v in run.data.metrics.items()})
    return row


def _typed(column: pd.Series) -> pd.Series:
    """MLflow params are strings: integers, numbers and booleans get their own column types ("None" is null)."""
    values = column.where(~column.isin(["None", "nan"]), None)
    present = values.dropna().astype(str)
    if present.empty:
        return values.astype("string")
    if present.str.fullmatch(r"-?\d+").all():
        return pd.to_numeric(values).astype("Int64")
    if pd.to_numeric(present, errors="coerce").notna().all():
        return pd.to_numeric(values).astype("Float64")
    if present.isin(["True", "False"]).all():
        return values.map({"True": True, "False": False}).astype("boolean")
    return values.astype("string")


def _time(ms):
    return pd.Timestamp(ms, unit="ms", tz="UTC") if ms else None
