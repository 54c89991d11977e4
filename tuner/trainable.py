"""The Ray Tune function trainable: a task's ``train`` with checkpoints and its MLflow run."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from tasks import TASKS
from tasks.runtime import pick_device

from .tracking import TrialRun

STATE_FILE = "state.pt"


def trial_config(config: dict[str, Any]) -> dict[str, Any]:
    """Grid phases pass each whole trial config under ``trial``; searches pass it flat."""
    return dict(config["trial"]) if "trial" in config else dict(config)


def run_trial(config: dict[str, Any], meta: dict[str, Any]) -> None:
    """Train one trial: reopen its MLflow run, resume from Tune's checkpoint if any, report each evaluation."""
    config = trial_config(config)
    task = TASKS.get(meta["task"])
    context = tune.get_context()
    resolved = task.describe(config)
    device = pick_device(resolved["device"])
    tags = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "ray_node": ray.get_runtime_context().get_node_id(),
            # the config exactly as the grid or the search gave it (params hold it resolved: a searched
            # `tau: null` is logged as the loss's default), so reports map values back to choices exactly
            "trial_config": json.dumps(config, sort_keys=True, default=str)}
    run = TrialRun(meta, context.get_trial_id(), context.get_trial_name(), resolved, tags)

    def report(metrics: dict[str, float], state: dict[str, Any]) -> None:
        run.log(metrics)
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state, Path(folder) / STATE_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    if run.previous_status == "FINISHED":
        # It completed before the driver stopped, but Tune had not recorded that yet: replay, don't retrain.
        run.client.set_tag(run.run_id, "replayed", "true")
        tune.report(run.final_metrics())
        run.finish("FINISHED")
        return
    resume = _load_checkpoint()
    if resume is not None:
        run.client.set_tag(run.run_id, "resumed_from_step", str(resume["step"]))
    try:
        task.train(config, report, resume=resume)
    except Exception as error:
        run.finish("FAILED", f"{type(error).__name__}: {error}")
        raise
    run.finish("FINISHED")


def _load_checkpoint() -> dict[str, Any] | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / STATE_FILE, weights_only=False)
