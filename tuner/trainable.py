"""The Ray Tune function trainable: a task's ``train`` with checkpoints and its MLflow run."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from losses import LOSSES
from tasks import TASKS
from tasks.training import pick_device

from .environment import environment_tags
from .errors import TrackingError
from .plugins import code_hash, code_source, describe_code
from .state import TrialContext
from .telemetry import trial_telemetry
from .tracking import TrialRun

STATE_FILE = "state.pt"
RUN_ID_KEY = "mlflow_run_id"  # in every result Tune gets: the searcher records it with the Optuna trial


class TaskContractError(TypeError):
    """A task broke its contract at run time (a declared metric never reported, a state that does not load)."""


def trial_config(config: dict[str, Any]) -> dict[str, Any]:
    """Grid phases pass each whole trial config under ``trial``; searches pass it flat."""
    return dict(config["trial"]) if "trial" in config else dict(config)


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Train one trial: reopen its MLflow run, resume from Tune's checkpoint if any, report each evaluation."""
    given = trial_config(config)
    for registry, kind in ((TASKS, "tasks"), (LOSSES, "losses")):  # user code, by the driver's import paths
        for name, target in context.plugins.get(kind, {}).items():
            registry.alias(name, target)
    task = TASKS.get(context.task)
    gpu_ids = [str(i) for i in ray.get_gpu_ids()]
    config = placed(given, task, gpu_ids)
    resolved = task.describe(config)
    targets = tuple(target for names in context.plugins.values() for target in names.values())
    device = pick_device(resolved["device"]) if resolved.get("device") else None
    tags = {
        "device": _device_tag(resolved.get("device")),
        "ray_gpu_ids": ",".join(gpu_ids),  # the GPUs Ray gave this trial (empty: none); the report counts sharers
        "ray_node": ray.get_runtime_context().get_node_id(),
        # the config exactly as the grid or the search gave it (params hold it resolved: a searched
        # `tau: null` is logged as the loss's default), so reports map values back to choices exactly
        "trial_config": json.dumps(given, sort_keys=True, default=str),
        "code.task": describe_code(code_source(TASKS, context.task)),
        "code.loss": describe_code(code_source(LOSSES, resolved["loss"])),
        "env.code_hash": code_hash(targets),  # what this worker runs; the driver's is on the parent run
        **environment_tags(device),
    }
    run = TrialRun(
        context,
        tune.get_context().get_trial_id(),
        trial_run_name({"loss": resolved.get("loss"), **config}, context),
        resolved,
        tags,
    )
    contract = FirstReportCheck(context, task)

    def report(metrics: dict[str, float], state: dict[str, Any]) -> None:
        contract.check(metrics, state)
        run.log(metrics)
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state, Path(folder) / STATE_FILE)
            tune.report({**metrics, RUN_ID_KEY: run.run_id}, checkpoint=tune.Checkpoint.from_directory(folder))

    if run.previous_status == "FINISHED":
        # It completed before the driver stopped, but Tune had not recorded that yet: replay, don't retrain.
        run.tag("replayed", "true")
        tune.report({**run.final_metrics(), RUN_ID_KEY: run.run_id})
        run.finish("FINISHED")
        return
    resume = _load_checkpoint()
    if resume is not None:
        run.tag("resumed_from_step", str(resume["step"]) if isinstance(resume, dict) and "step" in resume else "?")
    elif run.previous_status is not None:  # an earlier attempt left no usable checkpoint: trained from the start
        run.tag("resumed_from_step", "0")
    try:
        with trial_telemetry(run, context.telemetry, device, gpu_ids, resumed=run.previous_status is not None):
            task.train(config, report, resume=resume)
    except Exception as error:
        if not isinstance(error, TrackingError):  # with the store gone, the trial's own error is what to show
            with contextlib.suppress(TrackingError):
                run.finish("FAILED", f"{type(error).__name__}: {error}")
        raise
    run.finish("FINISHED")


def placed(config: dict[str, Any], task: Any, gpu_ids: list[str]) -> dict[str, Any]:
    """The config a trial trains with on the devices Ray gave it. Ray leaves ``CUDA_VISIBLE_DEVICES`` alone for a
    trial given no GPU, so such a trial with ``device: auto`` would use the node's first GPU, unaccounted: it runs
    on the CPU instead. A trial given a GPU (or a fraction) sees only that one (Ray sets ``CUDA_VISIBLE_DEVICES``),
    so ``auto`` picks it. An explicit device is the user's choice and stays."""
    device = config.get("device", getattr(task, "DEFAULTS", {}).get("device"))
    if device == "auto" and not gpu_ids:
        return {**config, "device": "cpu"}
    return config


class FirstReportCheck:
    """The task contract's run-time half, checked on a trial's first ``report`` (the static half is checked when
    the task is resolved): ``step`` present and an int, every objective of the study and every ``REPORT_METRICS``
    entry reported, and the ``state`` loadable with ``torch.load(weights_only=True)`` (a state that is not would
    otherwise fail only at the first resume, on another node, hours later)."""

    def __init__(self, context: TrialContext, task: Any):
        self.name, self.checked = context.task, False
        self.required = tuple(dict.fromkeys([*context.objectives, *getattr(task, "REPORT_METRICS", ())]))

    def check(self, metrics: dict[str, float], state: dict[str, Any]) -> None:
        if self.checked:
            return
        problems = (
            []
            if isinstance(metrics.get("step"), int) and not isinstance(metrics.get("step"), bool)
            else [f"metrics['step'] must be an int, got {metrics.get('step')!r}"]
        )
        missing = [m for m in self.required if m not in metrics]
        if missing:
            problems.append(
                f"it reports no {', '.join(missing)} (declared in METRICS/REPORT_METRICS or the study's "
                f"metric; it reported: {', '.join(sorted(metrics))})"
            )
        buffer = io.BytesIO()
        try:
            torch.save(state, buffer)
            buffer.seek(0)
            torch.load(buffer, weights_only=True)
        except Exception as error:  # noqa: BLE001 - pickle and torch raise many kinds
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            problems.append(
                f"its report state does not load with torch.load(weights_only=True) ({first[:300]}); "
                f"keep tensors, numbers, strings, lists, tuples and dicts in it"
            )
        if problems:
            raise TaskContractError(
                f"task {self.name!r} breaks the task contract (tasks/contract.py) at its first "
                f"report: {'; '.join(problems)}"
            )
        self.checked = True


def trial_run_name(config: dict[str, Any], context: TrialContext) -> str:
    """What the trial is, as its MLflow run name: ``neuralsort fisher λ=0.1 seed 0`` (the loss, then the keys
    that tell the study's trials apart, as the grid or search set them, so a baseline shows no λ; ``[search]`` or
    ``[replicate]`` in front outside the grid)."""

    def shown(key):
        value = config.get(key)
        if value is None or key == "loss":
            return None
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        return {"variant": text, "lam": f"λ={text}", "seed": f"seed {text}"}.get(key, f"{key}={text}")

    words = [str(config["loss"])] if config.get("loss") else []
    words += [w for w in map(shown, context.shown) if w]
    return (f"[{context.phase}] " if context.phase != "grid" else "") + " ".join(words)


def _device_tag(device: str | None) -> str:
    """The GPU model or "cpu" for a task with a ``device`` config key (optional in the task contract)."""
    if device is None:
        return "not declared by the task"
    chosen = pick_device(device)
    return torch.cuda.get_device_name(chosen) if chosen.type == "cuda" else "cpu"


def _load_checkpoint() -> dict[str, Any] | None:
    """The trial's state from Tune's checkpoint; None without one, or when the checkpoint was emptied (a state
    saved before Tune dropped it, ``tuner/atomic_files.py``): the trial then retrains from its start."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        path = Path(folder) / STATE_FILE
        return load_state_file(path) if path.exists() else None


def load_state_file(path: Path) -> dict[str, Any]:
    """A trial's saved state. Checkpoints live on storage that every node of a cluster can write, so they are
    loaded with ``weights_only=True``: tensors and plain Python values, never code (the tasks save their RNG
    states in that form). Loaded onto the CPU: a trial saved on a GPU node may resume on a CPU-only one, and the
    task's ``load_state_dict`` calls put model and optimizer state on the trial's own device."""
    return torch.load(path, weights_only=True, map_location="cpu")  # the task moves it to the trial's device
