"""The report's statistics against hand-computed values."""

import math

import pandas as pd
import pytest

from tuner.report.stats import compare, formatted, results_table
from tuner.report.timings import runtime_table


def trials(rows):
    frame = pd.DataFrame(
        rows,
        columns=[
            "param_loss",
            "param_variant",
            "param_lam",
            "param_seed",
            "final_test_exact",
            "final_time_total",
            "final_time_loss",
            "final_time_network",
            "final_time_data",
            "final_time_eval",
        ],
    )
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
    cells = formatted(table, ["test_exact"], ("test_exact",))
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

    one_per_setting = trials(
        BASE + FISHER + [("ss", "baseline", None, 0, 0.5, 1, 1, 1, 1, 1), ("ss", "fisher", 3.0, 0, 0.6, 1, 1, 1, 1, 1)]
    )
    assert not lambda_ablation(one_per_setting, "test_exact", "t", tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
    swept = trials(BASE + FISHER + [(loss, variant, 1.0, s, v, *rest) for loss, variant, _, s, v, *rest in FISHER])
    assert lambda_ablation(swept, "test_exact", "t", tmp_path / "swept.png")
    assert (tmp_path / "swept.png").stat().st_size > 10_000


def test_markdown_cells_leave_every_kind_of_missing_value_blank():
    from tuner.report import markdown_table

    frame = pd.DataFrame(
        {"tau": pd.array([1.0, None], dtype="Float64"), "loss": ["a|b", None], "beta": [float("nan"), 10.0]}
    )
    assert markdown_table(frame).splitlines()[2:] == ["| 1.0 | a\\|b |  |", "|  |  | 10.0 |"]


def test_newton_system_table_takes_the_whole_run_per_setting_and_lambda():
    from tuner.report.newton_system import newton_system_table

    frame = trials(
        [
            ("ns", "baseline", None, 0, 0.5, 1, 1, 1, 1, 1),
            ("ns", "hessian", 0.1, 0, 0.5, 1, 1, 1, 1, 1),
            ("ns", "hessian", 0.1, 1, 0.5, 1, 1, 1, 1, 1),
            ("ns", "hessian", 1.0, 0, 0.5, 1, 1, 1, 1, 1),
        ]
    )
    frame["run_id"] = ["b", "h1", "h2", "h3"]
    logged = {"h1": [(-0.2, 0.5), (0.05, 0.0)], "h2": [(-0.1, 1.0), (-0.3, 1.0)], "h3": [(0.7, 0.0), (0.9, 0.0)]}
    history = pd.DataFrame(
        [
            {"run_id": run, "metric": metric, "step": step, "value": value}
            for run, rows in logged.items()
            for step, pair in enumerate(rows)
            for metric, value in zip(("newton_min_eigenvalue", "newton_indefinite_share"), pair)
        ]
    )
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
    cells = formatted(results_table(t, ["test_exact"]), ["test_exact"], ("test_exact",))
    assert cells.loc[cells.variant == "hessian", "test_exact"].iloc[0] == "1.50 ± 0.71"  # no "*"
    constant = trials(
        base[:1]
        + [("ss", "baseline", None, 2, 0.02, 1, 1, 1, 1, 1)]
        + [("ss", "hessian", 1.0, s, 0.05, 1, 1, 1, 1, 1) for s in (3, 4)]
    )
    welch = compare(
        constant[constant.param_variant == "hessian"], constant[constant.param_variant == "baseline"], "test_exact"
    )
    assert welch["test"].startswith("Welch t (undefined") and math.isnan(welch["p"])


def test_holm_adjustment_equals_statsmodels():
    """Holm's step-down adjustment against statsmodels' ``multipletests(method="holm")`` on random families
    (sizes 1-60, uniform and near-zero p, ties), undefined (NaN) tests left out of the family."""
    import numpy as np
    from statsmodels.stats.multitest import multipletests

    from tuner.report.stats import holm

    rng = np.random.default_rng(0)
    for trial in range(40):  # statsmodels takes ~0.3 s a call here
        m = rng.integers(1, 61)
        p = rng.uniform(size=m) ** rng.choice([1, 3, 8])
        if trial % 5 == 0:
            p[: m // 2] = p[0]  # ties
        if trial % 7 == 0:
            p[rng.uniform(size=m) < 0.2] = np.nan
        defined = ~np.isnan(p)
        ours = holm(p)
        assert np.isnan(ours[~defined]).all()
        if defined.any():
            np.testing.assert_allclose(ours[defined], multipletests(p[defined], method="holm")[1], rtol=1e-12)


def test_stars_follow_the_holm_adjusted_p():
    """Fifty λ settings, each a paired test at raw p = 0.0377 (the hand-computed case above): significant alone,
    but not after Holm over the family of 50 (adjusted p = 1), so no star; a single test keeps its star."""
    many = [
        ("ns", "fisher", 10.0 ** (k / 10), s, v, 11.0, 2.0, 8.0, 0.5, 0.5)
        for k in range(50)
        for s, v in zip((0, 1, 2), (0.6, 0.8, 0.9))
    ]
    table = results_table(trials(BASE + many), ["test_exact"])
    fisher = table[table.variant == "fisher"]
    assert fisher["test_exact_p"].to_numpy() == pytest.approx([0.037750] * 50, abs=1e-5)
    assert (fisher["test_exact_p_holm"] == 1.0).all()
    cells = formatted(table, ["test_exact"], ("test_exact",))
    assert not cells["test_exact"].str.endswith("*").any()
    assert set(cells.loc[cells.variant == "fisher", "test_exact p (Holm)"]) == {"1"}
    single = formatted(results_table(trials(BASE + FISHER), ["test_exact"]), ["test_exact"], ("test_exact",))
    assert single.loc[single.variant == "fisher", "test_exact"].iloc[0].endswith(" *")


def test_best_lambda_follows_the_mode():
    from tuner.report.plots import best_lambda

    frame = trials(
        [
            ("ns", "fisher", lam, s, v, 1, 1, 1, 1, 1)
            for lam, values in ((0.1, (0.2, 0.4)), (1.0, (0.6, 0.8)))
            for s, v in zip((0, 1), values)
        ]
    )
    assert best_lambda(frame, "test_exact", "max") == 1.0 and best_lambda(frame, "test_exact", "min") == 0.1


SEARCH_CHOICES = [
    # (choices, value as the search gave it or as a param logged it, expected)
    ((0.5, 1, None), None, None),
    ((0.5, 1, None), 1, 1),
    ((0.5, 1, None), 1.0, 1),
    ((0.5, 1, None), "1.0", 1),
    ((0.5, 1, None), "None", None),
    ((0.5, 1, None), "0.5", 0.5),
    ((True, False), "False", False),
    ((True, False), False, False),
    (("softsort", "neuralsort"), "neuralsort", "neuralsort"),
    ((0, 1), "1", 1),
    ((1e-3, 1e3), "0.001", 1e-3),
    (("1", 1), "1", "1"),
]


@pytest.mark.parametrize("choices, value, expected", SEARCH_CHOICES)
def test_searched_values_map_back_to_their_choice(choices, value, expected):
    from optuna.distributions import CategoricalDistribution

    from tuner.report.search import searched_value

    got = searched_value("tau", CategoricalDistribution(list(choices)), value, "t1")
    assert got == expected and type(got) is type(expected)


def test_a_value_matching_no_choice_is_a_clear_error():
    from optuna.distributions import CategoricalDistribution

    from tuner.errors import ReportError
    from tuner.report.search import searched_value

    with pytest.raises(
        ReportError,
        match=r"search parameter 'tau': trial t7 has value '2.0', which matches none of "
        r"the study's choices \[0.5, 1, None\]",
    ):
        searched_value("tau", CategoricalDistribution([0.5, 1, None]), "2.0", "t7")


def test_report_figures_leave_the_process_warning_filters_alone(tmp_path):
    """Plotting silences its own expected warnings only inside itself (once it silenced RuntimeWarning for the
    whole process)."""
    import warnings

    import numpy as np

    from tuner.report.plots import curves

    frame = trials(BASE + FISHER)
    frame["run_id"] = [f"r{i}" for i in range(len(frame))]
    history = pd.DataFrame(
        [
            {"run_id": run, "metric": metric, "step": step, "value": float(step)}
            for run in frame["run_id"]
            for step in (1, 2)
            for metric in ("test_exact", "time_total")
        ]
    )
    before = list(warnings.filters)
    curves(frame, history, "test_exact", "max", "step", "t", tmp_path / "c.png")
    assert warnings.filters == before
    with pytest.warns(RuntimeWarning):
        np.nanmean(np.array([np.nan]))


def test_only_the_tasks_percent_metrics_are_scaled():
    """A task's PERCENT_METRICS are shown x100; any other metric (a user's MSE, say) as it is."""
    table = results_table(trials(BASE + FISHER), ["test_exact"])
    assert formatted(table, ["test_exact"]).loc[0, "test_exact"] == "0.60 ± 0.10"
    assert formatted(table, ["test_exact"], ("test_exact",)).loc[0, "test_exact"] == "60.00 ± 10.00"


def test_mixed_library_versions_or_devices_are_a_warning():
    from tuner.report.consistency import mixed_environments

    frame = trials(BASE + FISHER)
    frame["env_torch"] = ["2.13.0"] * 5 + ["2.14.1"]
    frame["env_diffsort"] = "0.2.0"
    frame["device"] = "cpu"
    assert mixed_environments(frame) == [
        "trials compared here ran with different torch: 2.13.0 (5 trials), 2.14.1 (1 trials)"
    ]
    frame["env_torch"] = "2.13.0"
    assert mixed_environments(frame) == []


def test_trials_that_ran_other_code_than_the_driver_shipped_are_a_warning():
    """A worker with an older checkout of this project runs other code than the driver: its trials' code hash
    differs from the parent run's, which the report says, whether or not the trials agree among themselves."""
    from tuner.report.consistency import mixed_environments

    frame = trials(BASE + FISHER)
    frame["env_code_hash"] = "aaaa"
    assert mixed_environments(frame, shipped_code="aaaa") == []
    assert mixed_environments(frame, shipped_code="bbbb") == [
        "6 of 6 trials ran code other than the driver's (code hash bbbb): a node with another checkout or installed "
        "version of this project"
    ]
    frame["env_code_hash"] = ["aaaa"] * 4 + ["cccc"] * 2
    lines = mixed_environments(frame, shipped_code="aaaa")
    assert lines == [
        "trials compared here ran with different code_hash: aaaa (4 trials), cccc (2 trials)",
        "2 of 6 trials ran code other than the driver's (code hash aaaa): a node with another checkout or "
        "installed version of this project",
    ]


def test_trials_sharing_a_gpu_are_counted_from_their_gpu_ids_and_times():
    """Four trials on GPU 0 of which three overlap, one on GPU 1 alone, one without a GPU; counted by hand."""
    from tuner.report.consistency import gpu_sharing, shared_gpu_timings

    t = pd.Timestamp("2026-12-01 10:00", tz="UTC")
    minutes = pd.Timedelta(minutes=1)
    frame = pd.DataFrame(
        {
            "ray_gpu_ids": ["0", "0", "0", "0", "1", ""],
            "start_time": [t, t + 1 * minutes, t + 2 * minutes, t + 10 * minutes, t, t],
            "end_time": [
                t + 5 * minutes,
                t + 6 * minutes,
                t + 3 * minutes,
                t + 11 * minutes,
                t + 9 * minutes,
                t + 9 * minutes,
            ],
            "status": "FINISHED",
        }
    )
    assert list(gpu_sharing(frame)) == [3, 3, 3, 1, 1, 0]
    (line,) = shared_gpu_timings(frame, ["time_total"])
    assert line.startswith(
        "time_total were measured while trials shared a GPU: up to 3 trials on one GPU at once "
        "(3 of 6 trials shared theirs)"
    )
    assert shared_gpu_timings(frame, []) == [] and shared_gpu_timings(frame.iloc[3:], ["time_total"]) == []
