"""Warcraft 12x12 shortest-path supervision (paper Section 4.2, App. B.3-B.5): predict cell costs from the
map so that the shortest path under them is the true one; supervision is the true path only.

``train(config, report, resume=None)`` trains CombResnet18 with a shortest-path loss family of
``losses.LOSSES`` (bellman_ford, ss_loss, ss_algorithm, po_fy) and a variant; Adam with the benchmark's schedule
(lr x 0.1 after 60 % and 80 % of the epochs); evaluation after every epoch.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Callable

import numpy as np
import torch

from losses.shortest_path.estimated import solve_flat

from .datasets import missing
from .training import (
    BestValidation,
    Setup,
    Stopwatch,
    at_best_valid,
    checks,
    describe_loss,
    evaluation,
    pick_device,
    prepare,
    resolve_config,
    restore_rng_state,
    rng_state,
    seed_everything,
    train_step,
)
from .warcraft_data import ENV_VAR, cached_copy, cached_generated, load_warcraft
from .warcraft_model import CombResnet18, channel_stats

DEFAULTS: dict[str, Any] = {
    "epochs": 50,  # paper: 50 epochs, lr x 0.1 after epochs 30 and 40
    "batch_size": 70,  # Vlastelica et al.
    "lr": 1e-3,  # paper: 1e-3 for stochastic smoothing, 1e-2 for PO / FY
    "seed": 0,
    "loss": "ss_loss",  # its own parameters are config keys too (None: the loss's default): sigma, samples
    # (paper: 3, 10, 30), norm ("l1" / "l2"), and bellman_ford's beta, n_iter, loop
    "variant": "baseline",
    "lam": None,
    "data_dir": None,  # real Warcraft folder; None: $NEWTON_WARCRAFT_DIR, else a generated set
    "train_size": 10_000,  # sizes of the generated set (the real set's by default)
    "eval_size": 1_000,  # val and test size of the generated set
    "data_seed": 0,  # the generated set's seed
    "device": "auto",
}
LOSS_KIND = "shortest_path"
SELECT = "valid_match_path"  # test metrics reported at the epoch of the best of this (the ranking reference's rule)
REPORT_METRICS = ("test_match_path_at_best_valid", "test_match_cost_at_best_valid")
MEASURED = (
    "valid_match_path",
    "valid_match_cost",
    "valid_cost_ratio",
    "test_match_path",
    "test_match_cost",
    "test_cost_ratio",
)
METRICS = (
    "train_loss",
    *MEASURED,
    *at_best_valid(MEASURED),
    "time_total",
    "time_loss",
    "time_network",
    "time_data",
    "time_eval",
)
PERCENT_METRICS = (
    "valid_match_path",
    "valid_match_cost",
    "test_match_path",
    "test_match_cost",
    "best_valid",
    "test_match_path_at_best_valid",
    "test_match_cost_at_best_valid",
)
PAPER_DATA_SOURCES = ("warcraft:",)  # the real Warcraft folder; generated:... is the offline substitute
METRIC_LABELS = {
    "valid_match_path": "perfect paths (valid)",
    "valid_match_cost": "optimal-cost paths (valid)",
    "test_match_path": "perfect paths (test)",
    "test_match_cost": "optimal-cost paths (test)",
    "valid_cost_ratio": "path cost / optimum (valid)",
    "train_loss": "training loss",
    "best_valid": "best perfect paths so far (valid)",
    "test_match_path_at_best_valid": "perfect paths (test, at the best validation)",
    "test_match_cost_at_best_valid": "optimal-cost paths (test, at the best validation)",
    "time_total": "time: training + evaluation (s)",
}

Report = Callable[[dict[str, float], dict[str, Any]], None]


def describe(config: dict[str, Any]) -> dict[str, Any]:
    cfg = describe_loss(resolve_config(config, DEFAULTS, "shortest_path"))
    folder = cfg["data_dir"] or _env_dir()
    cfg["data_source"] = (
        f"warcraft:{folder}"
        if folder
        else f"generated:{cfg['train_size']}/{cfg['eval_size']}/{cfg['eval_size']}:seed{cfg['data_seed']}"
    )
    return cfg


def missing_paper_data(config: dict[str, Any]) -> str | None:
    """None when this config reads the real Warcraft folder (``data_dir``, else $NEWTON_WARCRAFT_DIR); else why not."""
    return missing("warcraft", config.get("data_dir"))


def total_steps(config: dict[str, Any]) -> int:
    """Training steps of a run (the ``step`` it reports last): epochs x batches per epoch."""
    cfg = resolve_config(config, DEFAULTS, "shortest_path")
    folder = cfg["data_dir"] or _env_dir()
    size = len(load_warcraft(folder)["train"]["maps"]) if folder else cfg["train_size"]
    return cfg["epochs"] * math.ceil(size / cfg["batch_size"])


def setup(config: dict[str, Any]) -> Setup:
    """The run's resolved config, loss and objective; every error ``train`` would raise for the config."""
    return prepare(config, DEFAULTS, LOSS_KIND, "shortest_path", ("epochs", "batch_size", "train_size", "eval_size"))


def check(config: dict[str, Any]) -> None:
    setup(config)


def train(config: dict[str, Any], report: Report, resume: dict[str, Any] | None = None) -> dict[str, float]:
    """Train and evaluate after every epoch; ``report(metrics, state)`` as in the ranking task."""
    run = setup(config)
    cfg = run.cfg
    device = pick_device(cfg["device"])
    seed_everything(cfg["seed"])
    data = _load(cfg)
    train_maps = _shared(data["train"]["maps"])
    train_paths = torch.from_numpy(np.asarray(data["train"]["paths"], dtype=np.float32)).flatten(1)
    model = CombResnet18(*channel_stats(train_maps)).to(device)
    # resident on the trial's device (the full set: 276 MB of maps), so a step copies nothing from the host; on the
    # CPU they stay the node's one memory-mapped copy
    train_maps, train_paths = train_maps.to(device), train_paths.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    milestones = [round(0.6 * cfg["epochs"]), round(0.8 * cfg["epochs"])]
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    generator = torch.Generator().manual_seed(cfg["seed"])
    epoch, step, timers = 0, 0, None
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        schedule.load_state_dict(resume["schedule"])
        restore_rng_state(resume["rng"], generator)
        epoch, step, timers = resume["epoch"], resume["step"], resume["timers"]
    best = BestValidation(SELECT, resume.get("best_valid") if resume is not None else None)
    clock = Stopwatch(device, timers)
    metrics: dict[str, float] = {}
    with checks():  # finite checks on the device, raised at the next evaluation
        while epoch < cfg["epochs"]:
            loss_sum, batches = 0.0, 0
            order = torch.randperm(len(train_maps), generator=generator).to(
                device
            )  # drawn on the host: same on any device
            for idx in order.split(cfg["batch_size"]):
                batch = lambda: (train_maps[idx], train_paths[idx])  # noqa: E731
                value = train_step(
                    run, clock, optimizer, batch, lambda maps: model(maps).flatten(1), step + 1, torch.float64
                )
                step, loss_sum, batches = step + 1, loss_sum + value, batches + 1
            schedule.step()
            epoch += 1
            metrics = evaluation(
                run, clock, step, loss_sum / batches, lambda: _evaluate(model, data, device), best, epoch=epoch
            )
            report(
                metrics,
                {
                    "epoch": epoch,
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "rng": rng_state(generator),
                    "timers": dict(clock.totals),
                    "best_valid": best.state(),
                },
            )
    return metrics


def path_metrics(pred_costs: torch.Tensor, true_paths: torch.Tensor, true_costs: torch.Tensor) -> dict[str, float]:
    """Perfect matches by path equality (sum |true - pred| < 0.5) and by cost equality (the predicted path's
    cost under the true costs equals the optimum within 1e-3, as weights are float16), and the mean ratio of
    the predicted path's true cost to the optimum."""
    pred = solve_flat(pred_costs)
    weights = true_costs.flatten(1).double()
    pred_cost = (pred.double() * weights).sum(1)
    best = (true_paths.flatten(1).double() * weights).sum(1)
    return {
        "match_path": ((pred - true_paths.flatten(1)).abs().sum(1) < 0.5).float().mean().item(),
        "match_cost": ((pred_cost - best).abs() <= 1e-3 * best.clamp_min(1)).float().mean().item(),
        "cost_ratio": (pred_cost / best).mean().item(),
    }


@torch.no_grad()
def _evaluate(model, data, device) -> dict[str, float]:
    model.eval()
    out = {}
    for split, name in (("val", "valid"), ("test", "test")):
        maps = _shared(data[split]["maps"])
        pred = torch.cat([model(chunk.to(device)).flatten(1).cpu() for chunk in maps.split(200)])
        paths = torch.from_numpy(np.asarray(data[split]["paths"], dtype=np.float32))
        weights = torch.from_numpy(np.asarray(data[split]["weights"], dtype=np.float32))
        out.update({f"{name}_{k}": v for k, v in path_metrics(pred, paths, weights).items()})
    model.train()
    return out


def _load(cfg):
    """The splits, memory-mapped from the node's data cache: generated, or copied from the real folder, once."""
    folder = cfg["data_dir"] or _env_dir()
    if folder is None:
        folder = cached_generated(
            {"train": cfg["train_size"], "val": cfg["eval_size"], "test": cfg["eval_size"]}, seed=cfg["data_seed"]
        )
    else:
        folder = cached_copy(folder)
    return load_warcraft(folder)


def _shared(array: np.ndarray) -> torch.Tensor:
    """A tensor over the memory-mapped array, without a copy. Read-only pages: nothing writes to the data."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
        return torch.from_numpy(array)


def _env_dir():
    return os.environ.get(ENV_VAR) or None
