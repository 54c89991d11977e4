"""Driver-side Tune callbacks: final MLflow status per trial, and one summary line per finished trial."""

from __future__ import annotations

from pathlib import Path

from ray.tune import Callback

from .atomic_files import CHECKPOINT_PREFIX, empty_checkpoint
from .errors import TrackingError
from .state import TrialContext
from .tracking import finish_trial_run
from .trainable import trial_config


class MlflowStatus(Callback):
    """Mark each trial's run FINISHED/FAILED when Tune ends it (ASHA stops never reach the trainable).

    If the tracking store does not answer, its ``TrackingError`` ends the phase at once, as a killed driver
    would (every further trial would fail the same way); Tune's saved state lets ``tuner resume`` continue.
    Tune hands the error on wrapped in a ``TuneError``; the original stays in ``failures`` for the driver.
    """

    def __init__(self, context: TrialContext, keep_checkpoints: bool = False):
        self.context, self.keep_checkpoints = context, keep_checkpoints
        self.failures: list[TrackingError] = []

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, "FINISHED")
        if not self.keep_checkpoints:
            drop_checkpoints(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "FAILED", _error(trial))

    def _finish(self, trial, status, error=None):
        try:
            finish_trial_run(self.context, trial.trial_id, status, error)
        except TrackingError as failure:
            self.failures.append(failure)
            raise

    def __getstate__(self):  # Tune saves its callbacks with its state: the failures of this driver stay here
        return {**self.__dict__, "failures": []}


class TrialSummary(Callback):
    """One line per finished trial, e.g.
    ``[done] grid 3/12 a1b2c_00002 loss=neuralsort variant=fisher lam=0.1 seed=0 | valid_elementwise=0.61 step=150``."""

    def __init__(self, metric: str, phase: str, planned: int, shown: list[str]):
        self.metric, self.phase, self.planned, self.shown = metric, phase, planned, shown
        self.done = 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line("done", trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line("FAILED", trials, trial, _error(trial))

    def _line(self, what, trials, trial, error=None):
        self.done += 1
        config = trial_config(trial.config)
        setting = " ".join(f"{k}={_fmt(config[k])}" for k in self.shown if config.get(k) is not None)
        result = trial.last_result or {}
        value = result.get(self.metric)
        outcome = error or (
            f"{self.metric}={_fmt(value)} step={result.get('step')} ({result.get('time_total', 0):.0f} s)"
            if value is not None
            else "no result"
        )
        print(f"[{what}] {self.phase} {self.done}/{self.planned} {trial.trial_id} {setting} | {outcome}", flush=True)


def drop_checkpoints(trial) -> None:
    """Empty a finished trial's checkpoint folders: their model, optimizer and RNG states (~10 MB for the ranking
    CNN) serve only to resume it, which it no longer needs; without this a 500-trial study kept ~5 GB.

    The folders themselves stay: if the driver is killed before Tune saves the trial as finished, Tune restores
    it from its last checkpoint and refuses one whose folder is gone, while the trial itself never opens it (its
    MLflow run is FINISHED, so it replays that run). Errored trials keep theirs (``tuner resume`` retries them).
    """
    folder = Path(trial.path) if trial.path and "://" not in str(trial.path) else None
    if folder is None or not folder.is_dir():
        return
    for checkpoint in folder.glob(f"{CHECKPOINT_PREFIX}*"):
        empty_checkpoint(checkpoint)


def _error(trial) -> str:
    text = ""
    path = getattr(trial, "error_file", None)
    if path:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            pass
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else "trial failed"


def _fmt(value):
    return f"{value:.4g}" if isinstance(value, float) else value
