"""Tune's study folder is written atomically (tuner/atomic_files.py); a damaged Tune state is refused, not restarted."""

import json
import os
import pickle
import subprocess
import sys
import textwrap

import pyarrow.fs as pafs
import pytest

from tuner.atomic_files import atomic_filesystem
from tuner.errors import StudyStateError
from tuner.phases import check_tune_state, checkpoint_period

from .helpers import REPO


def test_a_writer_killed_mid_file_leaves_the_previous_version(tmp_path):
    target = tmp_path / "experiment_state-x.json"
    target.write_text('{"old": true}')
    script = textwrap.dedent(f"""
        import os, signal
        from tuner.atomic_files import atomic_filesystem
        stream = atomic_filesystem().open_output_stream({str(target)!r})
        stream.write(b'{{"new": ')  # half a JSON document, then the process dies as a SIGKILLed driver does
        stream.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO)
    assert result.returncode == -9
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # only the hidden partial file is left
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [target.name]


def test_complete_writes_and_copies_land_whole_and_leave_no_partial_files(tmp_path):
    source = tmp_path / "staging"
    (source / "run_trial_1").mkdir(parents=True)
    (source / "experiment_state-x.json").write_text('{"trials": 2}')
    (source / "run_trial_1" / "result.json").write_bytes(os.urandom(3_000_000))
    fs = pickle.loads(pickle.dumps(atomic_filesystem()))  # as trials on Ray workers receive it
    for _ in range(2):  # the second copy replaces every file
        pafs.copy_files(str(source), str(tmp_path / "study"), destination_filesystem=fs)
    copied = sorted(p.relative_to(tmp_path / "study").as_posix() for p in (tmp_path / "study").rglob("*"))
    assert copied == ["experiment_state-x.json", "run_trial_1", "run_trial_1/result.json"]
    assert (tmp_path / "study" / "run_trial_1" / "result.json").read_bytes() == (
        source / "run_trial_1" / "result.json"
    ).read_bytes()
    fs.delete_dir(str(tmp_path / "study" / "run_trial_1"))
    assert not (tmp_path / "study" / "run_trial_1").exists()


def test_an_unreadable_tune_state_is_refused_in_one_line(tmp_path):
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": []}')
    check_tune_state(tmp_path)
    (tmp_path / "experiment_state-2026-01-02_00-00-00.json").write_text("")  # the newest one is what Tune reads
    with pytest.raises(StudyStateError, match=r"cannot be read .*remove the phase folder"):
        check_tune_state(tmp_path)


def test_only_searches_save_tune_state_on_every_step():
    assert checkpoint_period("search") == "0"
    assert checkpoint_period("grid") == checkpoint_period("replicate") == "auto"


def test_tune_dropping_a_checkpoint_empties_its_folder_and_removes_any_other(tmp_path):
    """A state saved before the drop may still name the checkpoint: its folder must stay (Tune refuses a missing
    path), empty (the disk is freed); any other folder goes."""
    trial = tmp_path / "run_trial_1"
    (trial / "checkpoint_000002" / "sub").mkdir(parents=True)
    (trial / "checkpoint_000002" / "state.pt").write_bytes(b"x" * 1000)
    (trial / "checkpoint_000002" / "sub" / "more").write_bytes(b"y")
    (trial / "other").mkdir()
    (trial / "other" / "f").write_bytes(b"z")
    fs = pickle.loads(pickle.dumps(atomic_filesystem()))
    fs.delete_dir(str(trial / "checkpoint_000002"))
    assert (trial / "checkpoint_000002").is_dir() and not any((trial / "checkpoint_000002").iterdir())
    fs.delete_dir(str(trial / "other"))
    assert not (trial / "other").exists()
