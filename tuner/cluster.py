"""The Ray cluster a study runs on: joining it (or starting a local one), probing it, and checking it suits the
study (a node that can hold a trial, a tracking store that several nodes can share)."""

from __future__ import annotations

import os
import re
import socket

import ray

from .credentials import redact
from .errors import ClusterUnreachableError, InfeasibleResourcesError, TunerError
from .study import Study
from .tracking import tracking_env


def init_ray(address: str | None, py_modules: list[str] | None = None) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a fresh local Ray.

    Without an address Ray's own default is to join whatever cluster its last-cluster file names
    (``ray_current_cluster`` in Ray's temp folder, written by every ``ray start --head``), and to retry a dead one
    for minutes; the tuner starts a local instance instead (``address="local"``), as its help says. ``auto``
    reads that file: its address is probed first, and a dead one is refused in one line that names it."""
    os.environ.update(tracking_env())  # this driver's MLflow calls; trials get them through the runtime env
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return
    runtime_env = {"env_vars": worker_env(), **({"py_modules": py_modules} if py_modules else {})}
    if not address:
        ray.init(address="local", include_dashboard=False, runtime_env=runtime_env)
        return
    if address == "auto":
        _probe_last_cluster()
    else:
        probe(address)
    try:
        ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
    except (ConnectionError, RuntimeError) as error:
        raise ClusterUnreachableError(
            f"cannot join the Ray cluster at {address}: {str(error).splitlines()[0]} (a cluster with token "
            "authentication, Ray's default, needs RAY_AUTH_MODE=token and its token in ~/.ray/auth_token or "
            "RAY_AUTH_TOKEN on this machine too)"
        ) from None


DATA_VARIABLES = ("NEWTON_MNIST_DIR", "NEWTON_WARCRAFT_DIR", "NEWTON_CACHE_DIR")


def worker_env() -> dict[str, str]:
    """What every trial's process gets from the driver: the MLflow client settings, and the data folders the
    driver's paper-data check accepted (a worker node without them would silently train on the substitute)."""
    return {**tracking_env(), **{name: os.environ[name] for name in DATA_VARIABLES if os.environ.get(name)}}


def probe(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at HOST:PORT (ray.init retries for a long time)."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:(\d+)", address)
    if not match:
        return  # a name ray.init resolves itself
    try:
        socket.create_connection((match[1], int(match[2])), timeout=5).close()
    except OSError as error:
        raise ClusterUnreachableError(
            f"no Ray cluster answers at {address} ({error.strerror or error}); start one with "
            f"`ray start --head --port=PORT` or check --address / RAY_ADDRESS"
        ) from None


def _probe_last_cluster() -> None:
    from ray._private.utils import get_ray_address_file, read_ray_address  # Ray's own reading of the file

    last = read_ray_address()
    if not last:
        return  # ray.init("auto") then looks for a running instance and fails fast if there is none
    try:
        probe(last)
    except ClusterUnreachableError:
        raise ClusterUnreachableError(
            f"--address auto: Ray's last-cluster file {get_ray_address_file(None)} names {last}, where no Ray "
            f"cluster answers (a `ray start --head` that stopped or crashed): run `ray stop` (or delete that file), "
            f"pass the cluster's --address HOST:PORT, or leave --address out to start a local Ray"
        ) from None


def check_tracking_fits_cluster(uri: str) -> None:
    """Refuse an embedded SQLite store on a multi-node cluster: trials on several nodes would write one SQLite
    file over shared storage (NFS and the like), which SQLite does not support (locks fail, writes get lost)."""
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if uri.startswith("sqlite") and len(nodes) > 1:
        raise TunerError(
            f"this Ray cluster has {len(nodes)} nodes, and their trials cannot share one SQLite file "
            f"({redact(uri).removeprefix('sqlite:///')}) over shared storage: start an MLflow server on "
            f"one node (see README, 'Running on a Ray cluster') and pass --mlflow-uri http://HOST:PORT"
        )


def check_resources_fit(study: Study) -> None:
    """Refuse, in one line, a per-trial request that no node of the Ray cluster can hold: Tune would otherwise
    keep every trial PENDING forever. ``TUNER_WAIT_FOR_RESOURCES=1`` skips this on an autoscaling cluster,
    where such nodes are added on demand."""
    if os.environ.get("TUNER_WAIT_FOR_RESOURCES") == "1":
        return
    need = {"CPU": study.resources.cpu, "GPU": study.resources.gpu}
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    if any(all(have.get(key, 0) >= amount for key, amount in need.items()) for have in nodes):
        return
    listed = ", ".join(f"{int(have.get('CPU', 0))} CPU + {have.get('GPU', 0):g} GPU" for have in nodes)
    hint = f"; try `--scale {next(iter(study.scales))}`" if study.scales else ""
    raise InfeasibleResourcesError(
        f"study {study.name!r} asks {study.resources.cpu:g} CPU + {study.resources.gpu:g} GPU per trial "
        f"(`resources`), but no node of this Ray cluster has that (nodes: {listed}){hint}; on an autoscaling "
        f"cluster set TUNER_WAIT_FOR_RESOURCES=1"
    )
