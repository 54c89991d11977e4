"""A two-node local Ray cluster (``ray start --head`` + ``ray start --address``) runs a study via ``--address``."""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from mlflow.tracking import MlflowClient

from tasks.mnist_digits import load_digits, write_idx
from tuner.state import load_state

from .helpers import EXAMPLE, TINY_PARAMS, TUNER, free_port, install_example, mlflow_server, run_tuner, tiny_study

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
RAY = str(Path(sys.executable).parent / "ray")


@contextlib.contextmanager
def local_cluster(head_cpus: int, workers: list[str], head_gpus: int = 0):
    """A head (``head_cpus`` CPUs, ``head_gpus`` GPUs declared to Ray: fake ones on a machine without) and one
    one-CPU worker per name in ``workers``, each worker also offering a
    custom resource of its name (so a test knows which node is which), with Ray's default token authentication
    (a fresh token per cluster).

    Every node runs as a foreground ``ray start --block`` process in its own process group, so a test can kill
    exactly one node, and teardown stops exactly this cluster (``ray stop`` would stop every Ray instance on the
    machine, a running study's too). Yields (address, env, {name: (process, node id)}).
    """
    # Token authentication with a token of this cluster's own, given to every node and driver through the
    # environment: ``ray start --head`` refuses to start without one, and ~/.ray/auth_token (Ray's default place)
    # exists only on a machine where someone generated it.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    common = ["--disable-usage-stats", "--block"]
    nodes = []
    try:
        nodes.append(
            subprocess.Popen(
                [
                    RAY,
                    "start",
                    "--head",
                    f"--port={port}",
                    "--include-dashboard=false",
                    f"--temp-dir={temp}",
                    f"--num-cpus={head_cpus}",
                    f"--num-gpus={head_gpus}",
                    *common,
                ],
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_for_port(port)  # the head's GCS listens (ray.init against a closed port hangs)
        address, ids = f"127.0.0.1:{port}", {}
        for count, name in enumerate(workers, start=2):  # one at a time: workers joining at once can clash here
            nodes.append(
                subprocess.Popen(
                    [
                        RAY,
                        "start",
                        f"--address={address}",
                        "--num-cpus=1",
                        f"--resources={json.dumps({name: 1})}",
                        *common,
                    ],
                    env=env,
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            ids = wait_for_nodes(address, count, env)
        yield address, env, {name: (process, ids[name]) for name, process in zip(workers, nodes[1:])}
    finally:
        for node in reversed(nodes):
            stop_node(node)
        shutil.rmtree(temp, ignore_errors=True)


def stop_node(node: subprocess.Popen) -> None:
    """Stop one node now: SIGKILL its process group (``ray start``, GCS, raylet, agents) and every descendant in a
    group of its own (Ray's workers). A graceful SIGTERM took a head about 30 s, its processes lingering in Ray's
    exit handler; nothing here needs a graceful stop: the cluster's temp folder is removed after."""
    try:
        descendants = psutil.Process(node.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    for process in descendants:
        with contextlib.suppress(psutil.Error):
            process.kill()
    node.wait()


@pytest.fixture(scope="class")
def two_node_cluster():
    """Head and worker, one CPU each, for the tests of one class."""
    with local_cluster(1, ["worker"]) as (address, env, _):
        yield address, env


def wait_for_port(port: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"nothing listens on port {port}: the Ray head did not start")


def wait_for_nodes(address: str, count: int, env: dict, timeout: float = 120) -> dict[str, str]:
    """Wait until ``count`` nodes are alive; return {custom resource name: node id} of the nodes that have one."""
    probe = (
        f"import json, ray; ray.init(address={address!r}, logging_level='ERROR'); "
        "nodes = [n for n in ray.nodes() if n['Alive']]; "
        "print(json.dumps([len(nodes), {k: n['NodeID'] for n in nodes for k in n['Resources'] "
        "if k not in ('CPU', 'GPU', 'memory', 'object_store_memory') and not k.startswith('node:')}]))"
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
        if result.returncode == 0:
            alive, ids = json.loads(result.stdout.strip().splitlines()[-1])
            if alive >= count:
                return ids
        time.sleep(1)
    raise RuntimeError(f"the local Ray cluster at {address} did not reach {count} node(s)")


@pytest.mark.xdist_group("two_node_cluster")
class TestOnOneTwoNodeCluster:
    """Two studies, each with its own driver, storage and MLflow server, on one two-node cluster: started for
    the class, stopped after its last test (an xdist group keeps both tests on one worker)."""

    def test_study_runs_on_both_nodes_and_reports_from_the_mlflow_server(self, tmp_path, two_node_cluster):
        """The README's cluster recipe: trials on both nodes log to an ``mlflow server``; export and report read it.
        The data folder is named on the driver only (``NEWTON_MNIST_DIR``): the trials on both nodes read it (the
        driver hands it to every trial), where they would otherwise have trained on the bundled substitute."""
        address, env = two_node_cluster
        digits = tmp_path / "mnist"
        digits.mkdir()
        pools = load_digits(None)
        write_idx(digits / "train-images-idx3-ubyte.gz", np.concatenate([pools.train[0], pools.valid[0]]))
        write_idx(
            digits / "train-labels-idx1-ubyte.gz", np.concatenate([pools.train[1], pools.valid[1]]).astype(np.uint8)
        )
        write_idx(digits / "t10k-images-idx3-ubyte.gz", pools.test[0])
        write_idx(digits / "t10k-labels-idx1-ubyte.gz", pools.test[1].astype(np.uint8))
        driver_env = {**env, "NEWTON_MNIST_DIR": str(digits)}  # the nodes were started without it
        path = tiny_study(
            tmp_path,
            params={"n": 3, "loss": "neuralsort", "steps": 60, "batch_size": 4, "eval_every": 20, "eval_sets": 6},
            max_concurrent=2,
        )
        shared = tmp_path / "shared"
        # Without --mlflow-uri, trials on both nodes would write one SQLite file over shared storage: refused.
        refused = run_tuner("run", path, "--storage", shared, "--address", address, env=env, timeout=120)
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert (
            refused.stderr.strip()
            .splitlines()[-1]
            .startswith("tuner: error: this Ray cluster has 2 nodes, and their trials cannot share one SQLite file")
        )
        assert "--mlflow-uri" in refused.stderr and not shared.exists()
        with mlflow_server(tmp_path) as url:
            result = run_tuner(
                "run", path, "--storage", shared, "--address", address, "--mlflow-uri", url, env=driver_env, timeout=400
            )
            assert result.returncode == 0, result.stderr[-3000:]
            state = load_state(shared / "tiny")
            assert state.mlflow_uri == url and not (shared / "tiny" / "mlflow.db").exists()
            client = MlflowClient(url)
            runs = client.search_runs([state.experiment_id], "tags.role = 'trial'")
            assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
            nodes = {r.data.tags["ray_node"] for r in runs}
            assert len(nodes) == 2, "two concurrent one-CPU trials must use both one-CPU nodes"
            assert {r.data.params["data_source"] for r in runs} == {f"mnist-idx:{digits}"}

            exported = run_tuner("export", "tiny", "--storage", shared, "--out", tmp_path / "export")
            assert exported.returncode == 0, exported.stderr[-3000:]
            history = pd.read_parquet(tmp_path / "export" / "history.parquet")
            steps = history[history.metric == "valid_elementwise"].groupby("run_id").step.apply(list)
            assert len(steps) == 4 and all(s == [20, 40, 60] for s in steps)  # read concurrently, nothing lost

            reported = run_tuner("report", "tiny", "--storage", shared, "--out", tmp_path / "report")
            assert reported.returncode == 0, reported.stderr[-3000:]
            attached = {a.path for a in client.list_artifacts(state.parent_run_id, "report")}
            assert {"report/report.md", "report/results.csv", "report/curves_steps.png"} <= attached
        assert (tmp_path / "server-artifacts").is_dir()  # the artifacts went to the server, not to the driver's disk

    def test_a_user_package_runs_on_workers_that_lack_it(self, tmp_path, two_node_cluster):
        """The example package (examples/topk_lab) is installed for the driver alone (its PYTHONPATH); neither node of
        the cluster can import it (checked first). ``tuner run --address`` ships it to the workers (Ray's
        ``py_modules``) and resolves its entry points to import paths for them: every trial runs and lands in MLflow."""
        address, env = two_node_cluster
        site = install_example(tmp_path / "site")
        probe = (
            f"import ray, importlib.util; ray.init(address={address!r}, logging_level='ERROR')\n"
            "import time\n@ray.remote(num_cpus=1, scheduling_strategy='SPREAD')\ndef where():\n"
            "    time.sleep(1)\n"
            "    return ray.get_runtime_context().get_node_id(), importlib.util.find_spec('topk_lab') is not None\n"
            "print(sorted(set(ray.get([where.remote() for _ in range(8)]))))"
        )
        seen = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
        assert seen.returncode == 0, seen.stderr[-2000:]
        found = eval(seen.stdout.strip().splitlines()[-1])
        assert len({node for node, _ in found}) == 2 and not any(has for _, has in found), found
        driver_env = {**env, "PYTHONPATH": str(site)}
        with mlflow_server(tmp_path) as url:
            result = run_tuner(
                "run",
                EXAMPLE / "studies" / "topk.yaml",
                "--scale",
                "smoke",
                "--storage",
                tmp_path / "shared",
                "--address",
                address,
                "--mlflow-uri",
                url,
                env=driver_env,
                timeout=900,
            )
            assert result.returncode == 0, result.stderr[-3000:]
            state = load_state(tmp_path / "shared" / "topk_digits-smoke")
            runs = MlflowClient(url).search_runs([state.experiment_id], "tags.role = 'trial'")
            assert len(runs) == 5 and all(r.info.status == "FINISHED" for r in runs)
            assert len({r.data.tags["ray_node"] for r in runs}) == 2
            assert all(
                r.data.tags["code.loss"].startswith("entry point | topk_lab.loss:DiffSortTopKLoss") for r in runs
            )


def test_wrong_address_is_a_quick_clear_error(tmp_path):
    path = tiny_study(tmp_path)
    result = run_tuner(
        "run", path, "--storage", tmp_path / "store", "--address", f"127.0.0.1:{free_port()}", timeout=60
    )
    assert result.returncode == 2
    assert "tuner: error: no Ray cluster answers at 127.0.0.1:" in result.stderr and "ray start --head" in result.stderr
    assert not (tmp_path / "store").exists()


def test_a_worker_node_lost_mid_trial(tmp_path):
    """Three nodes: a head with no CPU for trials, and workers a and b. The worker running a trial is killed
    (SIGKILL of its whole process group, as a lost host) mid-trial: the trial continues from its last checkpoint on
    the other node, its MLflow run stays one run with every evaluation step logged exactly once, and the study
    finishes."""
    with local_cluster(0, ["node_a", "node_b"]) as (address, env, workers):
        path = tiny_study(
            tmp_path,
            name="lost",
            seeds=[0],
            grid=[{"variant": ["fisher"], "lam": [0.1]}],
            params={**TINY_PARAMS, "steps": 400, "eval_every": 40},
            max_failures=2,
            max_concurrent=1,
        )
        with mlflow_server(tmp_path) as url:
            driver = subprocess.Popen(
                [
                    TUNER,
                    "run",
                    str(path),
                    "--storage",
                    str(tmp_path / "shared"),
                    "--address",
                    address,
                    "--mlflow-uri",
                    url,
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            try:
                client = MlflowClient(url)
                state_file = tmp_path / "shared" / "lost" / "study.json"
                deadline = time.time() + 300
                while True:  # until the trial has logged its second evaluation (a checkpoint exists)
                    assert driver.poll() is None and time.time() < deadline, "the trial never reached step 80"
                    runs = (
                        client.search_runs([load_state(state_file.parent).experiment_id], "tags.role = 'trial'")
                        if state_file.exists()
                        else []
                    )
                    if (
                        runs
                        and max(
                            (m.step for m in client.get_metric_history(runs[0].info.run_id, "valid_elementwise")),
                            default=0,
                        )
                        >= 80
                    ):
                        break
                    time.sleep(0.5)
                (run,) = runs
                victim = next(name for name, (_, node) in workers.items() if node == run.data.tags["ray_node"])
                os.killpg(workers[victim][0].pid, signal.SIGKILL)
                out, _ = driver.communicate(timeout=600)
            finally:
                if driver.poll() is None:
                    os.killpg(driver.pid, signal.SIGKILL)
            assert driver.returncode == 0, out[-3000:]
            (run,) = client.search_runs([run.info.experiment_id], "tags.role = 'trial'")
            survivor = next(node for name, (_, node) in workers.items() if name != victim)
            assert run.info.status == "FINISHED" and run.data.tags["ray_node"] == survivor
            assert run.data.tags["ray_nodes"].split(",") == [workers[victim][1], survivor]
            assert 40 <= int(run.data.tags["resumed_from_step"]) < 400
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "valid_elementwise"))
            assert steps == list(range(40, 401, 40)), "an evaluation step was lost or logged twice"


def test_trials_use_exactly_the_gpus_ray_gives_them(tmp_path):
    """A head declaring one (fake) GPU: four ``gpu: 0.25`` trials run at once, each given GPU 0 by Ray (tag
    ``ray_gpu_ids``), and the report's count says four trials shared it; a ``gpu: 0`` trial is given none and, with
    ``device: auto``, runs on the CPU (Ray leaves CUDA_VISIBLE_DEVICES alone for it, so it would otherwise take the
    node's first GPU, unaccounted)."""
    from tuner.export import study_tables
    from tuner.report.consistency import gpu_sharing

    with local_cluster(4, [], head_gpus=1) as (address, env, _):
        packed = tiny_study(
            tmp_path,
            name="packed",
            params={**TINY_PARAMS, "steps": 60, "eval_every": 20},
            grid=[{"variant": ["baseline"]}],
            seeds=[0, 1, 2, 3],
            resources={"cpu": 1, "gpu": 0.25},
            max_concurrent=4,
        )
        cpu_only = tiny_study(
            tmp_path, name="cpu_only", grid=[{"variant": ["baseline"]}], seeds=[0], resources={"cpu": 1, "gpu": 0}
        )
        for path in (packed, cpu_only):
            result = run_tuner("run", path, "--storage", tmp_path / "store", "--address", address, env=env, timeout=600)
            assert result.returncode == 0, result.stderr[-3000:]
    state = load_state(tmp_path / "store" / "packed")
    trials, _ = study_tables(state.mlflow_uri, state.experiment_id, state.execution_id)
    assert list(trials["ray_gpu_ids"]) == ["0"] * 4
    assert trials["start_time"].max() < trials["end_time"].min(), "the four trials did not share the GPU at once"
    assert list(gpu_sharing(trials)) == [4, 4, 4, 4]
    assert set(trials["param_device"]) == {"auto"} and set(trials["device"]) == {"cpu"}  # no CUDA on this machine
    state = load_state(tmp_path / "store" / "cpu_only")
    (single,) = study_tables(state.mlflow_uri, state.experiment_id, state.execution_id)[0].itertuples()
    assert single.ray_gpu_ids == "" and single.param_device == "cpu" and single.device == "cpu"
