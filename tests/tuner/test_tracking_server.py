"""A tracking server that is not there, or that dies during a study: one line naming it, nothing half-written,
and ``tuner resume`` finishes the study once the server is back."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from tuner.state import load_state

from .helpers import TINY_PARAMS, TUNER, free_port, run_tuner, tiny_study

pytestmark = pytest.mark.slow


def test_a_tracking_server_that_is_not_there_is_one_line_in_seconds_and_nothing_is_written(tmp_path):
    """A typo in the port: MLflow's own retries once sat 4 min 16 s, then printed a traceback and left an empty
    study folder. The subprocess timeout (60 s, imports included) is the bound."""
    path = tiny_study(tmp_path)
    uri = f"http://127.0.0.1:{free_port()}"
    result = run_tuner("run", path, "--storage", tmp_path / "store", "--mlflow-uri", uri, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"tuner: error: no MLflow tracking server answers at {uri} ([Errno 111] Connection refused); start one with "
        "`mlflow server --host HOST --port PORT` or check --mlflow-uri"
    ]
    assert not (tmp_path / "store").exists()


def start_server(folder, port):
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'server.db'}",
        "--artifacts-destination",
        str(folder / "server-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server
        except OSError:
            assert server.poll() is None and time.time() < deadline, "mlflow server did not come up"
            time.sleep(0.5)


def stop(process):
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def test_a_server_dying_mid_study_stops_it_in_one_line_and_resume_finishes_it(tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    path = tiny_study(tmp_path, name="dies", params={**TINY_PARAMS, "steps": 200, "eval_every": 20})
    store = tmp_path / "store"
    server = start_server(tmp_path, port)
    driver = subprocess.Popen(
        [TUNER, "run", path, "--storage", store, "--mlflow-uri", uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # wait until a trial has logged a few steps
            if (store / "dies" / "study.json").exists():
                state = load_state(store / "dies")
                runs = MlflowClient(uri).search_runs([state.experiment_id], "tags.role = 'trial'")
                if any(r.data.metrics.get("valid_elementwise") is not None for r in runs):
                    break
            assert driver.poll() is None, driver.communicate()
            time.sleep(0.5)
        else:
            pytest.fail("no trial logged a step")
        stop(server)
        out, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 2, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"tuner: error: MLflow tracking at {uri} failed while") and "tuner resume dies" in last
    # Tune logs the failed trials' tracebacks (from the workers); the driver itself ends with the one line
    assert "tuner/runner.py" not in err and "TuneError" not in err
    assert any(line.startswith("[FAILED]") and uri in line for line in out.splitlines()), out[-3000:]

    server = start_server(tmp_path, port)  # the same store, back
    try:
        result = run_tuner("resume", "dies", "--storage", store, timeout=400)
        assert result.returncode == 0, result.stderr[-3000:]
        state = load_state(store / "dies")
        client = MlflowClient(uri)
        runs = client.search_runs([state.experiment_id], "tags.role = 'trial'")
        assert len(runs) == 4 and len({r.data.tags["trial_id"] for r in runs}) == 4
        assert all(r.info.status == "FINISHED" for r in runs)
        for run in runs:
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "valid_elementwise"))
            assert steps == list(range(20, 201, 20)), f"steps lost or logged twice in {run.info.run_name}"
    finally:
        stop(server)
