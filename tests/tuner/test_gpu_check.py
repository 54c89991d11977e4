"""The one-call GPU check (benchmarks/gpu_check.py) runs end to end at smoke sizes on the CPU, so it cannot rot
between the rare GPU sessions: every section measures something, the packing section through the real
``tuner run`` with fractional resources, and the JSON and Markdown are written."""

import json
import math
import subprocess
import sys

import pytest

from .helpers import REPO

pytestmark = pytest.mark.slow


def test_smoke_run_fills_every_section(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "gpu_check.py"),
            "--smoke",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads((tmp_path / "gpu_check.json").read_text())
    assert figures["errors"] == {} and figures["smoke"] is True and figures["device"].startswith("CPU")

    ranking = figures["ranking_steps"]
    assert {(r["loss"], r["n"]) for r in ranking} == {
        (name, 3) for name in ("neuralsort", "softsort", "logistic_dsn", "cauchy_dsn")
    }
    assert all(r["baseline_s"] > 0 and r["fisher_ratio"] > 0 and r["hessian_ratio"] > 0 for r in ranking)
    assert [r["samples"] for r in figures["shortest_path_steps"]] == [3, 10, 30]
    assert all({"hessian_ratio", "fisher_ratio"} <= set(r) for r in figures["shortest_path_steps"])
    assert [r["grids"] for r in figures["solver"]] == [4, 8]
    assert all(r["paths_per_s"] > 0 and r["scipy_paths_per_s"] > 0 for r in figures["solver"])

    budget = figures["paper_budget"]
    assert math.isclose(budget["extrapolated_100k_h"], 100_000 / budget["steps_per_s"] / 3600)

    packing = figures["packing"]
    assert len(packing["alone"]["trials"]) == 1 and [t["seed"] for t in packing["packed"]["trials"]] == [0, 1, 2, 3]
    assert len(packing["packed_speed_vs_alone"]) == 4 and all(s > 0 for s in packing["packed_speed_vs_alone"])

    determinism = figures["determinism"]
    assert determinism["identical"] and "valid_elementwise" in determinism["compared"]

    table = (tmp_path / "gpu_check.md").read_text()
    assert "fisher / baseline" in table and "Packing 4 trials" in table and "identical metrics" in table
