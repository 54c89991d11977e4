"""Every command fails fast, in one line, on what it cannot reach: a dead tracking server behind export, report and
ui; an HTTPS server whose certificate MLflow would accept (so the probe accepts it too); a warm-start source whose
search never started; Ray's last-cluster file naming a cluster that is gone."""

import http.server
import os
import ssl
import subprocess
import threading
import time

import pytest

from tuner.errors import TrackingError
from tuner.state import OptunaRef, StudyState, save_state
from tuner.study import Study
from tuner.tracking import probe_tracking

from .helpers import free_port, run_tuner, tiny_study

STUDY = Study(name="gone", task="ranking", metric="valid_elementwise", grid=[{"variant": ["baseline"]}])


@pytest.mark.parametrize("command", ["export", "report", "ui"])
def test_commands_reading_a_dead_tracking_server_fail_in_seconds(tmp_path, command):
    uri = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "gone").mkdir()
    save_state(tmp_path / "gone", StudyState(study=STUDY, mlflow_uri=uri, experiment_id="1", parent_run_id="p"))
    started = time.monotonic()
    result = run_tuner(command, "gone", "--storage", tmp_path, timeout=60)
    assert result.returncode == 2 and time.monotonic() - started < 30
    assert result.stderr.startswith(f"tuner: error: no MLflow tracking server answers at {uri}")
    assert result.stderr.count("\n") == 1


@pytest.fixture
def https_server(tmp_path):
    """An HTTPS server with a self-signed certificate for 127.0.0.1 that answers /health."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()


def test_the_probe_checks_tls_as_mlflow_does(https_server, monkeypatch):
    url, cert = https_server
    for name in ("MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_INSECURE_TLS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(TrackingError, match="CERTIFICATE_VERIFY_FAILED.*MLFLOW_TRACKING_SERVER_CERT_PATH"):
        probe_tracking(url)
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(cert))
    probe_tracking(url)  # the server's own certificate, as MLflow's client is told to trust it
    monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH")
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    probe_tracking(url)


def test_a_warm_start_source_whose_search_never_started_is_refused_before_anything_runs(tmp_path):
    store = tmp_path / "store"
    source = Study(
        name="early",
        task="ranking",
        metric="valid_elementwise",
        grid=[{"variant": ["baseline"]}],
        search={"trials": 2, "space": {"lam": {"log": [0.01, 1.0]}}, "fixed": {"variant": "fisher"}},
    )
    (store / "early").mkdir(parents=True)
    save_state(
        store / "early",
        StudyState(
            study=source,
            mlflow_uri="sqlite:////unused",
            experiment_id="1",
            parent_run_id="p",
            phases={"grid": "started"},
            optuna=OptunaRef(url=f"sqlite:///{store / 'early' / 'optuna.db'}", study="early"),
        ),
    )
    path = tiny_study(
        tmp_path,
        name="warm",
        grid=[],
        search={
            "trials": 2,
            "fixed": {"variant": "fisher"},
            "space": {"lam": {"log": [0.01, 1.0]}},
            "warm_start": ["early"],
        },
    )
    result = run_tuner("run", path, "--storage", store, timeout=120)
    assert (
        result.returncode == 2 and "search.warm_start: study 'early' has not started its search phase" in result.stderr
    )
    assert not (store / "warm").exists()


def test_a_stale_last_cluster_file_is_named_instead_of_hanging(tmp_path):
    """``ray start --head`` writes ``ray_current_cluster`` in Ray's temp folder; a head that crashed leaves it
    behind. A short RAY_TMPDIR (Ray's sockets live there) keeps this test's file out of other runs' way."""
    ray_tmp = f"/tmp/rt{os.getpid()}"
    os.makedirs(f"{ray_tmp}/ray", exist_ok=True)
    with open(f"{ray_tmp}/ray/ray_current_cluster", "w") as f:
        f.write(f"127.0.0.1:{free_port()}")
    path = tiny_study(tmp_path, name="stale")
    started = time.monotonic()
    result = run_tuner(
        "run", path, "--storage", tmp_path / "store", "--address", "auto", timeout=120, env={"RAY_TMPDIR": ray_tmp}
    )
    assert result.returncode == 2 and time.monotonic() - started < 60, result.stderr[-2000:]
    assert "--address auto: Ray's last-cluster file" in result.stderr and "ray stop" in result.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.slow
def test_without_an_address_a_stale_last_cluster_file_is_ignored_and_a_local_ray_runs_the_study(tmp_path):
    """Ray's own default would join the cluster the file names and retry it for minutes (seen: over 12 minutes
    at 1 % CPU); the tuner starts a local Ray, as its help says."""
    ray_tmp = f"/tmp/rl{os.getpid()}"
    os.makedirs(f"{ray_tmp}/ray", exist_ok=True)
    with open(f"{ray_tmp}/ray/ray_current_cluster", "w") as f:
        f.write(f"127.0.0.1:{free_port()}")
    path = tiny_study(tmp_path, name="local", grid=[{"variant": ["baseline"]}], seeds=[0])
    result = run_tuner("run", path, "--storage", tmp_path / "store", timeout=300, env={"RAY_TMPDIR": ray_tmp})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "study 'local' done" in result.stdout
