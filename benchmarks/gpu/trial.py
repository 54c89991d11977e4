"""One packed trial: a task's real ``train`` in a process of its own, timed over a window shared with its peers.

    python -m gpu.trial SPEC.json      (from benchmarks/; started by ``packed.run_together``)

SPEC holds ``task`` (a module of ``tasks``), ``config`` (its ``train`` config), ``window_s``, the ``ready`` and
``go`` files of the barrier, ``wait_s`` (how long to wait for go) and ``out``. At its first report (after
``eval_every`` steps: data loaded, kernels warm) the trial writes ``ready`` and waits for ``go``, which the parent
writes once every trial is ready; from then on it trains for ``window_s`` seconds, stopping at the first report
after that. Its result (steps and steps/s in the window, the curve of the reported metrics, the peak GPU memory
allocated in this process, the warnings raised) is rewritten at every report, so a trial ended by the parent's
budget still leaves what it measured.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(1, str(Path(__file__).resolve().parents[2]))  # the repository: its tasks and losses

CURVE_KEYS = (  # of a report, what the curve keeps (those the task reports)
    "step",
    "train_loss",
    "valid_exact",
    "valid_elementwise",
    "test_exact",
    "test_elementwise",
    "test_exact_at_best_valid",
    "test_elementwise_at_best_valid",
)


class WindowOver(Exception):
    """The trial's window ended."""


class Trial:
    """The report callback: the barrier, the window, the curve, and the result file."""

    def __init__(self, spec: dict, caught: list):
        self.spec, self.caught = spec, caught
        self.curve: list[dict] = []
        self.seen_go = None
        self.steps_at_go = 0

    def report(self, metrics: dict, state: dict) -> None:
        if self.seen_go is None:
            self.wait_for_go(int(metrics["step"]))
        now = time.time()
        self.curve.append({**{k: metrics[k] for k in CURVE_KEYS if k in metrics}, "seconds": now - self.seen_go})
        self.save(finished=False)
        if now - self.seen_go >= self.spec["window_s"]:
            raise WindowOver

    def wait_for_go(self, step: int) -> None:
        """Say ready, then wait for the parent's go (at most ``wait_s``: a parent that died must not hang us)."""
        Path(self.spec["ready"]).write_text(str(time.time()))
        go, give_up = Path(self.spec["go"]), time.time() + self.spec["wait_s"]
        while not go.exists() and time.time() < give_up:
            time.sleep(0.02)
        self.seen_go, self.steps_at_go = time.time(), step

    def save(self, finished: bool) -> None:
        """Write the result atomically (the parent may read it at any time)."""
        out = Path(self.spec["out"])
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.result(finished)))
        os.replace(tmp, out)

    def result(self, finished: bool) -> dict:
        last = self.curve[-1] if self.curve else {"step": 0, "seconds": 0.0}
        window = last["seconds"] if self.seen_go is not None else 0.0
        steps = int(last["step"]) - self.steps_at_go
        return {
            "finished": finished,
            "steps": int(last["step"]),
            "steps_in_window": steps,
            "window_s": window,
            "steps_per_s": steps / window if window > 0 else None,
            **peak_memory(self.spec["config"].get("device", "cpu")),
            "curve": self.curve,
            "warnings": dict(Counter(f"{w.category.__name__}: {str(w.message)[:300]}" for w in self.caught)),
        }


def peak_memory(device: str) -> dict:
    """Peak GPU memory this process allocated (and reserved), in MB; null off CUDA."""
    if not device.startswith("cuda") or not torch.cuda.is_initialized():
        return {"peak_allocated_mb": None, "peak_reserved_mb": None}
    return {
        "peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
        "peak_reserved_mb": torch.cuda.max_memory_reserved() / 2**20,
    }


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    task = importlib.import_module(f"tasks.{spec['task']}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trial = Trial(spec, caught)
        try:
            task.train(spec["config"], trial.report)
        except WindowOver:
            pass
        trial.save(finished=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
