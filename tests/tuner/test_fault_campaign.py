"""A short fault campaign (benchmarks/fault_campaign.py --kills 3): the driver's process group SIGKILLed three
times, once in each window (during a resume's restore, in the first seconds after it, later), ``tuner resume``
after each; no attempt crashes, every planned trial finished once, with every step once, the Optuna storage holds
each finished search run's value, and no Ray process is left on the machine."""

import json
import subprocess
import sys

import pytest

from .helpers import REPO

pytestmark = pytest.mark.slow


def test_kills_in_every_window_leave_a_complete_study_and_no_ray_processes(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "fault_campaign.py"),
            "--kills",
            "3",
            "--seed",
            "3",
            "--windows",
            "later,restore,first",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = json.loads((tmp_path / "campaign.json").read_text())
    assert counts["kills"] == 3 and counts["kills_per_window"] == {"later": 1, "restore": 1, "first": 1}
    assert counts["crashes"] == [] and counts["finished"] == counts["planned"]
    assert counts["duplicated_runs"] == counts["runs_left_running"] == counts["runs_failed"] == 0
    assert counts["histories_with_missing_or_repeated_steps"] == 0 and counts["ray_processes_left"] == 0
    told = counts["optuna"]  # the search's Optuna storage agrees with its runs
    assert told["complete"] == counts["planned"]["search"] and told["left_running"] == 0
    assert told["finished_runs_not_told"] == told["runs_told_twice"] == told["complete_without_a_finished_run"] == 0
    assert told["values_differing_from_mlflow"] == 0
