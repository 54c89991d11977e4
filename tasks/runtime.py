"""Small pieces every task's ``train`` uses: config resolution, device, RNG state, timing."""
from __future__ import annotations

import difflib
import random
import time
from typing import Any

import numpy as np
import torch


class NonFiniteTrainingError(FloatingPointError):
    """Training produced a NaN/inf loss, gradient or output; the run's metrics are not results."""


def resolve_config(config: dict[str, Any], defaults: dict[str, Any], task: str) -> dict[str, Any]:
    """Fill defaults; an unknown key is an error naming the closest valid one."""
    for key in config:
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"task {task!r} has no config key {key!r}{hint} (valid: {', '.join(sorted(defaults))})")
    return {**defaults, **config}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
             "data": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


class Stopwatch:
    """Cumulative seconds per phase; synchronises CUDA so GPU time lands in the right phase."""

    def __init__(self, device: torch.device, totals: dict[str, float] | None = None):
        self.sync = device.type == "cuda"
        self.totals = dict(totals or {"loss": 0.0, "network": 0.0, "data": 0.0, "eval": 0.0})
        self._last = None

    def start(self) -> None:
        self._sync()
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        self._sync()
        now = time.perf_counter()
        self.totals[phase] += now - self._last
        self._last = now

    def _sync(self) -> None:
        if self.sync:
            torch.cuda.synchronize()
