"""What a trial logs about the machine it ran on: MLflow's system metrics, and its own process's peak memory.

MLflow's ``SystemMetricsMonitor`` samples on a thread: it collects, waits the interval, then publishes, and on
shutdown it returns without publishing what it collected, so a run shorter than the interval gets no sample; its
first CPU figure is 0 (psutil's is the utilisation since the previous call on the same thread). Here the thread
starts that figure at the trial's start, samples at the end of each interval, and once more when the trial ends,
so every trial has at least one ``system/...`` sample, each covering the time since the one before. GPU figures
(with ``nvidia-ml-py``, the ``gpu`` extra) are those of the GPUs Ray gave the trial: MLflow's ``gpu_i`` is the
trial's ``cuda:i``; a trial on the CPU logs none.

Peak memory is per trial although Tune reuses a worker process for the next trial (``reuse_actors``): the CUDA
allocator's peak is reset at the start (``peak_gpu_memory_mb`` = ``torch.cuda.max_memory_allocated``), and so is
the kernel's resident-set high-water mark (Linux ``/proc/self/clear_refs``), so ``peak_rss_mb`` is the process's
peak while this trial ran (``start_rss_mb``, what it held at the start, included). Where the mark cannot be reset,
no RSS figure is logged: the process's lifetime peak would be an earlier trial's. Megabytes are 10^6 bytes, as in
MLflow's ``system/*_megabytes``.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from pathlib import Path

import torch
from mlflow.entities import Metric
from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor
from mlflow.system_metrics.metrics.disk_monitor import DiskMonitor
from mlflow.system_metrics.metrics.gpu_monitor import GPUMonitor
from mlflow.system_metrics.metrics.network_monitor import NetworkMonitor
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

from .errors import TrackingError
from .study import Telemetry
from .tracking import tracking_at

MB = 1e6
CLEAR_REFS = Path("/proc/self/clear_refs")
_logger = logging.getLogger(__name__)


class TrialSystemMetrics(SystemMetricsMonitor):
    """MLflow's monitor of one trial's run: the study's interval, the trial's GPUs, a sample at the end."""

    def __init__(self, run_id: str, uri: str, interval: float, gpu_ids: list[str], on_gpu: bool, resumed: bool):
        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # not 4 lines per trial in the console
        super().__init__(run_id, sampling_interval=interval, resume_logging=resumed, tracking_uri=uri)
        self.sampling_interval, self.samples_before_logging = interval, 1  # not MLflow's environment variables
        host = (CPUMonitor, DiskMonitor, NetworkMonitor)
        if not gpu_ids and not on_gpu:  # a CPU trial: the node's GPUs are other trials' business
            self.monitors = [m for m in self.monitors if isinstance(m, host)]
        for monitor in self.monitors:
            if isinstance(monitor, GPUMonitor) and gpu_ids:
                monitor.gpu_handles = nvml_handles(gpu_ids)
                monitor.num_gpus = len(monitor.gpu_handles)

    def monitor(self):
        """MLflow's sampling loop, but every sample on this thread (psutil keeps its CPU figure's previous call per
        thread), the first one interval in, and a last one when stopped."""
        self.collect_metrics()  # starts the CPU figure at the trial's start; the sample itself is dropped
        for monitor in self.monitors:
            monitor.clear_metrics()
        stopped = False
        while not stopped:
            stopped = self._shutdown_event.wait(self.sampling_interval)
            self.collect_metrics()
            try:
                self.publish_metrics(self.aggregate_metrics())
            except Exception as error:  # noqa: BLE001 - as MLflow's loop: a store that fails ends the sampling
                _logger.warning("system metrics of run %s: sampling stopped: %s", self._run_id, error)
                return


def nvml_handles(gpu_ids: list[str]) -> list:
    """NVML handles of the GPUs Ray named: indices as in the node's ``CUDA_VISIBLE_DEVICES``, or ``GPU-...`` UUIDs."""
    import pynvml

    return [
        pynvml.nvmlDeviceGetHandleByIndex(int(i)) if i.isdigit() else pynvml.nvmlDeviceGetHandleByUUID(i)
        for i in gpu_ids
    ]


@contextlib.contextmanager
def trial_telemetry(run, settings: Telemetry, device: torch.device | None, gpu_ids: list[str], resumed: bool):
    """System metrics sampled while the body runs, and the peak memory metrics logged when it ends, at the run's
    last logged step. ``run`` is the trial's ``TrialRun``. Telemetry never hides the trial's own error."""
    on_gpu = device is not None and device.type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    start_rss = _reset_rss_peak()
    monitor = None
    if settings.system_metrics:
        try:
            monitor = TrialSystemMetrics(run.run_id, run.uri, settings.interval, gpu_ids, on_gpu, resumed)
            monitor.start()
        except Exception as error:  # noqa: BLE001 - NVML and psutil raise their own kinds; the trial still trains
            _logger.warning("trial run %s: no system metrics: %s", run.run_id, error)
            monitor = None
    failed = True
    try:
        yield
        failed = False
    finally:
        peaks = {} if start_rss is None else {"start_rss_mb": start_rss, "peak_rss_mb": _peak_rss()}
        if on_gpu:
            peaks["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated(device) / MB
            peaks["peak_gpu_memory_reserved_mb"] = torch.cuda.max_memory_reserved(device) / MB
        if monitor is not None:
            try:
                monitor.finish()
            except Exception as error:  # noqa: BLE001 - a lost sample must not fail a trial that trained
                _logger.warning("trial run %s: its last system metrics sample was not logged: %s", run.run_id, error)
        now, step = int(time.time() * 1000), max(run.last_step, 0)
        with contextlib.suppress(TrackingError) if failed else contextlib.nullcontext():  # the trial's error first
            with tracking_at(run.uri, "logging the trial's peak memory"):
                if peaks:
                    run.client.log_batch(run.run_id, metrics=[Metric(k, v, now, step) for k, v in peaks.items()])


def _reset_rss_peak() -> float | None:
    """Reset the kernel's high-water mark of this process's resident set to its current size (Linux >= 4.0) and
    return that size in MB; None where it cannot be reset."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return None
    return _peak_rss()


def _peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # KiB on Linux (the only reset above)
