"""Time to read a study's metric history (``tuner export`` / ``tuner report``) from a real MLflow server:
one request at a time against ``HISTORY_FETCHERS`` concurrent requests.

MLflow has no bulk metric-history call, so reading a study costs one request per run x metric. The benchmark
logs RUNS trial runs with METRICS metrics of STEPS steps each into a fresh SQLite store, serves it with
``mlflow server`` on 127.0.0.1, and times ``study_tables`` (median of REPS after one warm-up), in one process.

    python benchmarks/export_history.py [--runs 100]
"""

from __future__ import annotations

import argparse
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

import tuner.export as export
from tuner.tracking import sqlite_uri

METRICS, STEPS, REPS = 10, 20, 3


EXECUTION = "bench-execution"  # the parent run id every trial run of one execution carries


def fill_store(uri: str, runs: int) -> str:
    client = MlflowClient(uri)
    experiment = client.create_experiment("bench")
    for i in range(runs):
        run = client.create_run(
            experiment,
            tags={"role": "trial", "phase": "grid", "trial_id": f"t{i:04d}", "mlflow.parentRunId": EXECUTION},
        )
        metrics = [Metric(f"metric_{k}", float(i * k + s), 0, s) for k in range(METRICS) for s in range(STEPS)]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run.info.run_id, metrics=metrics[start : start + 1000])
        client.set_terminated(run.info.run_id)
    return experiment


def serve(uri: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "4",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("mlflow server did not start")


def timed(uri: str, experiment: str, fetchers: int) -> tuple[float, int]:
    """Median seconds to read the study, and the number of history rows read."""
    export.HISTORY_FETCHERS = fetchers  # used for server URIs only; SQLite is always read by one thread
    export.study_tables(uri, experiment, EXECUTION)  # warm-up
    times = []
    for _ in range(REPS):
        start = time.perf_counter()
        _, history = export.study_tables(uri, experiment, EXECUTION)
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(history)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = sqlite_uri(Path(folder))
        experiment = fill_store(store, args.runs)
        server, url = serve(store)
        try:
            print(
                f"# {platform.machine()}, {args.runs} runs x {METRICS} metrics x {STEPS} steps, "
                f"mlflow server (4 workers) on 127.0.0.1; median of {REPS} after warm-up"
            )
            local, rows_local = timed(store, experiment, 1)
            serial, rows = timed(url, experiment, 1)
            pooled, rows_pooled = timed(url, experiment, 8)
            assert rows_local == rows == rows_pooled == args.runs * METRICS * STEPS
            print(f"SQLite file read directly (one thread): {local:.2f} s")
            print(
                f"mlflow server, one request at a time: {serial:.2f} s; 8 concurrent: {pooled:.2f} s "
                f"({serial / pooled:.2f}x)"
            )
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
