"""Two executions of one study on one real ``mlflow server`` (two users, or a rerun into another ``--storage``):
the second one's orphan sweep leaves the first one's live trial alone, and each report and export reads its own
execution's trials only, saying that the other exists.

The trials are those of a small user task (by import path) whose last step waits for a file the test creates, so
the first execution's trial is provably live while the second execution runs and sweeps."""

import subprocess
import textwrap
import time

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tuner.state import load_state

from .helpers import GATED_TASK, TUNER, mlflow_server, run_tuner

pytestmark = pytest.mark.slow


def study(folder, seeds, gate=None):
    path = folder / "shared.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "shared",
                "task": "gatelab:",
                "metric": "score",
                "mode": "max",
                "params": {"gate": str(gate) if gate else None},
                "seeds": seeds,
                "grid": [{"variant": ["baseline"]}],
                "max_concurrent": 2,
                "max_failures": 0,
            }
        )
    )
    return path


def test_two_executions_on_one_server_never_mix(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "gatelab.py").write_text(textwrap.dedent(GATED_TASK))
    env = {"PYTHONPATH": str(tmp_path / "code")}
    gate = tmp_path / "release"
    with mlflow_server(tmp_path) as url:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first = subprocess.Popen(
            [
                TUNER,
                "run",
                str(study(tmp_path / "a", [0], gate)),
                "--storage",
                str(tmp_path / "store-a"),
                "--mlflow-uri",
                url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**__import__("os").environ, **env},
        )
        client = MlflowClient(url)
        deadline = time.time() + 300
        while True:  # until the first execution's trial is live and has logged a step
            assert first.poll() is None and time.time() < deadline, "the first execution never got going"
            experiment = client.get_experiment_by_name("shared")
            runs = client.search_runs([experiment.experiment_id], "tags.role = 'trial'") if experiment else []
            if runs and runs[0].data.metrics:
                live = runs[0]
                break
            time.sleep(1)
        second = run_tuner(
            "run",
            study(tmp_path / "b", [0, 1]),
            "--storage",
            tmp_path / "store-b",
            "--mlflow-uri",
            url,
            timeout=600,
            env=env,
        )
        assert second.returncode == 0, second.stderr[-3000:]
        assert client.get_run(live.info.run_id).info.status == "RUNNING"  # not swept by the second execution
        assert "orphaned" not in client.get_run(live.info.run_id).data.tags
        gate.touch()
        out, err = first.communicate(timeout=600)
        assert first.returncode == 0, err[-3000:]
        assert client.get_run(live.info.run_id).info.status == "FINISHED"

        a, b = load_state(tmp_path / "store-a" / "shared"), load_state(tmp_path / "store-b" / "shared")
        assert a.experiment_id == b.experiment_id and a.execution_id != b.execution_id
        for store, state, other, seeds in ((tmp_path / "store-a", a, b, 1), (tmp_path / "store-b", b, a, 2)):
            assert run_tuner("export", "shared", "--storage", store, "--out", store / "x", env=env).returncode == 0
            exported = pd.read_parquet(store / "x" / "trials.parquet")
            assert len(exported) == seeds and set(exported["execution_id"]) == {state.execution_id}
            reported = run_tuner("report", "shared", "--storage", store, env=env)
            assert reported.returncode == 0, reported.stderr[-3000:]
            table = pd.read_csv(store / "shared" / "report" / "results.csv")
            assert list(table["seeds"]) == [seeds]  # never three "seeds" from two executions
            assert table["score_mean"].iloc[0] == pytest.approx(0.53 + 0.05 * (seeds - 1))
            text = (store / "shared" / "report" / "report.md").read_text()
            assert f"Execution: parent run {state.execution_id}" in text
            assert f"also holds 1 other execution(s) of this study name, not read here: {other.execution_id}" in text
