"""The report's per-seed paired table: pairs by seed within a setting, tests against scipy on the differences,
the paper's per-seed numbers beside ours only at the paper's λ, and the cost per step."""

import types

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tuner.report.paired_seeds import paired_report

PAPER = {
    "source": "Table X",
    "metric": "mse",
    "lam": 0.1,
    "values": {
        1: {"baseline": 0.3, "fisher": 0.2},
        2: {"baseline": 0.2, "fisher": 0.15},
        3: {"baseline": 0.5, "fisher": 0.25},
    },
}


def _task(paper=PAPER):
    return types.SimpleNamespace(REPORT_METRICS=("mse",), PAPER_PER_SEED=paper)


def _trials(values: dict, steps=10):
    """values: {(variant, lam, seed): mse}; time per training step 1 s for the baseline, 1.1 s for the others."""
    rows = []
    for (variant, lam, seed), mse in values.items():
        per_step = 1.0 if variant == "baseline" else 1.1
        rows.append(
            {
                "status": "FINISHED",
                "param_variant": variant,
                "param_lam": lam,
                "param_seed": seed,
                "param_steps": steps,
                "param_loss": "mse",
                "final_mse": mse,
                "final_time_total": per_step * steps + 2.0,
                "final_time_eval": 2.0,
                "final_time_loss": 0.5,
                "start_time": pd.Timestamp("2026-01-01 00:00:00") + pd.Timedelta(seconds=seed),
                "end_time": pd.Timestamp("2026-01-01 00:01:00") + pd.Timedelta(seconds=seed),
            }
        )
    return pd.DataFrame(rows)


def test_pairs_by_seed_and_tests_the_differences_like_scipy():
    base = {1: 0.33, 2: 0.21, 3: 0.52}
    fisher = {1: 0.20, 2: 0.16, 3: 0.30}
    trials = _trials(
        {
            **{("baseline", None, s): v for s, v in base.items()},
            **{("fisher", 0.1, s): v for s, v in fisher.items()},
            ("fisher", 1.0, 1): 0.4,
            ("fisher", 1.0, 2): 0.1,
        }
    )
    report = paired_report(trials, _task(), {"mse": "min"})
    at_paper = report.pairs[report.pairs["lam"] == 0.1].set_index("seed")
    assert list(at_paper.index) == [1, 2, 3]
    assert np.allclose(at_paper["delta"], [fisher[s] - base[s] for s in (1, 2, 3)])
    assert np.allclose(at_paper["paper_delta"], [-0.1, -0.05, -0.25])
    other = report.pairs[report.pairs["lam"] == 1.0]
    assert len(other) == 2 and other["paper_baseline"].isna().all()  # the paper's numbers are for λ = 0.1 only
    summary = report.summary.set_index("lam")
    delta = np.array([fisher[s] - base[s] for s in (1, 2, 3)])
    assert summary.loc[0.1, "t_p"] == pytest.approx(stats.ttest_rel(list(fisher.values()), list(base.values())).pvalue)
    assert summary.loc[0.1, "sign_p"] == pytest.approx(0.25)  # 3 of 3 the same sign: 2 * 0.5^3
    assert summary.loc[0.1, "better_in"] == "3 of 3" and summary.loc[1.0, "better_in"] == "1 of 2"
    assert summary.loc[0.1, "mean_delta"] == pytest.approx(delta.mean())
    assert summary.loc[0.1, "paper_t_p"] == pytest.approx(stats.ttest_1samp([-0.1, -0.05, -0.25], 0).pvalue)
    assert np.isnan(summary.loc[1.0, "paper_t_p"])
    cost = report.cost.set_index("variant")
    assert cost.loc["baseline", "train_s_per_step"] == pytest.approx(1.0)
    assert report.cost.set_index("lam").loc[0.1, "ratio_to_baseline_mean"] == pytest.approx(1.1)
    assert report.wall_s == pytest.approx(62.0)


def test_no_paper_numbers_no_table_and_equal_differences_are_no_test():
    trials = _trials(
        {("baseline", None, 1): 0.3, ("baseline", None, 2): 0.2, ("fisher", 0.1, 1): 0.2, ("fisher", 0.1, 2): 0.1}
    )
    assert paired_report(trials, types.SimpleNamespace(REPORT_METRICS=("mse",)), {"mse": "min"}) is None
    report = paired_report(trials, _task(), {})
    row = report.summary.iloc[0]
    assert np.isnan(row["t_p"]) and row["sign_p"] == pytest.approx(0.5) and "better_in" not in row
    markdown = report.markdown(lambda frame: "|".join(frame.columns))
    assert "paper: Δ" in markdown and "Table X" in markdown


def test_differences_equal_up_to_float32_rounding_are_no_t_test():
    """Accuracies computed in float32 (a real run's values: 11 of 500 more right in both seeds) differ by 6e-8
    once read as float64; that is rounding, so no t-test (its t would be ~1e6), while the sign test counts both."""
    trials = _trials(
        {
            ("baseline", None, 1): 0.6119999885559082,
            ("baseline", None, 2): 0.5680000185966492,
            ("fisher", 0.1, 1): 0.6340000033378601,
            ("fisher", 0.1, 2): 0.5899999737739563,
        }
    )
    row = paired_report(trials, _task(), {"mse": "max"}).summary.iloc[0]
    assert np.isnan(row["t_p"]) and row["sign_p"] == pytest.approx(0.5) and row["better_in"] == "2 of 2"


def test_small_real_differences_of_a_float64_metric_are_tested():
    """cvxpy_relu's MSE is float64: differences of ~1e-7 at a scale of 0.5 are hundreds of millions of float64
    steps, a real (if small) effect, not rounding; only float32 values get float32's coarser steps."""
    base = {1: 0.322, 2: 0.186, 3: 0.522, 4: 0.225, 5: 0.260}  # Table 9's baselines
    delta = {1: -1.0e-7, 2: -1.3e-7, 3: -0.8e-7, 4: -1.1e-7, 5: -0.9e-7}
    trials = _trials(
        {
            **{("baseline", None, s): v for s, v in base.items()},
            **{("fisher", 0.1, s): base[s] + delta[s] for s in base},
        }
    )
    row = paired_report(trials, _task(), {"mse": "min"}).summary.iloc[0]
    d = np.array([base[s] + delta[s] - base[s] for s in base])
    assert row["t_p"] == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue, rel=1e-9) and row["t_p"] < 1e-3
    assert row["sign_p"] == pytest.approx(0.0625) and row["better_in"] == "5 of 5"


def test_better_in_does_not_count_a_rounding_difference():
    """A seed whose float32 values differ by a rounding step is neither better nor worse, in the sign test and in
    "better in" alike."""
    base = np.float32([0.6119999885559082, 0.5680000185966492]).astype(float)
    tied = np.nextafter(np.float32(base), np.float32(1.0)).astype(float)  # one float32 step above
    trials = _trials(
        {("baseline", None, 1): base[0], ("baseline", None, 2): base[1]}
        | {
            ("fisher", 0.1, 1): tied[0],
            ("fisher", 0.1, 2): tied[1],
        }
    )
    row = paired_report(trials, _task(), {"mse": "max"}).summary.iloc[0]
    assert np.isnan(row["t_p"]) and np.isnan(row["sign_p"]) and row["better_in"] == "0 of 2"
