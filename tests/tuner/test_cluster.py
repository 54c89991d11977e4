"""A two-node local Ray cluster (``ray start --head`` + ``ray start --address``) runs a study via ``--address``."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from .helpers import EXAMPLE, free_port, install_example, mlflow_server, run_tuner, tiny_study

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture
def two_node_cluster(tmp_path):
    """Head and worker, one CPU each, with Ray's default token authentication on every process.

    Both run as foreground ``ray start --block`` processes in their own process groups, so teardown stops
    exactly this cluster (``ray stop`` would stop every Ray instance on the machine, a running study's too).
    """
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    common = ["--num-cpus=1", "--disable-usage-stats", "--block"]
    nodes = []
    try:
        nodes.append(subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
                                       f"--temp-dir={temp}", *common], env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port(port)  # the head's GCS listens (ray.init against a closed port hangs)
        nodes.append(subprocess.Popen([RAY, "start", f"--address=127.0.0.1:{port}", *common], env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_nodes(f"127.0.0.1:{port}", 2, env)
        yield f"127.0.0.1:{port}", env
    finally:
        for node in reversed(nodes):
            os.killpg(node.pid, signal.SIGTERM)
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def wait_for_port(port: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"nothing listens on port {port}: the Ray head did not start")


def wait_for_nodes(address: str, count: int, env: dict, timeout: float = 120) -> None:
    probe = (f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
             "print(sum(n['Alive'] for n in ray.nodes()))")
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
        if result.returncode == 0 and int(result.stdout.strip().splitlines()[-1]) >= count:
            return
        time.sleep(1)
    raise RuntimeError(f"the local Ray cluster at {address} did not reach {count} node(s)")


def test_study_runs_on_both_nodes_and_reports_from_the_mlflow_server(tmp_path, two_node_cluster):
    """The README's cluster recipe: trials on both nodes log to an ``mlflow server``; export and report read it."""
    address, env = two_node_cluster
    path = tiny_study(tmp_path, params={"n": 3, "loss": "neuralsort", "steps": 60, "batch_size": 4, "eval_every": 20,
                                        "eval_sets": 6})
    shared = tmp_path / "shared"
    # Without --mlflow-uri, trials on both nodes would write one SQLite file over shared storage: refused.
    refused = run_tuner("run", path, "--storage", shared, "--address", address, env=env, timeout=120)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "tuner: error: this Ray cluster has 2 nodes, and their trials cannot share one SQLite file")
    assert "--mlflow-uri" in refused.stderr and not shared.exists()
    with mlflow_server(tmp_path) as url:
        result = run_tuner("run", path, "--storage", shared, "--address", address, "--mlflow-uri", url, env=env,
                           timeout=400)
        assert result.returncode == 0, result.stderr[-3000:]
        state = json.loads((shared / "tiny" / "study.json").read_text())
        assert state["mlflow_uri"] == url and not (shared / "tiny" / "mlflow.db").exists()
        client = MlflowClient(url)
        runs = client.search_runs([state["experiment_id"]], "tags.role = 'trial'")
        assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
        nodes = {r.data.tags["ray_node"] for r in runs}
        assert len(nodes) == 2, "two concurrent one-CPU trials must use both one-CPU nodes"

        exported = run_tuner("export", "tiny", "--storage", shared, "--out", tmp_path / "export")
        assert exported.returncode == 0, exported.stderr[-3000:]
        history = pd.read_parquet(tmp_path / "export" / "history.parquet")
        steps = history[history.metric == "valid_elementwise"].groupby("run_id").step.apply(list)
        assert len(steps) == 4 and all(s == [20, 40, 60] for s in steps)  # read concurrently, nothing lost

        reported = run_tuner("report", "tiny", "--storage", shared, "--out", tmp_path / "report")
        assert reported.returncode == 0, reported.stderr[-3000:]
        attached = {a.path for a in client.list_artifacts(state["parent_run_id"], "report")}
        assert {"report/report.md", "report/results.csv", "report/curves_steps.png"} <= attached
    assert (tmp_path / "server-artifacts").is_dir()  # the artifacts went to the server, not to the driver's disk


def test_wrong_address_is_a_quick_clear_error(tmp_path):
    path = tiny_study(tmp_path)
    result = run_tuner("run", path, "--storage", tmp_path / "store", "--address", f"127.0.0.1:{free_port()}", timeout=60)
    assert result.returncode == 2
    assert "tuner: error: no Ray cluster answers at 127.0.0.1:" in result.stderr and "ray start --head" in result.stderr
    assert not (tmp_path / "store").exists()


def test_a_user_package_runs_on_workers_that_lack_it(tmp_path, two_node_cluster):
    """The example package (examples/topk_lab) is installed for the driver alone (its PYTHONPATH); neither node of
    the cluster can import it (checked first). ``tuner run --address`` ships it to the workers (Ray's
    ``py_modules``) and resolves its entry points to import paths for them: every trial runs and lands in MLflow."""
    address, env = two_node_cluster
    site = install_example(tmp_path / "site")
    probe = (f"import ray, importlib.util; ray.init(address={address!r}, logging_level='ERROR')\n"
             "import time\n@ray.remote(num_cpus=1, scheduling_strategy='SPREAD')\ndef where():\n"
             "    time.sleep(1)\n"
             "    return ray.get_runtime_context().get_node_id(), importlib.util.find_spec('topk_lab') is not None\n"
             "print(sorted(set(ray.get([where.remote() for _ in range(8)]))))")
    seen = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert seen.returncode == 0, seen.stderr[-2000:]
    found = eval(seen.stdout.strip().splitlines()[-1])
    assert len({node for node, _ in found}) == 2 and not any(has for _, has in found), found
    driver_env = {**env, "PYTHONPATH": str(site)}
    with mlflow_server(tmp_path) as url:
        result = run_tuner("run", EXAMPLE / "studies" / "topk.yaml", "--scale", "smoke", "--storage",
                           tmp_path / "shared", "--address", address, "--mlflow-uri", url, env=driver_env, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        state = json.loads((tmp_path / "shared" / "topk_digits-smoke" / "study.json").read_text())
        runs = MlflowClient(url).search_runs([state["experiment_id"]], "tags.role = 'trial'")
        assert len(runs) == 5 and all(r.info.status == "FINISHED" for r in runs)
        assert len({r.data.tags["ray_node"] for r in runs}) == 2
        assert all(r.data.tags["code.loss"].startswith("entry point | topk_lab.loss:DiffSortTopKLoss") for r in runs)
