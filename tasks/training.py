"""What every task's ``train`` shares: one ``prepare`` (config resolved, loss and variant objective built, once),
one ``train_step`` (data, network, loss + Newton step, backward, Adam, each timed) and one ``evaluation`` block
(the metrics of an evaluation with the Newton-system monitor and the timings), plus device, RNG state and timing.
The built-in tasks and the example task of ``examples/topk_lab`` use them; a user's task may."""

from __future__ import annotations

import contextlib
import difflib
import inspect
import math
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from losses import LOSSES, VARIANTS, make_objective
from losses.finite import deferred_checks, watching
from losses.variants import Objective


class NonFiniteTrainingError(FloatingPointError):
    """Training produced a NaN/inf loss, gradient or output; the run's metrics are not results."""


def resolve_config(config: dict[str, Any], defaults: dict[str, Any], task: str) -> dict[str, Any]:
    """Fill defaults. Valid keys are the task's ``defaults`` and the chosen loss's own parameters (its signature:
    τ, β, σ, samples, ...; None means the loss's default), so a task routes whatever its loss declares. An
    unknown key is an error naming the closest valid one."""
    loss = config.get("loss", defaults.get("loss"))
    own = LOSSES.parameters(loss) if loss is not None else {}
    config = {k: v for k, v in config.items() if k in defaults or k in own or not _unset_loss_parameter(k, v)}
    for key in config:
        if key not in defaults and key not in own:
            valid = list(defaults) + list(own)
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            loaded = set(LOSSES.loaded())
            others = [name for name in LOSSES.names() if name in loaded and key in LOSSES.parameters(name)]
            if others:
                raise KeyError(
                    f"loss {loss!r} takes no parameter {key!r}{hint} (it takes: {', '.join(own) or 'none'}; "
                    f"{key!r} is a parameter of {', '.join(others)})"
                )
            raise KeyError(
                f"task {task!r} has no config key {key!r}{hint}, and loss {loss!r} takes no such parameter "
                f"(task keys: {', '.join(sorted(defaults))}; loss parameters: {', '.join(own) or 'none'})"
            )
    return {**defaults, **{key: None for key in own if key not in defaults}, **config}


def _unset_loss_parameter(key: str, value: Any) -> bool:
    """``key: None`` for another loss's parameter means "not set" (a grid over several loss families may share
    ``params``); a key no loss takes is still an error. Only losses already resolved here are asked (the built-ins
    and the study's own), so a misspelled key never imports every installed plugin."""
    return value is None and any(key in LOSSES.parameters(name) for name in LOSSES.loaded())


def loss_params(cfg: dict[str, Any]) -> dict[str, Any]:
    """The loss's own parameters that the resolved config sets (None: the loss's default)."""
    return {key: cfg[key] for key in LOSSES.parameters(cfg["loss"]) if cfg.get(key) is not None}


def describe_loss(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with every parameter of its loss filled in (defaults where unset), as logged with the run."""
    defaults = {k: v for k, v in LOSSES.parameters(cfg["loss"]).items() if v is not inspect.Parameter.empty}
    return {**cfg, **defaults, **loss_params(cfg)}


def check_positive(
    cfg: dict[str, Any], task: str, ints: tuple[str, ...], minimum: dict[str, int] | None = None
) -> None:
    """Integers that must be >= 1 (or their ``minimum``), and a positive finite ``lr``."""
    for key in ints:
        low = (minimum or {}).get(key, 1)
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < low:
            raise ValueError(
                f"{task}: {key} must be a positive integer{f' >= {low}' if low > 1 else ''}, got {cfg[key]!r}"
            )
    if not (isinstance(cfg["lr"], (int, float)) and math.isfinite(cfg["lr"]) and cfg["lr"] > 0):
        raise ValueError(f"{task}: lr must be a positive number, got {cfg['lr']!r}")


def build_loss(cfg: dict[str, Any], kind: str, task: str):
    """The configured loss, checked to serve this task (its ``task_kind``; a loss that declares none fits any
    task) and to have the configured variant (its ``variants``); each a one-line error naming the valid
    choices."""
    name, params = cfg["loss"], loss_params(cfg)
    declared = getattr(LOSSES.get(name), "task_kind", None)  # an unknown name gets the registry's own error
    if declared is not None and declared != kind:
        loaded = set(LOSSES.loaded())  # the names a study can write, without importing anyone's plugin
        own = [n for n in LOSSES.names() if n in loaded and getattr(LOSSES.get(n), "task_kind", None) in (kind, None)]
        raise ValueError(f"{task}: loss {name!r} is a {declared} loss, not a {kind} one (use one of: {', '.join(own)})")
    loss = LOSSES.build(name, **params)
    supported = getattr(loss, "variants", VARIANTS)
    if cfg["variant"] in VARIANTS and cfg["variant"] not in supported:
        raise ValueError(
            f"{task}: loss {name!r} has no {cfg['variant']!r} variant (it supports: {', '.join(supported)})"
        )
    return loss


@dataclass(frozen=True)
class Setup:
    """A run's resolved config, its loss, and the variant's objective (built once per run)."""

    cfg: dict[str, Any]
    loss: Any
    objective: Objective


def prepare(
    config: dict[str, Any],
    defaults: dict[str, Any],
    kind: str,
    task: str,
    positive: tuple[str, ...] = (),
    minimum: dict[str, int] | None = None,
) -> Setup:
    """Resolve ``config`` against the task's ``defaults`` and its loss, build the loss and the variant's objective
    (λ checked for a Newton variant), and check the integer keys in ``positive`` and ``lr``: every error ``train``
    would raise for the config, in one call, without loading data. A task's ``check`` is this call."""
    cfg = resolve_config(config, defaults, task)
    loss = build_loss(cfg, kind, task)
    objective = make_objective(loss, cfg["variant"], cfg["lam"])
    check_positive(cfg, task, positive, minimum)
    return Setup(cfg, loss, objective)


def train_step(
    setup: Setup,
    clock: "Stopwatch",
    optimizer: torch.optim.Optimizer,
    batch: Callable[[], tuple],
    forward: Callable[[Any], torch.Tensor],
    step: int,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """One training step of Section 3's split: ``batch()`` gives (inputs, target) [data], ``forward(inputs)`` the
    (N, m) output y [network], the variant's gradient at y [loss + Newton step], then y's backward and the
    optimizer's step [network]; each phase timed by ``clock``. Returns the algorithmic loss of the batch as a 0-d
    float64 tensor on the device (sum it there; the evaluation reads it)."""
    clock.start()
    inputs, target = batch()
    clock.lap("data")
    output = forward(inputs)
    clock.lap("network")
    grad, value = objective_gradient(setup.objective, output, target, step, setup.cfg, dtype)
    clock.lap("loss")
    optimizer.zero_grad(set_to_none=True)
    output.backward(grad)
    optimizer.step()
    clock.lap("network")
    return value.double()


class BestValidation:
    """The authors' evaluation protocol (diffsort's ``experiments/main.py``; the paper does not state one): at
    every evaluation the test metrics are kept from the evaluation with the best validation ``select`` metric so
    far, the first of equal ones (higher is better). Each evaluation then also reports ``best_valid`` (that best
    value), ``best_valid_step`` and ``test_<metric>_at_best_valid`` for every test metric measured. The reference
    starts its best at 0, so a run whose validation metric never exceeds 0 reports no test value there; here such a
    run reports its first
    evaluation (the tables then hold a number for every seed)."""

    def __init__(self, select: str, state: dict[str, Any] | None = None):
        self.select = select
        self.best = dict(state) if state else {"value": -math.inf, "step": -1, "test": {}}

    def update(self, metrics: dict[str, float]) -> dict[str, float]:
        if metrics[self.select] > self.best["value"]:
            test = {key: value for key, value in metrics.items() if key.startswith("test_")}
            self.best = {"value": float(metrics[self.select]), "step": int(metrics["step"]), "test": test}
        return {
            "best_valid": self.best["value"],
            "best_valid_step": self.best["step"],
            **{f"{key}_at_best_valid": value for key, value in self.best["test"].items()},
        }

    def state(self) -> dict[str, Any]:
        """Plain values for the run's checkpoint (loads with ``weights_only=True``)."""
        return dict(self.best)


def at_best_valid(metrics: tuple[str, ...]) -> tuple[str, ...]:
    """The names ``BestValidation`` reports for these test metrics, and ``best_valid``, ``best_valid_step``."""
    return ("best_valid", "best_valid_step", *(f"{m}_at_best_valid" for m in metrics if m.startswith("test_")))


def evaluation(
    setup: Setup,
    clock: "Stopwatch",
    step: int,
    train_loss: float,
    evaluate: Callable[[], dict[str, float]],
    best: BestValidation | None = None,
    **extra: float,
) -> dict[str, float]:
    """The metrics of one evaluation: ``step``, the mean ``train_loss`` since the last one, ``extra``, what
    ``evaluate()`` measures (and, with ``best``, the test metrics at the best validation evaluation so far), the
    Hessian variant's Newton-system figures (was M + λI positive definite?), all timed as evaluation, then the
    cumulative ``time_*`` of every phase and ``time_total``. First, a failure the deferred finite checks recorded
    since the last evaluation is raised (``raise_failure``): no metric of a broken run is reported."""
    raise_failure(setup.cfg)
    clock.start()
    metrics = {"step": step, **extra, "train_loss": float(train_loss), **evaluate()}
    if best is not None:
        metrics.update(best.update(metrics))
    if setup.objective.monitor is not None:
        metrics.update(setup.objective.monitor.take())
    clock.lap("eval")
    metrics.update({f"time_{k}": v for k, v in clock.totals.items()})
    metrics["time_total"] = sum(clock.totals.values())
    return metrics


def objective_gradient(
    objective,
    output: torch.Tensor,
    target: torch.Tensor,
    step: int,
    cfg: dict[str, Any],
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss + Newton phase: the variant objective's gradient at the detached model output (optionally in
    ``dtype``), and its value as a 0-d tensor (reading it would make the host wait for the device).

    A NaN/inf or a singular Newton system is an error naming step and variant: at once when the checks are eager;
    inside ``checks()`` (how the tasks train) it is recorded on the device and raised by the next ``evaluation``."""
    watch = watching()
    where = f"at step {step} (loss={cfg['loss']}, variant={cfg['variant']}, lam={cfg['lam']})"
    if watch is not None:
        watch.step = step
        watch.note(~torch.isfinite(output).all(), "non-finite model output")
    elif not torch.isfinite(output).all():
        raise NonFiniteTrainingError(f"non-finite model output {where}")
    y = output.detach().to(dtype or output.dtype).requires_grad_(True)
    try:
        value = objective(y, target.to(y.dtype))
        (grad,) = torch.autograd.grad(value, y)
    except (FloatingPointError, ValueError, torch.linalg.LinAlgError) as error:
        raise_failure(cfg)  # deferred: an upstream failure recorded this step (a NaN output the solver refused)
        if isinstance(error, torch.linalg.LinAlgError):
            raise NonFiniteTrainingError(f"singular Newton system {where}: {error}") from error
        if isinstance(error, FloatingPointError):
            raise NonFiniteTrainingError(f"non-finite training {where}: {error}") from error
        raise
    if watch is not None:
        watch.note(~(torch.isfinite(value) & torch.isfinite(grad).all()), "non-finite loss or gradient")
    elif not torch.isfinite(value) or not torch.isfinite(grad).all():
        raise NonFiniteTrainingError(f"non-finite loss or gradient {where}")
    return grad.to(output.dtype), value.detach()


def checks():
    """The context a task trains in: finite checks deferred to the device (``losses/finite.py``), raised at the next
    evaluation; ``NEWTON_EAGER_CHECKS=1`` checks at every step instead (the host then waits at each check)."""
    if os.environ.get("NEWTON_EAGER_CHECKS") == "1":
        return contextlib.nullcontext(None)
    return deferred_checks()


def raise_failure(cfg: dict[str, Any]) -> None:
    """Raise the first failure the deferred checks recorded, naming its step, the loss, the variant and λ."""
    watch = watching()
    failure = watch.failure() if watch is not None else None
    if failure is not None:
        what, step = failure
        raise NonFiniteTrainingError(
            f"{what} at step {step} (loss={cfg['loss']}, variant={cfg['variant']}, lam={cfg['lam']})"
        )


def pick_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one. On CUDA, also ``make_cuda_deterministic()``."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cuda":
        make_cuda_deterministic()
    return device


def make_cuda_deterministic() -> None:
    """The same seed gives the same numbers on CUDA too, as it does on the CPU: cuBLAS with a fixed workspace
    (``CUBLAS_WORKSPACE_CONFIG``, read when the process first uses cuBLAS), PyTorch's deterministic algorithms
    (an op without one warns instead of failing), no cuDNN autotuning. ``NEWTON_CUDA_DETERMINISTIC=0`` leaves
    PyTorch's defaults (what that buys is measured by ``benchmarks/gpu_check.py``)."""
    if os.environ.get("NEWTON_CUDA_DETERMINISTIC", "1") == "0":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG a trial draws from, as tensors and plain Python values only, so a checkpoint loads with
    ``torch.load(weights_only=True)`` (no pickled classes from storage that other nodes can write)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    rng = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "data": generator.get_state(),
    }
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng_state(rng: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    numpy = rng["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    generator.set_state(rng["data"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Stopwatch:
    """Cumulative seconds per phase (data, network, loss + Newton step, evaluation).

    On the CPU, wall-clock laps. On CUDA, the GPU runs behind the host, so a host clock would charge a phase's
    kernels to whichever later phase waits for them; instead each lap records a CUDA event on the stream, and the
    time between two events is the phase's own. Reading ``totals`` (at an evaluation) waits for the last event once;
    the training step itself never waits for the GPU."""

    def __init__(self, device: torch.device, totals: dict[str, float] | None = None):
        self.cuda = device.type == "cuda"
        self._totals = dict(totals or {"loss": 0.0, "network": 0.0, "data": 0.0, "eval": 0.0})
        self._pending: list[tuple[str, Any, Any]] = []
        self._last = None

    @property
    def totals(self) -> dict[str, float]:
        if self._pending:
            self._pending[-1][2].synchronize()
            for phase, begin, end in self._pending:
                self._totals[phase] += begin.elapsed_time(end) / 1000.0
            self._pending = []
        return self._totals

    def start(self) -> None:
        self._last = self._mark()

    def lap(self, phase: str) -> None:
        now = self._mark()
        if self.cuda:
            self._pending.append((phase, self._last, now))
        else:
            self._totals[phase] += now - self._last
        self._last = now

    def _mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event
