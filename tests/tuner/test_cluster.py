"""A two-node local Ray cluster (``ray start --head`` + ``ray start --address``) runs a study via ``--address``."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from .helpers import run_tuner, tiny_study

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_node_cluster(tmp_path):
    """Head and worker, one CPU each, with Ray's default token authentication on every process."""
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    common = ["--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
                        f"--temp-dir={temp}", *common], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common], env=env, check=True,
                       capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_study_runs_on_both_nodes_through_address(tmp_path, two_node_cluster):
    address, env = two_node_cluster
    path = tiny_study(tmp_path, params={"n": 3, "loss": "neuralsort", "steps": 60, "batch_size": 4, "eval_every": 20,
                                        "eval_sets": 6})
    result = run_tuner("run", path, "--storage", tmp_path / "shared", "--address", address, env=env, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((tmp_path / "shared" / "tiny" / "study.json").read_text())
    runs = MlflowClient(state["mlflow_uri"]).search_runs([state["experiment_id"]], "tags.role = 'trial'")
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    nodes = {r.data.tags["ray_node"] for r in runs}
    assert len(nodes) == 2, "two concurrent one-CPU trials must use both one-CPU nodes"


def test_wrong_address_is_a_quick_clear_error(tmp_path):
    path = tiny_study(tmp_path)
    result = run_tuner("run", path, "--storage", tmp_path / "store", "--address", f"127.0.0.1:{free_port()}", timeout=60)
    assert result.returncode == 2
    assert "tuner: error: no Ray cluster answers at 127.0.0.1:" in result.stderr and "ray start --head" in result.stderr
    assert not (tmp_path / "store").exists()
