"""The one-call GPU check (benchmarks/gpu_check.py, issue 21 item 5) cannot rot between the rare GPU sessions.

Its smoke run (the same code at tiny sizes on the CPU) runs here with ``import ray``, ``import mlflow`` and
``import optuna`` made to fail in every process it starts (a ``sitecustomize`` on PYTHONPATH), as on the GPU
machine, which has none of them; the tests then check the JSON's structure and the figures' sanity. The section
budget (cut, not measured, failed, warnings) is tested on its own, fast.
"""

import json
import os
import subprocess
import sys
import time
import warnings

import pytest

from benchmarks.gpu.budget import NotMeasured, run_section
from benchmarks.gpu.packed import Running, at_common_step, stop_trials, trial_result

from .helpers import REPO

pytestmark = pytest.mark.xdist_group("test_gpu_check")  # one worker runs the module: the smoke run once

BLOCKER = """
import importlib.abc, os, sys

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ray", "mlflow", "optuna"):
            with open(os.environ["GPU_CHECK_BLOCKED_LOG"], "a") as log:
                log.write(name + "\\n")
            raise ImportError(f"{name} is blocked: the GPU machine has no Ray, MLflow or Optuna")
        return None

sys.meta_path.insert(0, Blocker())
"""
ACCURACIES = ("valid_exact", "valid_elementwise", "test_exact", "test_elementwise")


def test_a_section_past_its_budget_is_cut_and_keeps_what_it_measured():
    def measure(section):
        section.figures = ["first row"]
        for _ in range(2):
            warnings.warn("slow kernel", stacklevel=1)
        time.sleep(5)
        section.figures.append("never")

    start = time.monotonic()
    figures, record = run_section("demo", 0.5, measure)
    assert time.monotonic() - start < 2
    assert figures == ["first row"] and record["status"] == "cut" and 0.5 <= record["seconds"] < 2
    [warned] = record["warnings"]
    assert warned["count"] == 2 and warned["warning"].startswith("UserWarning: slow kernel (test_gpu_check.py:")


def test_a_section_that_cannot_measure_is_null_with_its_reason_and_a_failure_is_named():
    def not_here(section):
        raise NotMeasured("needs a CUDA device")

    figures, record = run_section("demo", 5, not_here)
    assert figures is None and record["status"] == "not measured" and record["reason"] == "needs a CUDA device"

    def broken(section):
        section.figures = [1]
        raise ValueError("bad row\nmore")

    figures, record = run_section("demo", 5, broken)
    assert figures == [1] and record["status"] == "failed" and record["error"] == "ValueError: bad row"


def test_the_reproduction_compares_variants_at_the_last_step_every_trial_reached():
    def curve(*points):
        return {"curve": [{"step": s, "seconds": 0.0, "test_exact": a} for s, a in points]}

    trials = {
        "baseline": {"0": curve((2, 0.1), (4, 0.2), (6, 0.3)), "1": curve((2, 0.3), (4, 0.4))},
        "hessian": {"0": curve((2, 0.5), (4, 0.7)), "1": curve((2, 0.5), (4, 0.5), (6, 0.9))},
    }
    common = at_common_step(trials)  # step 6 is missing from one trial of each variant
    assert common["step"] == 4 and common["variants"] == {
        "baseline": {"test_exact": pytest.approx(0.3)},  # (0.2 + 0.4) / 2
        "hessian": {"test_exact": pytest.approx(0.6)},  # (0.7 + 0.5) / 2
    }
    assert at_common_step({"baseline": {"0": {"curve": []}}}) is None


def test_a_trial_ended_by_the_budget_keeps_its_last_report_and_a_failed_one_says_why(tmp_path):
    def running(name, code, log=""):
        (tmp_path / f"{name}.log").write_text(log)
        process = subprocess.Popen([sys.executable, "-c", code])
        return Running(name, process, tmp_path / f"{name}.ready", tmp_path / f"{name}.out", tmp_path / f"{name}.log")

    (tmp_path / "slow.out").write_text(json.dumps({"finished": False, "steps": 40, "curve": [{"step": 40}]}))
    slow = running("slow", "import time; time.sleep(60)")
    failed = running("failed", "raise SystemExit(3)", log="Traceback (most recent call last):\nValueError: boom\n")
    failed.process.wait()
    start = time.monotonic()
    stop_trials([slow, failed])
    assert time.monotonic() - start < 3
    assert trial_result(slow) == {
        "finished": False,
        "steps": 40,
        "curve": [{"step": 40}],
        "stopped": True,
        "error": None,
    }
    result = trial_result(failed)
    assert result["steps"] == 0 and not result["stopped"] and result["error"] == "exit code 3: ValueError: boom"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke run, with Ray, MLflow and Optuna unimportable in it and in every process it starts."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    (tmp / "guard").mkdir()
    (tmp / "guard" / "sitecustomize.py").write_text(BLOCKER)
    log = tmp / "blocked.log"
    log.write_text("")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp / "guard"), os.environ.get("PYTHONPATH")])),
        "GPU_CHECK_BLOCKED_LOG": str(log),
    }
    guard = subprocess.run([sys.executable, "-c", "import mlflow"], env=env, capture_output=True, text=True)
    assert "mlflow is blocked" in guard.stderr  # the guard works, so a passing run below means something
    log.write_text("")
    out = tmp / "out"
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "gpu_check.py"),
        "--smoke",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    figures = json.loads((out / "gpu_check.json").read_text())
    return figures, (out / "gpu_check.md").read_text(), log.read_text(), sorted(p.name for p in out.iterdir())


@pytest.mark.slow
def test_the_smoke_run_never_imports_ray_mlflow_or_optuna(smoke):
    figures, _, blocked, files = smoke
    assert blocked == "" and figures["imported"] == []
    assert files == ["gpu_check.json", "gpu_check.md"]  # what comes back from the GPU machine: two files
    assert figures["smoke"] is True and figures["device"].startswith("CPU") and figures["cuda"] is None


@pytest.mark.slow
def test_every_section_ran_within_its_budget_and_sync_counts_are_null_with_a_reason_on_the_cpu(smoke):
    figures, _, _, _ = smoke
    sections = figures["sections"]
    assert list(sections) == [  # the figure a call cut short must not lose first
        "reproduction",
        "packing",
        "ranking_steps",
        "shortest_path_steps",
        "sync_counts",
        "solver",
        "determinism",
    ]
    for name, record in sections.items():
        expected = "not measured" if name == "sync_counts" else "ok"
        assert record["status"] == expected, (name, record)
        assert 0 <= record["seconds"] <= record["budget_s"] and isinstance(record["warnings"], list)
    assert figures["sync_counts"] is None and "CUDA" in sections["sync_counts"]["reason"]


@pytest.mark.slow
def test_every_loss_family_and_variant_is_stepped(smoke):
    figures, _, _, _ = smoke
    ranking = figures["ranking_steps"]
    assert {r["loss"] for r in ranking} == {"neuralsort", "softsort", "logistic_dsn", "cauchy_dsn"}
    shortest = figures["shortest_path_steps"]
    assert {r["loss"] for r in shortest} == {"ss_loss", "ss_algorithm", "po_fy", "bellman_ford"}
    for row in ranking + shortest:
        assert "error" not in row and set(row["step_ms"]) == set(row["lam"]) and "baseline" in row["lam"]
        assert all(ms > 0 for ms in row["step_ms"].values()) and row["vs_baseline"]["baseline"] == 1.0
        assert all(f is None for f in row["failures"].values())
    assert {r["loss"]: sorted(r["lam"]) for r in shortest}["bellman_ford"] == ["baseline", "fisher"]
    assert next(r for r in ranking if r["loss"] == "neuralsort")["lam"] == {
        "baseline": None,
        "hessian": 0.01,
        "fisher": 0.1,
    }  # Table 4, n = 5


@pytest.mark.slow
def test_the_device_and_cpu_solvers_give_equal_paths(smoke):
    rows = smoke[0]["solver"]
    assert {(r["grids"], r["costs"]) for r in rows} == {
        (g, c) for g in (4, 8) for c in ("terrain", "perturbed", "zeros")
    }
    assert all(r["paths_equal"] and r["costs_equal"] and r["grids_differing"] == 0 for r in rows)
    assert all(r["device_paths_per_s"] > 0 and r["cpu_paths_per_s"] > 0 for r in rows)


@pytest.mark.slow
def test_determinism_is_checked_on_several_losses(smoke):
    figures = smoke[0]["determinism"]
    runs = figures["runs"]
    assert len({r["loss"] for r in runs}) >= 4 and {r["task"] for r in runs} == {"ranking", "shortest_path"}
    assert all(r["identical"] and r["differing"] == [] and r["compared"] > 5 and r["steps"] > 0 for r in runs)
    assert figures["cost"] is None and "CUDA" in figures["cost_reason"]


@pytest.mark.slow
def test_packed_trials_each_train_in_their_own_process_over_a_window(smoke):
    packing = smoke[0]["packing"]
    trials = [packing["alone"], *packing["packed"]]
    assert len(packing["packed"]) == packing["trials"] == 2 and [t["seed"] for t in packing["packed"]] == [0, 1]
    for trial in trials:
        assert trial["error"] is None and trial["finished"] and not trial["stopped"]
        assert trial["steps_in_window"] > 0 and trial["steps_per_s"] > 0
        assert trial["window_s"] >= packing["window_s"]  # each stops at its first report after the window
        assert trial["peak_allocated_mb"] is None  # GPU memory: null on the CPU, never a stand-in
    assert packing["memory"].startswith("not measured")
    assert len(packing["speed_vs_alone"]) == 2 and packing["aggregate_vs_alone"] > 0


@pytest.mark.slow
def test_the_reproduction_reports_steps_and_accuracies_per_variant_and_seed(smoke):
    reproduction = smoke[0]["reproduction"]
    protocol = reproduction["protocol"]
    assert protocol["loss"] == "neuralsort" and protocol["n"] == 5
    assert protocol["lams"] == {"baseline": None, "fisher": 0.1, "hessian": 0.01}  # Table 4, n = 5
    assert set(reproduction["trials"]) == {"baseline", "fisher", "hessian"}
    for seeds in reproduction["trials"].values():
        assert set(seeds) == {"0"}
        for trial in seeds.values():
            steps = [point["step"] for point in trial["curve"]]
            assert trial["error"] is None and trial["steps"] == steps[-1] > 0 and steps == sorted(set(steps))
            assert all(0 <= point[k] <= 1 for point in trial["curve"] for k in ACCURACIES)
    common = reproduction["at_common_step"]
    assert common["step"] == min(s["0"]["steps"] for s in reproduction["trials"].values())
    assert all(0 <= v[k] <= 1 for v in common["variants"].values() for k in ACCURACIES)


@pytest.mark.slow
def test_the_markdown_has_a_block_per_section(smoke):
    _, table, _, _ = smoke
    for heading in ("ranking_steps", "shortest_path_steps", "solver", "determinism", "packing", "reproduction"):
        assert f"## {heading}" in table
    assert "| sync_counts | not measured: needs a CUDA device" in table
    assert "NL Hessian / baseline" in table and "paths equal" in table and "Mean over seeds at step" in table
