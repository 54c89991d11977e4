"""The training step of every loss family, per variant: its time, and its host synchronisations on a GPU.

Each step is the tasks' own ``tasks.training.train_step`` (data, network, loss + Newton step, backward, Adam;
finite checks deferred to the device, as a trial trains) on the tasks' own data and networks: the SPEC 2 CNN on
four-digit MNIST sets, CombResnet18 on generated Warcraft maps. λ is the paper's (Table 4 for ranking, Tables 2
and 5 for shortest paths). Variants are interleaved step by step, each with its own copy of the network.
"""

from __future__ import annotations

import copy
import functools
import statistics
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch

from losses.finite import FiniteWatch, deferred_checks
from tasks import ranking, shortest_path
from tasks.training import Setup, Stopwatch, train_step

from .budget import NotMeasured, Section, guarded, raise_row_errors

TABLE4 = {  # the paper's Table 4: (Hessian λ, Fisher λ) per ranking loss, for n = 5 and n = 10
    5: {"neuralsort": (0.01, 0.1), "softsort": (10, 10), "logistic_dsn": (0.1, 0.1), "cauchy_dsn": (0.1, 0.1)},
    10: {"neuralsort": (0.01, 100), "softsort": (1, 100), "logistic_dsn": (0.1, 0.1), "cauchy_dsn": (0.1, 0.1)},
}
SHORTEST_PATH_LAMS = {  # Table 5 (stochastic losses), Table 2 (Bellman-Ford, L1): λ per Newton variant
    "ss_loss": {"hessian": 1000, "fisher": 0.1},
    "ss_algorithm": {"fisher": 1000},
    "po_fy": {"hessian": 1000, "fisher": 1000},
    "bellman_ford": {"fisher": 1000},
}
SYNC_WARNING = "synchronizing CUDA operation"  # what torch.cuda.set_sync_debug_mode("warn") says


@dataclass(frozen=True)
class Setting:
    """One loss with its parameters, and λ per variant (None for the baseline)."""

    task: str  # "ranking" or "shortest_path"
    loss: str
    params: dict
    lams: dict


def ranking_settings(size: dict) -> list[Setting]:
    """The four ranking losses at each n, with Table 4's λ (Cauchy DSN with β = 100 at n = 10, as Table 1)."""
    out = []
    for n in size["ns"]:
        for loss, (hessian, fisher) in TABLE4[10 if n >= 10 else 5].items():
            params = {"n": n, **({"beta": 100} if loss == "cauchy_dsn" and n >= 10 else {})}
            out.append(Setting("ranking", loss, params, {"baseline": None, "hessian": hessian, "fisher": fisher}))
    return out


def shortest_path_settings(size: dict) -> list[Setting]:
    """``ss_loss`` at each sample count, ``ss_algorithm`` and ``po_fy`` at ``size['other_samples']``, and the
    relaxed Bellman-Ford (For loop, L1)."""
    params = [("ss_loss", {"samples": s}) for s in size["samples"]]
    params += [(loss, {"samples": size["other_samples"]}) for loss in ("ss_algorithm", "po_fy")]
    params.append(("bellman_ford", {"loop": "for", "norm": "l1"}))
    return [Setting("shortest_path", loss, p, {"baseline": None, **SHORTEST_PATH_LAMS[loss]}) for loss, p in params]


@dataclass
class Workload:
    """A task's data and network for stepping: ``draw(generator)`` a batch, ``forward(model)`` its output."""

    model: torch.nn.Module
    draw: Callable[[torch.Generator], tuple]
    forward: Callable[[torch.nn.Module], Callable]
    dtype: torch.dtype | None


@dataclass
class Contender:
    """One variant's own network, optimizer, clock, finite watch and data stream."""

    setup: Setup
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    clock: Stopwatch
    watch: FiniteWatch = field(default_factory=FiniteWatch)
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))


@functools.lru_cache(maxsize=8)
def workload(task: str, device: torch.device, batch: int, n: int = 5) -> Workload:
    """The task's own data on ``device`` and a freshly initialised network (seed 0); built once per size."""
    torch.manual_seed(0)
    if task == "ranking":
        from tasks.mnist_digits import load_digits
        from tasks.multi_digit import MultiDigitSets

        pool = MultiDigitSets(*load_digits(None).train, device)
        return Workload(ranking.RankingCNN(), lambda g: pool.draw(batch, n, g), lambda m: m.score, None)
    from tasks.warcraft_data import cached_generated, load_warcraft
    from tasks.warcraft_model import CombResnet18, channel_stats

    data = load_warcraft(cached_generated({"train": max(batch, 8), "val": 2, "test": 2}, seed=0))["train"]
    maps = torch.from_numpy(np.array(data["maps"]))
    paths = torch.from_numpy(np.asarray(data["paths"], dtype=np.float32)).flatten(1)
    model = CombResnet18(*channel_stats(maps))
    maps, paths = maps.to(device), paths.to(device)  # resident, as the task keeps them

    def draw(generator):
        idx = torch.randint(len(maps), (batch,), generator=generator).to(device)
        return maps[idx], paths[idx]

    return Workload(model, draw, lambda m: lambda x: m(x).flatten(1), torch.float64)


def contenders(setting: Setting, work: Workload, device: torch.device) -> dict[str, Contender]:
    """Each variant's Setup built by the task itself (``task.setup``), on a copy of the same network."""
    task = ranking if setting.task == "ranking" else shortest_path
    out = {}
    for variant, lam in setting.lams.items():
        config = {"loss": setting.loss, **setting.params, "variant": variant, "lam": lam, "device": str(device)}
        model = copy.deepcopy(work.model).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # the tasks' default
        out[variant] = Contender(task.setup(config), model, optimizer, Stopwatch(device))
    return out


def step(work: Workload, c: Contender, number: int) -> None:
    """One real training step of one variant, its finite checks recorded on the device."""
    draw = lambda: work.draw(c.generator)
    with deferred_checks(c.watch):
        train_step(c.setup, c.clock, c.optimizer, draw, work.forward(c.model), number, work.dtype)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_setting(setting: Setting, work: Workload, device: torch.device, reps: int, warmup: int) -> dict[str, Any]:
    """Median wall time of a step per variant (device synchronised around each step), the loss + Newton phase's
    mean (the tasks' CUDA-event clock), ratios to the baseline, and any finite-check failure."""
    racers = contenders(setting, work, device)
    times: dict[str, list[float]] = {v: [] for v in racers}
    loss_before = {}
    for rep in range(warmup + reps):
        for variant, c in racers.items():
            if rep == warmup:
                loss_before[variant] = c.clock.totals["loss"]
            sync(device)
            start = time.perf_counter()
            step(work, c, rep + 1)
            sync(device)
            if rep >= warmup:
                times[variant].append(time.perf_counter() - start)
    step_ms = {v: 1000 * statistics.median(t) for v, t in times.items()}
    return {
        **label(setting),
        "step_ms": step_ms,
        "loss_phase_ms": {v: 1000 * (c.clock.totals["loss"] - loss_before[v]) / reps for v, c in racers.items()},
        "vs_baseline": {v: ms / step_ms["baseline"] for v, ms in step_ms.items()},
        "failures": {v: _failure(c.watch) for v, c in racers.items()},
    }


def label(setting: Setting) -> dict:
    """What names a row: the loss, its parameters, λ per variant."""
    return {"loss": setting.loss, **setting.params, "lam": setting.lams}


def _failure(watch: FiniteWatch) -> str | None:
    found = watch.failure()
    return None if found is None else f"{found[0]} at step {found[1]}"


def ranking_steps(section: Section, size: dict, device: torch.device) -> None:
    """Every ranking loss x variant at each n, batch ``size['batch']``."""
    rows = section.figures = []
    for setting in ranking_settings(size):
        work = workload("ranking", device, size["batch"], setting.params["n"])
        guarded(rows, label(setting), lambda: time_setting(setting, work, device, size["reps"], size["warmup"]))
    raise_row_errors(rows)


def shortest_path_steps(section: Section, size: dict, device: torch.device) -> None:
    """Every shortest-path loss x variant (``bellman_ford``, ``ss_loss``, ``ss_algorithm``, ``po_fy``)."""
    rows = section.figures = []
    work = workload("shortest_path", device, size["sp_batch"])
    for setting in shortest_path_settings(size):
        guarded(rows, label(setting), lambda: time_setting(setting, work, device, size["sp_reps"], size["sp_warmup"]))
    raise_row_errors(rows)


class SyncCountingClock(Stopwatch):
    """The tasks' clock, also counting the sync warnings raised in each phase of the step."""

    def __init__(self, device: torch.device, caught: list):
        super().__init__(device)
        self.caught, self.seen, self.counts = caught, 0, Counter()

    def start(self) -> None:
        super().start()
        self.seen = self._syncs()

    def lap(self, phase: str) -> None:
        super().lap(phase)
        now = self._syncs()
        self.counts[phase] += now - self.seen
        self.seen = now

    def _syncs(self) -> int:
        return sum(SYNC_WARNING in str(w.message) for w in self.caught)


def count_syncs(work: Workload, c: Contender, device: torch.device, warmup: int, steps: int) -> dict[str, float]:
    """Host synchronisations per step of one variant after ``warmup`` steps, in all and per phase (CUDA's sync
    debug mode)."""
    for number in range(warmup):
        step(work, c, number + 1)
    sync(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        counting = replace(c, clock=SyncCountingClock(device, caught))
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for number in range(steps):
                step(work, counting, warmup + number + 1)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    per_phase = {phase: n / steps for phase, n in counting.clock.counts.items()}
    return {"per_step": sum(per_phase.values()), "per_phase": per_phase}


def calibrate_sync_warnings(device: torch.device) -> int:
    """How many sync warnings one ``.item()`` raises (must be >= 1, or the counts would be meaningless zeros)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            torch.ones(1, device=device).sum().item()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum(SYNC_WARNING in str(w.message) for w in caught)


def sync_counts(section: Section, size: dict, device: torch.device) -> None:
    """Syncs per training step per loss x variant (ranking at the first n; one setting per shortest-path loss)."""
    if device.type != "cuda":
        raise NotMeasured(f"needs a CUDA device (torch.cuda.set_sync_debug_mode); this run is on {device.type}")
    calibration = calibrate_sync_warnings(device)
    if calibration < 1:
        raise RuntimeError("sync debug mode raised no warning for .item(): the counts would be fake zeros")
    rows = []
    section.figures = {"item_calibration": calibration, "rows": rows}
    first_n = [s for s in ranking_settings(size) if s.params["n"] == size["ns"][0]]
    one_each = [s for i, s in enumerate(shortest_path_settings(size)) if s.loss != "ss_loss" or i == 0]
    for setting in first_n + one_each:
        if setting.task == "ranking":
            work = workload("ranking", device, size["batch"], setting.params["n"])
        else:
            work = workload("shortest_path", device, size["sp_batch"])
        for variant, c in contenders(setting, work, device).items():
            name = {"loss": setting.loss, **setting.params, "variant": variant}
            counts = lambda: count_syncs(work, c, device, size["sync_warmup"], size["sync_steps"])
            guarded(rows, name, lambda: {**name, **counts()})
    raise_row_errors(rows)
