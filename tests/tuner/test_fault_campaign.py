"""A short fault campaign (benchmarks/fault_campaign.py --kills 2): the driver's process group SIGKILLed twice at
random moments, ``tuner resume`` after each; at the end every planned trial finished once, with every step once,
and no Ray process is left on the machine."""
import json
import subprocess
import sys

import pytest

from .helpers import REPO

pytestmark = pytest.mark.slow


def test_two_random_kills_leave_a_complete_study_and_no_ray_processes(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "fault_campaign.py"), "--kills", "2",
                             "--seed", "3", "--out", str(tmp_path)], capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = json.loads((tmp_path / "campaign.json").read_text())
    assert counts["kills"] == 2 and counts["finished"] == counts["planned"]
    assert counts["duplicated_runs"] == counts["runs_left_running"] == counts["runs_failed"] == 0
    assert counts["histories_with_missing_or_repeated_steps"] == 0 and counts["ray_processes_left"] == 0
    told = counts["optuna"]  # the search's Optuna storage agrees with its runs
    assert told["complete"] == counts["planned"]["search"] and told["left_running"] == 0
    assert told["finished_runs_not_told"] == told["runs_told_twice"] == told["complete_without_a_finished_run"] == 0
