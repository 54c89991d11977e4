"""Per-trial telemetry (tuner/telemetry.py): MLflow's system metrics with a sample even for a trial shorter than the
interval, the trial's GPUs only, and the peak memory of the trial's own process. A real MLflow SQLite store; the
last test runs the real CLI (Ray, MLflow) on a one-trial study."""

import os
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tuner import telemetry
from tuner.export import study_tables
from tuner.state import load_state
from tuner.study import Telemetry
from tuner.telemetry import TrialSystemMetrics, trial_telemetry
from tuner.tracking import TrialRun, prepare_experiment, start_parent_run

from .helpers import run_tuner, tiny_study
from .test_tracking_identity import context

pytestmark = pytest.mark.xdist_group("test_telemetry")  # one worker runs the module: its store once

HOST = {  # MLflow's CPU and memory figures, logged on every machine, and their sane range
    "system/cpu_utilization_percentage": (0, 100),
    "system/system_memory_usage_megabytes": (1, 1e8),
    "system/system_memory_usage_percentage": (0, 100),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating one takes seconds): its URI and experiment."""
    folder = tmp_path_factory.mktemp("telemetry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return uri, prepare_experiment(uri, "tele", folder / "artifacts")


def trial_run(store, trial_id="t_00000"):
    """A fresh trial run in an execution of its own."""
    uri, experiment = store
    parent = start_parent_run(uri, experiment, "tele study", {}, {"study": "tele"})
    return TrialRun(context(uri, experiment, parent), trial_id, "a trial", {}, {})


CPUS = os.cpu_count() or 1
# Linux's resident-set counters (file, anon, shmem pages) are per-CPU, each off by up to max(32, 2 * CPUs) pages per
# CPU where ru_maxrss reads them; VmRSS sums them exactly on recent kernels
COUNTER_SLACK_MB = max(4, 3 * CPUS * max(32, 2 * CPUS) * 4096 / 1e6)


def resident_mb():
    """This process's resident set now, in MB (``VmRSS`` of ``/proc/self/status``, in KiB)."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024 / 1e6


def steps(client, run_id, key):
    return [m.step for m in client.get_metric_history(run_id, key)]


def test_a_trial_shorter_than_the_interval_gets_one_sample_and_its_peak_memory(store):
    """Interval 60 s, a busy trial of ~0.5 s that holds 200 MB at its peak: one system sample at step 0, CPU and memory
    in range, and the process's peak resident set at least the resident set read while the 200 MB were held, well
    above its start (``clear_refs`` resets the mark, so the peak of the test process before the trial does not
    count: the peak stays within 20 MB of what was held). Not exactly 200 MB above the start: the kernel's
    resident-set counters are per-CPU approximations (a CI run measured 199.9), and other memory of the process
    may be released meanwhile."""
    big = bytearray(400_000_000)
    big[::4096] = b"\1" * len(big[::4096])  # touched: resident before the trial, must not count as its peak
    del big
    run = trial_run(store)
    run.log({"step": 4, "acc": 0.5})
    start = time.time()
    with trial_telemetry(run, Telemetry(interval=60), torch.device("cpu"), [], resumed=False):
        held = bytearray(200_000_000)
        held[::4096] = b"\1" * len(held[::4096])
        resident_while_held = resident_mb()
        while time.time() - start < 0.5:  # busy: at least one core's share of the machine's CPU
            pass
        del held
    assert time.time() - start < 10  # the monitor's thread stops at once, not after the interval
    client = MlflowClient(run.uri)
    metrics = client.get_run(run.run_id).data.metrics
    for key, (low, high) in HOST.items():
        assert steps(client, run.run_id, key) == [0], key
        assert low <= metrics[key] <= high, (key, metrics[key])
    assert metrics["system/cpu_utilization_percentage"] > 0  # measured over the trial, not since the sample before
    assert not [t for t in threading.enumerate() if t.name == "SystemMetricsMonitor"]  # stopped
    assert not [k for k in metrics if k.startswith("system/gpu")]  # a CPU trial logs no GPU
    assert metrics["peak_rss_mb"] >= resident_while_held - COUNTER_SLACK_MB
    assert metrics["peak_rss_mb"] <= resident_while_held + COUNTER_SLACK_MB + 20  # not the 400 MB before the trial
    assert 180 <= metrics["peak_rss_mb"] - metrics["start_rss_mb"] < 400
    assert steps(client, run.run_id, "peak_rss_mb") == [4]  # at the trial's last step
    assert "peak_gpu_memory_mb" not in metrics


def test_a_longer_trial_is_sampled_every_interval_and_once_at_the_end(store):
    """Interval 0.2 s over ~1.3 s: samples at consecutive steps from 0, the last one taken at the end; a retry of the
    trial (``resumed``) continues the steps; ``system_metrics: false`` logs none but still the peak memory."""
    run = trial_run(store)
    with trial_telemetry(run, Telemetry(interval=0.2), torch.device("cpu"), [], resumed=False):
        time.sleep(1.3)
    client = MlflowClient(run.uri)
    first = steps(client, run.run_id, "system/cpu_utilization_percentage")
    assert first == list(range(len(first))) and 3 <= len(first) <= 8, first  # 6 intervals and the end, if on time
    with trial_telemetry(run, Telemetry(interval=60), torch.device("cpu"), [], resumed=True):
        pass
    assert steps(client, run.run_id, "system/cpu_utilization_percentage") == [*first, len(first)]
    quiet = trial_run(store)
    with trial_telemetry(quiet, Telemetry(system_metrics=False), torch.device("cpu"), [], resumed=False):
        pass
    logged = client.get_run(quiet.run_id).data.metrics
    assert not [k for k in logged if k.startswith("system/")] and logged["peak_rss_mb"] > 0


def test_a_failing_trial_keeps_its_error_and_its_sample(store):
    run = trial_run(store)
    with pytest.raises(ValueError, match="diverged"):
        with trial_telemetry(run, Telemetry(interval=60), torch.device("cpu"), [], resumed=False):
            raise ValueError("diverged")
    metrics = MlflowClient(run.uri).get_run(run.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in metrics and "peak_rss_mb" in metrics


def test_the_report_reads_system_metrics_last_values_and_the_export_their_history(store):
    """``study_tables`` for the report leaves the ``system/...`` histories out (they would double its requests);
    the export (``system=True``) has them. Both have their last values as ``final_system/...`` columns."""
    run = trial_run(store)
    run.log({"step": 2, "acc": 0.5})
    with trial_telemetry(run, Telemetry(interval=60), torch.device("cpu"), [], resumed=False):
        pass
    execution = run.client.get_run(run.run_id).data.tags["mlflow.parentRunId"]
    trials, history = study_tables(run.uri, store[1], execution)
    assert set(history["metric"]) == {"acc", "peak_rss_mb", "start_rss_mb"}
    assert trials["final_system/cpu_utilization_percentage"].between(0, 100).all()
    _, exported = study_tables(run.uri, store[1], execution, system=True)
    assert set(HOST) <= set(exported["metric"])


class FakeNVML(types.ModuleType):
    """pynvml with four GPUs, each reporting its own index as utilisation (so a test sees which one was read)."""

    NVMLError = RuntimeError

    def __init__(self):
        super().__init__("pynvml")
        self.memory = types.SimpleNamespace(used=2e9, total=8e9)

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 4

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return {"GPU-aaa": 2}[uuid]

    def nvmlDeviceGetMemoryInfo(self, handle):
        return self.memory

    def nvmlDeviceGetUtilizationRates(self, handle):
        return types.SimpleNamespace(gpu=10 * handle)

    def nvmlDeviceGetPowerUsage(self, handle):
        return 100_000

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 400_000


@pytest.fixture
def four_gpus(monkeypatch):
    from mlflow.system_metrics.metrics import gpu_monitor

    fake = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(gpu_monitor, "pynvml", fake, raising=False)
    return fake


@pytest.mark.parametrize(
    "gpu_ids, on_gpu, read",
    [(["3"], True, [30]), (["1", "3"], True, [10, 30]), (["GPU-aaa"], True, [20]), ([], False, []), ([], True, None)],
)
def test_gpu_figures_are_those_of_the_gpus_ray_gave_the_trial(store, four_gpus, gpu_ids, on_gpu, read):
    """With ids from Ray, MLflow's ``gpu_i`` is the trial's ``cuda:i`` (the i-th id); a CPU trial reads no GPU; a
    trial on CUDA that Ray gave no GPU (an explicit ``device: cuda``) reads every GPU, as MLflow does."""
    run = trial_run(store)
    monitor = TrialSystemMetrics(run.run_id, run.uri, 60, gpu_ids, on_gpu, resumed=False)
    sample = monitor.collect_metrics()
    utilisation = [v[0] for k, v in sorted(sample.items()) if k.endswith("_utilization_percentage") and "gpu" in k]
    assert utilisation == (read if read is not None else [0, 10, 20, 30])
    assert telemetry.nvml_handles(["0", "GPU-aaa"]) == [0, 2]


@pytest.mark.slow
def test_every_trial_of_a_real_study_logs_system_metrics_and_peak_memory(tmp_path):
    """One tiny trial (seconds) through the real CLI with a 60 s interval: its run has the CPU and memory sample
    and its process's peak memory, both in sane ranges."""
    path = tiny_study(tmp_path, name="tele", grid=[{"variant": ["baseline"]}], seeds=[0], telemetry={"interval": 60})
    result = run_tuner("run", path, "--storage", tmp_path / "store", cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_state(tmp_path / "store" / "tele")
    client = MlflowClient(state.mlflow_uri)
    (run,) = [r for r in client.search_runs([state.experiment_id]) if r.data.tags.get("role") == "trial"]
    metrics = run.data.metrics
    assert run.info.end_time - run.info.start_time < 60_000  # shorter than the interval
    for key, (low, high) in HOST.items():
        assert steps(client, run.info.run_id, key) == [0], key
        assert low <= metrics[key] <= high, (key, metrics[key])
    assert metrics["system/cpu_utilization_percentage"] > 0  # the trial trained: not psutil's first-call 0
    assert 50 < metrics["start_rss_mb"] <= metrics["peak_rss_mb"] < 16_000  # torch and Ray are imported: > 50 MB
    assert "peak_gpu_memory_mb" not in metrics and run.data.tags["device"] == "cpu"


def test_a_gpu_nvml_cannot_name_costs_the_system_metrics_not_the_trial(store, four_gpus):
    """An id NVML does not know (here an unknown UUID): a warning, no ``system/...`` metrics, the peaks logged."""
    run = trial_run(store)
    with trial_telemetry(run, Telemetry(interval=60), torch.device("cpu"), ["GPU-zzz"], resumed=False):
        pass
    logged = MlflowClient(run.uri).get_run(run.run_id).data.metrics
    assert not [k for k in logged if k.startswith("system/")] and logged["peak_rss_mb"] > 0
