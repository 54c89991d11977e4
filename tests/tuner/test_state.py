"""The typed study state: saved and loaded whole, old untyped states upgraded, a damaged one refused in one line,
storage locations the tuner cannot write refused before anything is written, killed writers' leftovers cleared."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tuner.atomic_files import remove_partials, replace_durably
from tuner.errors import StudyStateError
from tuner.state import STATE_FILE, OptunaRef, StudyState, load_state, save_state, study_dir
from tuner.study import Study

from .helpers import REPO, run_tuner, tiny_study

STUDY = Study(name="s", task="ranking", metric="valid_elementwise", grid=[{"variant": ["baseline"]}])


def test_saved_state_loads_back_equal(tmp_path):
    state = StudyState(
        study=STUDY,
        mlflow_uri="sqlite:////x/mlflow.db",
        experiment_id="3",
        parent_run_id="abc",
        phases={"grid": "done"},
        failed={"grid": 0},
        best={"lam": 0.1},
        optuna=OptunaRef(url="sqlite:////x/optuna.db", study="s"),
    )
    save_state(tmp_path, state)
    assert load_state(tmp_path) == state and load_state(tmp_path).execution_id == "abc"
    assert not [p for p in tmp_path.iterdir() if p.name != STATE_FILE]  # no temporary file left


def test_a_state_of_the_untyped_version_is_upgraded(tmp_path):
    old = {
        "study": STUDY.model_dump(mode="json"),
        "mlflow_uri": "sqlite:////x/mlflow.db",
        "experiment_id": "1",
        "parent_run_id": "p",
        "git_commit": "c",
        "git_dirty": "False",
        "phases": {"search": "started"},
        "failed": {},
        "best": None,
        "optuna_storage": "sqlite:////x/optuna.db",
        "optuna_study": "s",
    }
    (tmp_path / STATE_FILE).write_text(json.dumps(old))
    state = load_state(tmp_path)
    assert state.optuna == OptunaRef(url="sqlite:////x/optuna.db", study="s") and state.phases == {"search": "started"}


@pytest.mark.parametrize("text", ["", "{", '{"study": 1}', "[]"])
def test_a_damaged_state_is_one_line(tmp_path, text):
    (tmp_path / STATE_FILE).write_text(text)
    with pytest.raises(StudyStateError, match=r"the study state .*study.json cannot be read") as error:
        load_state(tmp_path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("storage", ["s3://bucket/studies", "gs://b", "hdfs://nn/x", "file:///tmp/x"])
def test_object_store_uris_are_refused(storage):
    with pytest.raises(StudyStateError, match="object-store URIs are not supported: mount the bucket"):
        study_dir(storage, "s")


def test_run_refuses_an_s3_storage_in_one_line_and_writes_nothing(tmp_path):
    path = tiny_study(tmp_path, name="s3study")
    result = run_tuner("run", path, "--storage", "s3://bucket/studies", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "object-store URIs are not supported" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s3study.yaml"]  # no folder named 's3:'


def test_killed_writers_leftovers_are_cleared(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        from tuner.atomic_files import atomic_filesystem
        stream = atomic_filesystem().open_output_stream({str(tmp_path / "phase" / "experiment_state-x.json")!r})
        stream.write(b'half')
        stream.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", script], cwd=REPO).returncode == -9
    (tmp_path / "phase" / "trial").mkdir()
    (tmp_path / "phase" / "trial" / ".result.json.0123.partial").write_text("x")
    (tmp_path / "phase" / "keep.json").write_text("{}")
    assert remove_partials(tmp_path / "phase") == 2
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "phase",
        "phase/keep.json",
        "phase/trial",
    ]
    assert remove_partials(tmp_path / "missing") == 0


def test_replace_durably_syncs_the_file_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    replace_durably(tmp_path / "study.json", b"{}")
    assert (tmp_path / "study.json").read_bytes() == b"{}"
    assert synced[-1] == str(tmp_path) and synced[0].endswith(".partial")
