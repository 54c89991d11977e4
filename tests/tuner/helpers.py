"""Helpers for the tuner tests: tiny study files and the real ``tuner`` command."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from tuner.state import StudyState, load_state

TUNER = str(Path(sys.executable).parent / "tuner")
REPO = Path(__file__).resolve().parents[2]

TINY_PARAMS = {"n": 3, "loss": "neuralsort", "steps": 4, "batch_size": 4, "eval_every": 2, "eval_sets": 6}


def tiny_study(folder: Path, name: str = "tiny", **overrides) -> Path:
    """A real ranking study at the smallest size that still trains and evaluates. One trial at a time (one Ray
    worker process, reused, instead of two that each import torch and MLflow): a test that needs trials running
    together says ``max_concurrent`` itself."""
    study = {
        "name": name,
        "task": "ranking",
        "metric": "valid_elementwise",
        "mode": "max",
        "params": dict(TINY_PARAMS),
        "grid": [{"variant": ["baseline"]}, {"variant": ["fisher"], "lam": [0.1]}],
        "seeds": [0, 1],
        "resources": {"cpu": 1},
        "max_concurrent": 1,
        "max_failures": 0,
    }
    study.update(overrides)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def state_of(store: Path, name: str) -> StudyState:
    """The saved state of study ``name`` in ``store`` (its typed model)."""
    return load_state(Path(store) / name)


def run_tuner(*args, timeout=300, env=None, cwd=None):
    return subprocess.run(
        [TUNER, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(command: list, probe_url: str, timeout: float = 300):
    """Run a server ``command`` in its own process group until ``probe_url`` answers; stop the group after."""
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(probe_url, timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, f"{command[0]} did not come up"
                time.sleep(0.5)
        yield
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


@contextlib.contextmanager
def mlflow_server(folder: Path, backend: str | None = None, workers: int | None = None):
    """A real ``mlflow server`` (served artifacts under ``folder``) on 127.0.0.1, as a cluster's head runs it; its
    backend store is ``backend`` (a database URI) or a SQLite file in ``folder``."""
    url = f"http://127.0.0.1:{free_port()}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend or f"sqlite:///{(folder / 'server.db').resolve()}",
        "--artifacts-destination",
        str((folder / "server-artifacts").resolve()),
        "--host",
        "127.0.0.1",
        "--port",
        url.rsplit(":", 1)[1],
        *(["--workers", str(workers)] if workers else []),
    ]
    with serving(command, f"{url}/health"):
        yield url


EXAMPLE = REPO / "examples" / "topk_lab"


def install_example(target: Path) -> Path:
    """pip-install the example user package (``examples/topk_lab``, with its entry points) into a private folder,
    not into this environment: putting the folder on PYTHONPATH gives it to one process (the driver) alone."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
    )
    return target


# A user task (by import path, e.g. ``gatelab:``) whose score is a closed form of its config, so a test knows the
# right answer, and whose last step waits until the file named by ``gate`` exists, so a test holds a trial live.
GATED_TASK = '''
    """A task whose last step waits until the file named by ``gate`` exists."""
    import os
    import time

    LOSS_KIND = "ranking"
    DEFAULTS = {"loss": "neuralsort", "variant": "baseline", "lam": None, "seed": 0, "steps": 3, "gate": None,
                "lr": 1e-3}
    METRICS = ("score", "time_total")
    REPORT_METRICS = ("score",)


    def describe(config):
        return {**DEFAULTS, **config}


    def check(config):
        unknown = set(config) - set(DEFAULTS)
        if unknown:
            raise KeyError(f"gated: unknown keys {sorted(unknown)}")


    def total_steps(config):
        return describe(config)["steps"]


    def train(config, report, resume=None):
        cfg = describe(config)
        step = resume["step"] if resume else 0
        while step < cfg["steps"]:
            step += 1
            if step == cfg["steps"] and cfg["gate"]:
                while not os.path.exists(cfg["gate"]):
                    time.sleep(0.2)
            report({"step": step, "score": score(cfg) + 0.01 * step, "time_total": 0.1 * step}, {"step": step})


    def score(cfg):
        """0.5 + 0.1 seed, minus the squared distance of log10(lam) from 0 (fisher) or -1 (hessian)."""
        import math
        best = {"fisher": 0.0, "hessian": -1.0}.get(cfg["variant"])
        distance = 0.0 if best is None else (math.log10(cfg["lam"]) - best) ** 2
        return 0.5 + 0.1 * cfg["seed"] - distance / 10
'''
