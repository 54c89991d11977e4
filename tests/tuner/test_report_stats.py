"""The report's statistics against hand-computed values."""
import math

import pandas as pd
import pytest

from tuner.report.runtime import runtime_table
from tuner.report.stats import compare, formatted, results_table


def trials(rows):
    frame = pd.DataFrame(rows, columns=["param_loss", "param_variant", "param_lam", "param_seed", "final_test_exact",
                                        "final_time_total", "final_time_loss", "final_time_network", "final_time_data",
                                        "final_time_eval"])
    frame["status"] = "FINISHED"
    frame["param_lam"] = frame["param_lam"].astype("Float64")
    return frame


BASE = [("ns", "baseline", None, s, v, 10.0, 1.0, 8.0, 0.5, 0.5) for s, v in zip((0, 1, 2), (0.5, 0.6, 0.7))]
FISHER = [("ns", "fisher", 0.1, s, v, 11.0, 2.0, 8.0, 0.5, 0.5) for s, v in zip((0, 1, 2), (0.6, 0.8, 0.9))]


def test_paired_t_test_by_seed():
    """Differences (0.1, 0.2, 0.2): mean 1/6, sd 1/sqrt(300) -> t = 5.0 on 2 df, two-sided p = 0.03775;
    Cohen's d = mean / sd = 2.887."""
    t = trials(BASE + FISHER)
    result = compare(t[t.param_variant == "fisher"], t[t.param_variant == "baseline"], "test_exact")
    assert result["test"] == "paired t" and result["n_pairs"] == 3
    assert result["p"] == pytest.approx(0.037750, abs=1e-5)
    assert result["d"] == pytest.approx(5 / math.sqrt(3), rel=1e-6)


def test_welch_when_seeds_do_not_match():
    """(0.6, 0.8, 0.9, 0.7) on seeds 3..6 vs the baseline on 0..2: Welch's t-test, d over the pooled std."""
    other = [("ns", "fisher", 0.1, s, v, 11.0, 2.0, 8.0, 0.5, 0.5) for s, v in zip((3, 4, 5, 6), (0.6, 0.8, 0.9, 0.7))]
    t = trials(BASE + other)
    result = compare(t[t.param_variant == "fisher"], t[t.param_variant == "baseline"], "test_exact")
    from scipy import stats
    expected = stats.ttest_ind([0.6, 0.8, 0.9, 0.7], [0.5, 0.6, 0.7], equal_var=False).pvalue
    assert result["test"] == "Welch t" and result["p"] == pytest.approx(expected)
    assert result["d"] == pytest.approx((0.75 - 0.6) / math.sqrt((0.0166667 + 0.01) / 2), rel=1e-4)


def test_results_table_marks_significance_and_formats_like_the_paper():
    table = results_table(trials(BASE + FISHER), ["test_exact"])
    assert list(table["variant"]) == ["baseline", "fisher"]
    cells = formatted(table, ["test_exact"])
    assert cells.loc[cells.variant == "baseline", "test_exact"].iloc[0] == "60.00 ± 10.00"
    assert cells.loc[cells.variant == "fisher", "test_exact"].iloc[0] == "76.67 ± 15.28 *"
    assert cells.loc[cells.variant == "fisher", "test_exact p"].iloc[0] == "0.0377"  # p = 0.037749...


def test_runtime_ratio_to_baseline():
    table = runtime_table(trials(BASE + FISHER)).set_index("variant")
    assert table.loc["fisher", "ratio_to_baseline"] == pytest.approx(1.1)
    assert table.loc["fisher", "loss_newton_s"] == 2.0 and table.loc["baseline", "network_s"] == 8.0


def test_lambda_ablation_needs_two_lambdas_within_one_setting(tmp_path):
    """Table 2 runs λ 1000 for L1 and 3000 for L2: two λ in the study, but one per setting, so no ablation plot."""
    from tuner.report.plots import lambda_ablation

    one_per_setting = trials(BASE + FISHER + [("ss", "baseline", None, 0, 0.5, 1, 1, 1, 1, 1),
                                              ("ss", "fisher", 3.0, 0, 0.6, 1, 1, 1, 1, 1)])
    assert not lambda_ablation(one_per_setting, "test_exact", "t", tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
    swept = trials(BASE + FISHER + [(loss, variant, 1.0, s, v, *rest) for loss, variant, _, s, v, *rest in FISHER])
    assert lambda_ablation(swept, "test_exact", "t", tmp_path / "swept.png")
    assert (tmp_path / "swept.png").stat().st_size > 10_000


def test_markdown_cells_leave_every_kind_of_missing_value_blank():
    from tuner.report import markdown_table

    frame = pd.DataFrame({"tau": pd.array([1.0, None], dtype="Float64"), "loss": ["a|b", None],
                          "beta": [float("nan"), 10.0]})
    assert markdown_table(frame).splitlines()[2:] == ["| 1.0 | a\\|b |  |", "|  |  | 10.0 |"]


def test_newton_system_table_takes_the_whole_run_per_setting_and_lambda():
    from tuner.report.newton_system import newton_system_table

    frame = trials([("ns", "baseline", None, 0, 0.5, 1, 1, 1, 1, 1),
                    ("ns", "hessian", 0.1, 0, 0.5, 1, 1, 1, 1, 1), ("ns", "hessian", 0.1, 1, 0.5, 1, 1, 1, 1, 1),
                    ("ns", "hessian", 1.0, 0, 0.5, 1, 1, 1, 1, 1)])
    frame["run_id"] = ["b", "h1", "h2", "h3"]
    logged = {"h1": [(-0.2, 0.5), (0.05, 0.0)], "h2": [(-0.1, 1.0), (-0.3, 1.0)], "h3": [(0.7, 0.0), (0.9, 0.0)]}
    history = pd.DataFrame([{"run_id": run, "metric": metric, "step": step, "value": value}
                            for run, rows in logged.items() for step, pair in enumerate(rows)
                            for metric, value in zip(("newton_min_eigenvalue", "newton_indefinite_share"), pair)])
    table = newton_system_table(frame, history).set_index("lam")
    assert table.loc[0.1, "seeds"] == 2 and table.loc[0.1, "min_eigenvalue"] == pytest.approx(-0.3)
    assert table.loc[0.1, "indefinite_share"] == pytest.approx((0.25 + 1.0) / 2)
    assert table.loc[1.0, "min_eigenvalue"] == pytest.approx(0.7) and table.loc[1.0, "indefinite_share"] == 0
    assert newton_system_table(frame[frame.param_variant == "baseline"], history).empty


def test_equal_paired_differences_are_no_significance():
    """Seeds 0 and 1 both 1 point below the baseline (0.02 -> 0.01, 0.03 -> 0.02): t = -inf, where scipy says
    p = 0. That is two seeds at the granularity of the evaluation sets, not evidence: undefined, no mark."""
    base = [("ss", "baseline", None, s, v, 1, 1, 1, 1, 1) for s, v in ((0, 0.02), (1, 0.03))]
    newton = [("ss", "hessian", 1.0, s, v, 1, 1, 1, 1, 1) for s, v in ((0, 0.01), (1, 0.02))]
    t = trials(base + newton)
    result = compare(t[t.param_variant == "hessian"], t[t.param_variant == "baseline"], "test_exact")
    assert result["test"].startswith("paired t (undefined") and math.isnan(result["p"]) and math.isnan(result["d"])
    cells = formatted(results_table(t, ["test_exact"]), ["test_exact"])
    assert cells.loc[cells.variant == "hessian", "test_exact"].iloc[0] == "1.50 ± 0.71"  # no "*"
    constant = trials(base[:1] + [("ss", "baseline", None, 2, 0.02, 1, 1, 1, 1, 1)] +
                      [("ss", "hessian", 1.0, s, 0.05, 1, 1, 1, 1, 1) for s in (3, 4)])
    welch = compare(constant[constant.param_variant == "hessian"], constant[constant.param_variant == "baseline"],
                    "test_exact")
    assert welch["test"].startswith("Welch t (undefined") and math.isnan(welch["p"])
