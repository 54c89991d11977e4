"""Two identical short runs of the real tasks, compared metric by metric, on several losses and variants.

On CUDA the tasks turn on PyTorch's deterministic algorithms (``tasks.training.make_cuda_deterministic``); the
cost of that is measured on one ranking run against PyTorch's defaults (``NEWTON_CUDA_DETERMINISTIC=0``).
"""

from __future__ import annotations

import math
import os
import time

import torch

from tasks import ranking, shortest_path
from tasks.training import make_cuda_deterministic

from .budget import Section, guarded, raise_row_errors

RANKING_CASES = (("neuralsort", "hessian", 0.01), ("softsort", "fisher", 10), ("logistic_dsn", "baseline", None))
SHORTEST_PATH_CASES = (("ss_loss", "fisher", 0.1, {"samples": 3}), ("bellman_ford", "fisher", 1000, {}))


def cases(size: dict, device: torch.device) -> list[tuple]:
    """(task module, config) of each repeated run: λ from the paper's Tables 4, 5 and 2."""
    common = {"seed": 3, "device": str(device)}
    out = [
        (ranking, {**common, "loss": loss, "variant": variant, "lam": lam, "n": 5, **size["det_ranking"]})
        for loss, variant, lam in RANKING_CASES
    ]
    out += [
        (shortest_path, {**common, "loss": loss, "variant": variant, "lam": lam, **params, **size["det_shortest_path"]})
        for loss, variant, lam, params in SHORTEST_PATH_CASES
    ]
    return out


def run(task, config: dict) -> tuple[float, dict]:
    """Seconds of a whole ``train`` and its last metrics."""
    reported = []
    start = time.perf_counter()
    task.train(config, lambda metrics, state: reported.append(metrics))
    return time.perf_counter() - start, reported[-1]


def same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def determinism(section: Section, size: dict, device: torch.device) -> None:
    """Each case twice; then, on CUDA, the cost of the deterministic algorithms."""
    rows = []
    figures = section.figures = {"runs": rows, "cost": None, "cost_reason": None}
    for task, config in cases(size, device):
        name = {"task": task.__name__.rsplit(".", 1)[-1], **{k: config[k] for k in ("loss", "variant", "lam")}}
        guarded(rows, name, lambda: {**name, **repeat(task, config)})
    if device.type != "cuda":
        figures["cost_reason"] = f"PyTorch's deterministic algorithms are a CUDA setting; this run is on {device.type}"
    elif "seconds" in rows[0]:
        figures["cost"] = deterministic_cost(cases(size, device)[0], rows[0]["seconds"][1])
    raise_row_errors(rows)


def repeat(task, config: dict) -> dict:
    """Two runs of one config: which of their last metrics (timings aside) differ."""
    first_s, first = run(task, config)
    second_s, second = run(task, config)
    compared = [k for k in first if not k.startswith("time_")]
    differing = [k for k in compared if not same(first[k], second.get(k))]
    return {
        "steps": int(first["step"]),
        "compared": len(compared),
        "differing": differing,
        "identical": not differing,
        "seconds": [first_s, second_s],
    }


def deterministic_cost(case: tuple, deterministic_s: float) -> dict:
    """The first case again with PyTorch's default algorithms (the fixed cuBLAS workspace stays: it is read once per
    process), against its deterministic run."""
    task, config = case
    previous = os.environ.get("NEWTON_CUDA_DETERMINISTIC")
    os.environ["NEWTON_CUDA_DETERMINISTIC"] = "0"
    torch.use_deterministic_algorithms(False)
    try:
        default_s, _ = run(task, config)
    finally:
        if previous is None:
            os.environ.pop("NEWTON_CUDA_DETERMINISTIC")
        else:
            os.environ["NEWTON_CUDA_DETERMINISTIC"] = previous
        make_cuda_deterministic()
    return {
        "loss": config["loss"],
        "variant": config["variant"],
        "deterministic_s": deterministic_s,
        "default_s": default_s,
    }
