"""MLflow: one experiment per study, one parent run per study execution, one child run per trial.

The driver creates the store, the experiment and the parent run before any trial starts
(many trials creating a fresh SQLite store at once crash). A trial finds its own run by the
tags ``phase`` + ``trial_id`` and reopens it on retry or ``tuner resume``, so there is exactly
one run per trial; steps already logged are not logged again.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .errors import TrackingError

PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM_CHARS = 6000
BATCH = 100
# MLflow's HTTP client retries a dead server for minutes by default (7 retries, backoff factor 2: a typo in
# the port sat 4 min 16 s). A few seconds tell a dead server from a blip; driver and trials use these unless
# the environment sets its own.
RETRY_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
             "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def tracking_env() -> dict[str, str]:
    """The MLflow client settings for this process and every trial (explicit environment values win)."""
    return {key: os.environ.get(key, default) for key, default in RETRY_ENV.items()}


def probe_tracking(uri: str) -> None:
    """Fail in seconds, naming the URI, when no tracking server answers at an http(s) URI (any HTTP answer,
    even an error status, counts as a server that is there)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5).close()
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise TrackingError(f"no MLflow tracking server answers at {uri} ({reason}); start one with `mlflow server "
                            f"--host HOST --port PORT` or check --mlflow-uri") from None


@contextlib.contextmanager
def tracking_at(uri: str, doing: str):
    """Turn a failing MLflow call into a ``TrackingError`` that names the URI and what was being done."""
    try:
        yield
    except MlflowException as error:
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise TrackingError(f"MLflow tracking at {uri} failed while {doing}: {first}") from error


def describe_code(source: dict[str, str]) -> str:
    """One tag value for where a task's or loss's code came from: origin | import path | distribution | file."""
    return " | ".join(filter(None, [source["origin"], source["target"], source.get("distribution"), source["file"]]))


def sqlite_uri(study_dir: Path) -> str:
    """The embedded default store: SQLite in the study's folder (absolute: Tune changes trial cwds)."""
    return f"sqlite:///{(Path(study_dir) / 'mlflow.db').resolve()}"


EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # MLflow 3's UI: runs and charts, not GenAI


def prepare_experiment(uri: str, name: str, artifact_dir: Path | None) -> str:
    """Create the store (schema) and the study's experiment if needed; return its id. The experiment is marked a
    model-training one, so MLflow 3's dashboard opens it on its runs, not on the GenAI (traces) view."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = Path(artifact_dir).resolve().as_uri() if artifact_dir is not None and uri.startswith("sqlite") else None
        experiment_id = client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
    else:
        experiment_id = experiment.experiment_id
        for key, value in EXPERIMENT_KIND.items():
            client.set_experiment_tag(experiment_id, key, value)
    return experiment_id


def start_parent_run(uri: str, experiment_id: str, run_name: str, params: dict[str, Any], tags: dict[str, str],
                     artifact: str | None = None) -> str:
    """The study execution's parent run, with the study file attached."""
    client = MlflowClient(uri)
    run = client.create_run(experiment_id, run_name=run_name, tags={**tags, "role": "study"})
    _log_params(client, run.info.run_id, params)
    if artifact:
        client.log_artifact(run.info.run_id, artifact)
    return run.info.run_id


def find_trial_run(client: MlflowClient, experiment_id: str, phase: str, trial_id: str):
    runs = client.search_runs([experiment_id], filter_string=f"tags.trial_id = '{trial_id}' and tags.phase = '{phase}'",
                              max_results=2)
    return runs[0] if runs else None


class TrialRun:
    """A trial's child run: params once, metrics per evaluation (de-duplicated by step), final status."""

    def __init__(self, meta: dict[str, Any], trial_id: str, trial_name: str, params: dict[str, Any], tags: dict[str, str]):
        self.uri = meta["mlflow_uri"]
        self.client = MlflowClient(self.uri)
        with tracking_at(self.uri, f"opening the run of trial {trial_id}"):
            self._open(meta, trial_id, trial_name, params, tags)

    def _open(self, meta, trial_id, trial_name, params, tags) -> None:
        existing = find_trial_run(self.client, meta["experiment_id"], meta["phase"], trial_id)
        if existing is None:
            run = self.client.create_run(meta["experiment_id"], run_name=trial_name, tags={
                PARENT_TAG: meta["parent_run_id"], "study": meta["study"], "phase": meta["phase"],
                "trial_id": trial_id, "git_commit": meta["git_commit"], "git_dirty": meta.get("git_dirty", "unknown"),
                "role": "trial", **tags})
            self.run_id = run.info.run_id
            _log_params(self.client, self.run_id, params)
            self.last_step = -1
            self.previous_status = None
        else:
            self.run_id = existing.info.run_id
            self.previous_status = existing.info.status
            self.client.update_run(self.run_id, status="RUNNING")
            # a retry or a resume may run on another node (a lost one's trial continues elsewhere)
            nodes = existing.data.tags.get("ray_nodes", existing.data.tags.get("ray_node", ""))
            moved = {"resumed": "true", **tags}
            if tags.get("ray_node") and tags["ray_node"] not in nodes.split(","):
                moved["ray_nodes"] = ",".join(filter(None, [nodes, tags["ray_node"]]))
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in moved.items()])
            self.last_step = self._last_logged_step()

    def log(self, metrics: dict[str, float]) -> None:
        step = int(metrics["step"])
        if step <= self.last_step:
            return  # already logged before a retry/resume; training is deterministic from the checkpoint
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if k != "step" and isinstance(v, (int, float)) and math.isfinite(v)]
        with tracking_at(self.uri, f"logging step {step}"):
            for i in range(0, len(batch), BATCH):
                self.client.log_batch(self.run_id, metrics=batch[i:i + BATCH])
        self.last_step = step

    def tag(self, key: str, value: str) -> None:
        with tracking_at(self.uri, f"tagging the run {key}"):
            self.client.set_tag(self.run_id, key, value)

    def final_metrics(self) -> dict[str, float]:
        """The last logged value of every metric, with its step (for replaying a finished trial to Tune)."""
        with tracking_at(self.uri, "reading a finished trial's metrics"):
            return {**self.client.get_run(self.run_id).data.metrics, "step": self.last_step}

    def finish(self, status: str, error: str | None = None) -> None:
        with tracking_at(self.uri, f"marking the trial's run {status}"):
            if error:
                self.client.set_tag(self.run_id, "error", error[:5000])
            self.client.set_terminated(self.run_id, status)

    def _last_logged_step(self) -> int:
        history = self.client.get_metric_history(self.run_id, "train_loss")
        return max((m.step for m in history), default=-1)


def finish_trial_run(uri: str, experiment_id: str, phase: str, trial_id: str, status: str, error: str | None = None):
    """Driver-side: give a trial's run its final status (covers trials stopped by ASHA or killed)."""
    client = MlflowClient(uri)
    with tracking_at(uri, f"marking trial {trial_id} {status}"):
        run = find_trial_run(client, experiment_id, phase, trial_id)
        if run is None:
            return
        if error:
            client.set_tag(run.info.run_id, "error", error[:5000])
        if status != "FINISHED" or run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, status)


def close_orphans(uri: str, experiment_id: str, phase: str) -> int:
    """After a phase's Tune run ended, no run of it can still be live: mark RUNNING leftovers KILLED.

    They come from a trial Tune started but had not saved in its experiment state when the driver
    was killed; the restored search suggests a new trial in its place.
    """
    client = MlflowClient(uri)
    runs = client.search_runs([experiment_id], filter_string=f"tags.phase = '{phase}' and attributes.status = 'RUNNING'",
                              max_results=1000)
    for run in runs:
        client.set_tag(run.info.run_id, "orphaned", "trial lost with the killed driver before Tune saved it")
        client.set_terminated(run.info.run_id, "KILLED")
    return len(runs)


def study_runs(uri: str, experiment_id: str) -> list:
    """Every trial run of the experiment (all pages)."""
    client = MlflowClient(uri)
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string="tags.role = 'trial'", max_results=1000,
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    items = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in sorted(params.items())]
    for i in range(0, len(items), BATCH):
        client.log_batch(run_id, params=items[i:i + BATCH])


def set_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    MlflowClient(uri).log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
