"""The cluster tracking recipe: ``mlflow server`` on a real PostgreSQL database (started by the test), with many
trials writing at once: nothing lost, one run per trial, and export and report read it back."""

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tuner.state import load_state

from .helpers import TINY_PARAMS, mlflow_server, run_tuner, tiny_study
from .postgres import postgres_bin, postgres_server

pytestmark = pytest.mark.slow


@pytest.fixture
def tracking_server(tmp_path):
    if postgres_bin() is None:
        pytest.fail("this test needs Debian's postgresql package (installed by .ci/run)")
    with postgres_server() as database:
        with mlflow_server(tmp_path, backend=database, workers=2) as url:
            yield url, database


def test_eight_concurrent_trials_log_everything_once_to_postgres(tmp_path, tracking_server):
    url, database = tracking_server
    params = {**TINY_PARAMS, "steps": 60, "eval_every": 5}
    path = tiny_study(
        tmp_path,
        name="pg",
        params=params,
        seeds=[0, 1, 2, 3],
        grid=[{"variant": ["baseline"]}, {"variant": ["fisher"], "lam": [0.1]}],
        resources={"cpu": 0.25},
        max_concurrent=8,
    )
    result = run_tuner("run", path, "--storage", tmp_path / "store", "--mlflow-uri", url, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_state(tmp_path / "store" / "pg")
    assert state.mlflow_uri == url
    client = MlflowClient(url)
    runs = client.search_runs([state.experiment_id], "tags.role = 'trial'")
    assert len(runs) == 8 and len({r.data.tags["trial_id"] for r in runs}) == 8
    assert all(r.info.status == "FINISHED" for r in runs)
    starts = sorted(r.info.start_time for r in runs)
    ends = sorted(r.info.end_time for r in runs)
    assert starts[-1] < ends[0], "the 8 trials did not all run at once"

    # every metric point, counted in the database itself
    query = (
        "select r.run_uuid, count(*) from metrics m join runs r on r.run_uuid = m.run_uuid "
        f"where r.experiment_id = {state.experiment_id} and m.key = 'valid_elementwise' group by r.run_uuid"
    )
    rows = subprocess.run(["psql", database, "-At", "-c", query], capture_output=True, text=True, check=True).stdout
    per_run = dict(line.split("|") for line in rows.strip().splitlines())
    trial_ids = {r.info.run_id for r in runs}
    assert set(per_run) == trial_ids and set(per_run.values()) == {"12"}  # steps 5, 10, ..., 60: none lost or twice

    exported = run_tuner("export", "pg", "--storage", tmp_path / "store", "--out", tmp_path / "export")
    assert exported.returncode == 0, exported.stderr[-3000:]
    history = pd.read_parquet(tmp_path / "export" / "history.parquet")
    points = history[history.metric == "valid_elementwise"].groupby("run_id").step.apply(sorted)
    assert len(points) == 8 and all(p == list(range(5, 61, 5)) for p in points)
    metrics_per_run = history.groupby("run_id").metric.nunique()
    assert (metrics_per_run == metrics_per_run.max()).all() and metrics_per_run.max() >= 10
    reported = run_tuner("report", "pg", "--storage", tmp_path / "store")
    assert reported.returncode == 0, reported.stderr[-3000:]
    table = pd.read_csv(tmp_path / "store" / "pg" / "report" / "results.csv")
    assert list(table["seeds"]) == [4, 4]


DB_SECRET, HTTP_SECRET = "Pg-s3cret-8c1e", "Http-s3cret-77fa"


@pytest.fixture
def secured_tracking_server(tmp_path):
    """The same recipe on a PostgreSQL server that needs a password over TCP (as a shared one does)."""
    if postgres_bin() is None:
        pytest.fail("this test needs Debian's postgresql package (installed by .ci/run)")
    with postgres_server(password=DB_SECRET) as database:
        with mlflow_server(tmp_path, backend=database, workers=2) as url:
            yield url, database


def test_search_keeps_its_optuna_study_on_the_same_postgres_server_and_no_credential_is_written(
    tmp_path, secured_tracking_server
):
    """The cluster recipe's Optuna storage: a database of its own (``optuna``) on the tracking's PostgreSQL server,
    given as the README's recipe gives it, with its password in the URL; the tracking URI carries a user and a
    password too. Neither password is written anywhere: grepped in every file of the study folder (state, Tune's
    pickled searcher, checkpoints, report), both databases' dumps, the server's artifacts and Ray's session logs.
    A second study of the same name is refused there before anything is written."""
    import optuna

    url, database = secured_tracking_server
    optuna_url = database.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + "/optuna"
    assert DB_SECRET in optuna_url
    secret_url = url.replace("http://", f"http://alice:{HTTP_SECRET}@")
    path = tiny_study(
        tmp_path,
        name="pgsearch",
        grid=[],
        resources={"cpu": 0.5},
        max_concurrent=3,
        search={
            "trials": 3,
            "fixed": {"variant": "fisher"},
            "space": {"lam": {"log": [0.01, 100]}},
            "replicate": False,
        },
    )
    ray_tmp = f"/tmp/rs{os.getpid()}"
    result = run_tuner(
        "run",
        path,
        "--storage",
        tmp_path / "store",
        "--mlflow-uri",
        secret_url,
        "--optuna-storage",
        optuna_url,
        timeout=900,
        env={"RAY_TMPDIR": ray_tmp},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_tuner("report", "pgsearch", "--storage", tmp_path / "store").returncode == 0
    state = load_state(tmp_path / "store" / "pgsearch")
    plain = optuna_url.replace(f":{DB_SECRET}@", "@")
    assert state.optuna.url == plain and state.mlflow_uri == url
    trials = optuna.load_study(study_name="pgsearch", storage=optuna_url).trials
    runs = MlflowClient(url).search_runs([state.experiment_id], "tags.role = 'trial'")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert sorted(t.user_attrs["mlflow_run_id"] for t in trials) == sorted(r.info.run_id for r in runs)

    dumps = b"".join(
        subprocess.run(
            [str(postgres_bin() / "pg_dump"), database.rsplit("/", 1)[0] + f"/{name}"], capture_output=True, check=True
        ).stdout
        for name in ("mlflow", "optuna")
    )
    assert b"pgsearch" in dumps  # the dumps hold the study
    written = [p for root in (tmp_path, Path(ray_tmp)) for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".pkl" for p in written) and any(p.name == "report.md" for p in written)
    for secret in (DB_SECRET, HTTP_SECRET):
        assert secret.encode() not in dumps
        leaked = [p for p in written if p.name != "pwfile" and secret.encode() in p.read_bytes()]
        assert not leaked, f"{secret} written to {leaked}"
    shutil.rmtree(ray_tmp, ignore_errors=True)

    again = run_tuner("run", path, "--storage", tmp_path / "other", "--mlflow-uri", url, "--optuna-storage", optuna_url)
    assert again.returncode == 2 and "already holds a study named 'pgsearch'" in again.stderr
    assert again.stderr.strip().count("\n") == 0 and not (tmp_path / "other").exists()
    assert DB_SECRET not in again.stderr
