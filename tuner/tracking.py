"""MLflow: one experiment per study name, one parent run per study execution, one child run per trial.

The driver creates the store, the experiment and the parent run before any trial starts (many trials creating a
fresh SQLite store at once crash). The parent run's id is the execution's id: every trial's run carries it
(``mlflow.parentRunId``), and every query here filters by it, so executions that share an experiment (one study
name, one tracking server) never see each other's runs. A trial finds its own run by execution + ``phase`` +
``trial_id`` and reopens it on retry or ``tuner resume``, so there is exactly one run per trial; its step ledger
(the tag ``last_logged_step``, written in the same batch as the step's metrics) keeps a step from being logged
twice.
"""

from __future__ import annotations

import contextlib
import math
import os
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .credentials import redact
from .errors import TrackingError
from .state import TrialContext

PARENT_TAG = "mlflow.parentRunId"
LEDGER_TAG = "last_logged_step"
MAX_PARAM_CHARS = 6000
BATCH = 100
# MLflow's HTTP client retries a dead server for minutes by default (7 retries, backoff factor 2: a typo in
# the port sat 4 min 16 s). A few seconds tell a dead server from a blip; driver and trials use these unless
# the environment sets its own.
RETRY_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def tracking_env() -> dict[str, str]:
    """The MLflow client settings for this process and every trial (explicit environment values win)."""
    return {key: os.environ.get(key, default) for key, default in RETRY_ENV.items()}


def probe_tracking(uri: str) -> None:
    """Fail in seconds, naming the URI, when no tracking server answers at an http(s) URI (any HTTP answer,
    even an error status, counts as a server that is there). TLS is checked as MLflow's client checks it: against
    ``MLFLOW_TRACKING_SERVER_CERT_PATH`` when set, not at all with ``MLFLOW_TRACKING_INSECURE_TLS=true``."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5, context=_tls_context()).close()
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        hint = " (HTTPS with your own certificate: MLFLOW_TRACKING_SERVER_CERT_PATH)" if uri.startswith("https") else ""
        raise TrackingError(
            f"no MLflow tracking server answers at {redact(uri)} ({reason}); start one with `mlflow "
            f"server --host HOST --port PORT` or check --mlflow-uri{hint}"
        ) from None


def _tls_context() -> ssl.SSLContext | None:
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return context
    cert = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    return ssl.create_default_context(cafile=cert) if cert else None


@contextlib.contextmanager
def tracking_at(uri: str, doing: str):
    """Turn a failing MLflow call into a ``TrackingError`` that names the URI and what was being done."""
    try:
        yield
    except MlflowException as error:
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise TrackingError(f"MLflow tracking at {redact(uri)} failed while {doing}: {first}") from error


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
        location = (
            Path(artifact_dir).resolve().as_uri() if artifact_dir is not None and uri.startswith("sqlite") else None
        )
        experiment_id = client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
    else:
        experiment_id = experiment.experiment_id
        for key, value in EXPERIMENT_KIND.items():
            client.set_experiment_tag(experiment_id, key, value)
    return experiment_id


def start_parent_run(
    uri: str,
    experiment_id: str,
    run_name: str,
    params: dict[str, Any],
    tags: dict[str, str],
    artifact: str | None = None,
) -> str:
    """The study execution's parent run, with the study file attached."""
    client = MlflowClient(uri)
    run = client.create_run(experiment_id, run_name=run_name, tags={**tags, "role": "study"})
    _log_params(client, run.info.run_id, params)
    if artifact:
        client.log_artifact(run.info.run_id, artifact)
    return run.info.run_id


def find_trial_run(client: MlflowClient, experiment_id: str, execution_id: str, phase: str, trial_id: str):
    """The run of one trial of one execution, or None."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"{_of_execution(execution_id)} and tags.phase = '{phase}' and tags.trial_id = '{trial_id}'",
        max_results=2,
    )
    return runs[0] if runs else None


class TrialRun:
    """A trial's child run: params once, metrics per evaluation (de-duplicated by step), final status."""

    def __init__(
        self, context: TrialContext, trial_id: str, trial_name: str, params: dict[str, Any], tags: dict[str, str]
    ):
        self.uri = context.mlflow_uri
        self.client = MlflowClient(self.uri)
        with tracking_at(self.uri, f"opening the run of trial {trial_id}"):
            self._open(context, trial_id, trial_name, params, tags)

    def _open(self, context: TrialContext, trial_id: str, trial_name: str, params, tags) -> None:
        existing = find_trial_run(self.client, context.experiment_id, context.execution_id, context.phase, trial_id)
        if existing is None:
            run = self.client.create_run(
                context.experiment_id,
                run_name=trial_name,
                tags={
                    PARENT_TAG: context.execution_id,
                    "study": context.study,
                    "phase": context.phase,
                    "trial_id": trial_id,
                    "git_commit": context.git_commit,
                    "git_dirty": context.git_dirty,
                    "role": "trial",
                    **tags,
                },
            )
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
            self.last_step = last_logged_step(self.client, existing)

    def log(self, metrics: dict[str, float]) -> None:
        """Log one evaluation's metrics at its ``step`` (the task contract's own step), and move the step ledger in
        the same batch; a step at or below the ledger was logged before a retry or a resume and is skipped."""
        step = int(metrics["step"])
        if step <= self.last_step:
            return  # already logged before a retry/resume; training is deterministic from the checkpoint
        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), now, step)
            for k, v in metrics.items()
            if k != "step" and isinstance(v, (int, float)) and math.isfinite(v)
        ]
        chunks = [batch[i : i + BATCH] for i in range(0, len(batch), BATCH)] or [[]]
        with tracking_at(self.uri, f"logging step {step}"):
            for i, chunk in enumerate(chunks):
                ledger = [RunTag(LEDGER_TAG, str(step))] if i == len(chunks) - 1 else []
                self.client.log_batch(self.run_id, metrics=chunk, tags=ledger)
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


def last_logged_step(client: MlflowClient, run) -> int:
    """The last step a run logged: its ledger tag, or for runs logged before the ledger existed, the largest step
    of any of its metrics (every metric a task reports is logged at the contract's ``step``)."""
    if LEDGER_TAG in run.data.tags:
        return int(run.data.tags[LEDGER_TAG])
    steps = [m.step for key in run.data.metrics for m in client.get_metric_history(run.info.run_id, key)]
    return max(steps, default=-1)


def finish_trial_run(context: TrialContext, trial_id: str, status: str, error: str | None = None):
    """Driver-side: give a trial's run its final status (covers trials stopped by ASHA or killed)."""
    client = MlflowClient(context.mlflow_uri)
    with tracking_at(context.mlflow_uri, f"marking trial {trial_id} {status}"):
        run = find_trial_run(client, context.experiment_id, context.execution_id, context.phase, trial_id)
        if run is None:
            return
        if error:
            client.set_tag(run.info.run_id, "error", error[:5000])
        if status != "FINISHED" or run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, status)


def close_orphans(uri: str, experiment_id: str, execution_id: str, phase: str) -> int:
    """After a phase's Tune run ended, no run of it in this execution can still be live: mark RUNNING leftovers
    KILLED. They come from a trial Tune started but had not saved in its experiment state when the driver was
    killed; the restored search suggests a new trial in its place. Other executions' runs are never touched."""
    client = MlflowClient(uri)
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"{_of_execution(execution_id)} and tags.phase = '{phase}' and attributes.status = 'RUNNING'",
        max_results=1000,
    )
    for run in runs:
        client.set_tag(run.info.run_id, "orphaned", "trial lost with the killed driver before Tune saved it")
        client.set_terminated(run.info.run_id, "KILLED")
    return len(runs)


def study_runs(uri: str, experiment_id: str, execution_id: str) -> list:
    """Every trial run of one execution (all pages)."""
    return _all_runs(uri, experiment_id, f"{_of_execution(execution_id)} and tags.role = 'trial'")


def executions(uri: str, experiment_id: str) -> list:
    """The parent runs (one per execution) of every execution of the experiment's study name, oldest first."""
    runs = _all_runs(uri, experiment_id, "tags.role = 'study'")
    return sorted(runs, key=lambda run: run.info.start_time or 0)


def _all_runs(uri: str, experiment_id: str, filter_string: str) -> list:
    client = MlflowClient(uri)
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _of_execution(execution_id: str) -> str:
    return f"tags.{PARENT_TAG} = '{execution_id}'"


def _log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    items = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in sorted(params.items())]
    for i in range(0, len(items), BATCH):
        client.log_batch(run_id, params=items[i : i + BATCH])


def set_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    MlflowClient(uri).log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
