"""``python -m tuner.report.gradients`` (Figure 6): draws its panels for any ranking loss, refuses other losses."""

import subprocess
import sys

import pytest

from tuner.report.gradients import fisher_bound, main


def test_draws_the_six_panels_and_reports_the_fisher_bound(tmp_path, capsys):
    assert main(["--loss", "softsort", "--loss", "cauchy_dsn", "--points", "15", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "figure6_gradients.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "bound at N = 1 is 1.581" in printed and printed.count("fisher") == 2 and printed.count("baseline") == 4
    peaks = [
        float(line.split()[-1])
        for line in printed.splitlines()
        if line.strip().endswith(tuple("0123456789")) and "fisher" in line
    ]
    assert all(p <= fisher_bound(1, 5, 0.1) + 1e-9 for p in peaks)


def test_a_loss_that_is_not_a_ranking_loss_and_a_bad_spread_are_refused(tmp_path):
    with pytest.raises(ValueError, match="'mse' is not a ranking loss"):
        main(["--loss", "mse", "--points", "3", "--out", str(tmp_path)])
    result = subprocess.run(
        [sys.executable, "-m", "tuner.report.gradients", "--spread", "1"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "give --spread twice" in result.stderr
