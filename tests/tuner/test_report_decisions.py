"""The verdict statistics (tuner/report/decisions.py) against references they do not use: brute-force counts,
scipy's t-tests called directly, the noncentral t power formula, a large-sample normal interval. Inputs come from
several regimes (ties, zero spread, 2 and 10 seeds, tiny and huge scales, NaN), drawn by hypothesis."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from tuner.report import decisions
from tuner.report.decisions import decide, difference, judged, seeds_needed, verdict
from tuner.report.stats import compare

ALPHA, MAX_SEEDS, POWER = decisions.ALPHA, decisions.MAX_SEEDS, decisions.POWER

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCALES = (1e-9, 1e-3, 1.0, 1e3, 1e9)


def rounding(*values) -> float:
    """Four steps of the values' precision at their largest magnitude (float32's when every value is a float32
    number, as metrics from float32 tensors are; float64's otherwise): a spread that small is rounding."""
    x = np.abs(np.r_[values])
    single = all(float(np.float32(v)) == v for v in x)
    return 4 * float(np.spacing(np.float32(x.max()) if single else x.max()))


@st.composite
def samples(draw, pair: bool):
    """Two groups of final values indexed by seed: (a, b, regime, scale)."""
    n = draw(st.sampled_from((2, 3, 5, 10)))
    m = n if pair else draw(st.sampled_from((2, 3, 4, 7, 10)))
    scale = draw(st.sampled_from(SCALES))
    regime = draw(st.sampled_from(("noise", "ties", "shift", "no spread", "float32", "nan")))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a, b = rng.normal(0.5, 0.1, n), rng.normal(0.5, 0.1, m)
    if regime == "ties":  # accuracies on six evaluation sets: many equal values and equal differences
        a, b = np.round(a * 6) / 6, np.round(b * 6) / 6
    elif regime == "shift":
        a = a + rng.choice((-1, 1)) * rng.uniform(0.05, 0.5)
    elif regime == "no spread":
        b = np.full(m, 0.5)
        a = b + 0.25 if pair else np.full(n, 0.75)
    elif regime == "float32":  # float32 metrics (accuracies over 500 elements, scaled), 11 more right in every seed
        hits = rng.integers(200, 400, max(n, m))
        b = (hits[:m] / np.float32(500) * np.float32(scale)).astype(np.float32).astype(float)
        a = ((hits[:n] + 11) / np.float32(500) * np.float32(scale)).astype(np.float32).astype(float)
    elif regime == "nan":
        a[rng.integers(n)] = np.nan
    if regime != "float32":
        a, b = a * scale, b * scale
    seeds_b = list(range(m)) if pair else list(range(100, 100 + m))
    return pd.Series(a, index=range(n)), pd.Series(b, index=seeds_b), regime, scale


def brute_force_better(x, y, sign):
    """Count every pair (x_i, y_j) where x wins; a tie counts half."""
    wins = sum(1.0 if sign * (u - v) > 0 else 0.5 if u == v else 0.0 for u in x for v in y)
    return wins / (len(x) * len(y))


@FAST
@given(samples(pair=True), st.sampled_from(("max", "min")))
def test_paired_statistics_against_references(data, mode):
    a, b, regime, scale = data
    result = difference(a, b, mode, margin=0.05 * scale, resamples=999)
    assert result.paired and result.n_a == result.n_b == len(a)
    if regime == "nan":
        assert math.isnan(result.diff) and math.isnan(result.p) and result.note == "a NaN value"
        return
    d = (a - b).to_numpy()
    sign = 1 if mode == "max" else -1
    assert result.diff == pytest.approx(d.mean(), rel=1e-12, abs=1e-300)
    assert result.p_better == pytest.approx(np.mean([brute_force_better([u], [v], sign) for u, v in zip(a, b)]))
    if regime == "float32":  # equal differences in exact arithmetic: float32 rounding is no spread
        assert result.note == "no spread" and math.isnan(result.p)
    if not d.std(ddof=1) > rounding(a, b):  # no spread: tests undefined, a point
        assert math.isnan(result.p) and math.isnan(result.p_tost) and math.isnan(result.seeds_needed)
        assert result.ci_low == result.ci_high == result.diff and result.note == "no spread"
        return
    assert result.p == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    upper = stats.ttest_1samp(d, 0.05 * scale, alternative="less").pvalue  # Δ < m
    lower = stats.ttest_1samp(d, -0.05 * scale, alternative="greater").pvalue  # Δ > -m
    assert result.p_tost == pytest.approx(max(upper, lower), rel=1e-7, abs=1e-12)
    assert result.ci_low <= result.diff <= result.ci_high
    assert d.min() - 1e-9 * scale <= result.ci_low and result.ci_high <= d.max() + 1e-9 * scale


@FAST
@given(samples(pair=False), st.sampled_from(("max", "min")))
def test_unpaired_statistics_against_references(data, mode):
    a, b, regime, scale = data
    result = difference(a, b, mode, margin=0.05 * scale, resamples=999)
    assert not result.paired
    if regime == "nan":
        assert math.isnan(result.p_better) and math.isnan(result.ci_low) and result.note == "a NaN value"
        return
    sign = 1 if mode == "max" else -1
    assert result.diff == pytest.approx(a.mean() - b.mean(), rel=1e-9, abs=1e-12 * scale)
    assert result.p_better == pytest.approx(brute_force_better(a, b, sign), abs=1e-12)
    if not math.sqrt((a.var() + b.var()) / 2) > rounding(a, b):  # both constant
        assert math.isnan(result.p) and result.ci_low == result.ci_high == result.diff and result.note == "no spread"
        return
    assert result.p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    m = 0.05 * scale  # Welch's one-sided tests of a - b > -m and a - b < m, by shifting a
    lower = stats.ttest_ind(a + m, b, equal_var=False, alternative="greater").pvalue
    upper = stats.ttest_ind(a - m, b, equal_var=False, alternative="less").pvalue
    assert result.p_tost == pytest.approx(max(lower, upper), rel=1e-7, abs=1e-12)
    assert result.sd == pytest.approx(math.sqrt((a.var() + b.var()) / 2), rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from(("normal", "exponential", "uniform")),
    st.sampled_from(SCALES),
    st.booleans(),
)
def test_bootstrap_interval_agrees_with_the_normal_interval_on_large_samples(seed, shape, scale, pair):
    """With 400 seeds the mean is near normal: the BCa interval must match mean ± z σ/√n (Welch's σ unpaired)
    within 10 % of its width, wherever the data sit and whatever their scale."""
    rng = np.random.default_rng(seed)
    draw = {
        "normal": rng.normal,
        "exponential": lambda size: rng.exponential(size=size),
        "uniform": lambda size: rng.uniform(size=size),
    }[shape]
    a, b = pd.Series(draw(size=400) * scale + 3 * scale), pd.Series(draw(size=400) * scale)
    if not pair:
        b.index = b.index + 1000
    result = difference(a, b, resamples=2000)
    se = (a - b).std() / 20 if pair else math.sqrt(a.var() / 400 + b.var() / 400)
    z = stats.norm.ppf(0.975)
    assert result.ci_low == pytest.approx(result.diff - z * se, abs=0.1 * 2 * z * se)
    assert result.ci_high == pytest.approx(result.diff + z * se, abs=0.1 * 2 * z * se)


@FAST
@given(samples(pair=True), st.sampled_from((2.0**-30, 0.5, 4.0, 2.0**30)))
def test_the_interval_scales_with_the_data(data, factor):
    """The same resamples (a fixed random state), and a power of two scales every float exactly: the interval of
    c·A against c·B is c times the interval of A against B."""
    a, b = data[:2]
    one, scaled = difference(a, b, resamples=999), difference(a * factor, b * factor, resamples=999)
    assert scaled.note == one.note
    for got, want in (
        (scaled.ci_low, one.ci_low * factor),
        (scaled.ci_high, one.ci_high * factor),
        (scaled.p, one.p),
        (scaled.p_better, one.p_better),
    ):
        assert got == pytest.approx(want, rel=1e-12, nan_ok=True)


def t_power(df, nc, alpha=ALPHA, alternative="two-sided"):
    """Closed form: P(T > c) (+ P(T < -c) two-sided) for T noncentral t; the lower tail as P(T' > c) with the
    noncentrality negated (scipy's cdf is NaN far in that tail, its sf is not)."""
    if alternative == "larger":
        return stats.nct.sf(stats.t.ppf(1 - alpha, df), df, nc)
    crit = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc)


def power_paired(d, n, alpha=ALPHA, alternative="two-sided"):
    """The paired t statistic of n pairs: noncentral t, n - 1 df, noncentrality d √n."""
    return t_power(n - 1, d * math.sqrt(n), alpha, alternative)


def power_unpaired(d, n, alpha=ALPHA, alternative="two-sided"):
    """Two groups of n, pooled t: 2n - 2 df, noncentrality d √(n/2)."""
    return t_power(2 * n - 2, d * math.sqrt(n / 2), alpha, alternative)


@settings(max_examples=200, deadline=None)
@given(st.floats(-3, 1.5), st.sampled_from(SCALES), st.booleans(), st.booleans())
def test_seeds_needed_is_the_smallest_n_with_80_percent_power(log_d, scale, pair, negative):
    """Against the noncentral t power: at the returned n the power is ≥ 80 %, one seed fewer it is not; beyond
    the cap (tiny effects) inf."""
    d, sd = 10.0**log_d, 0.1 * scale
    n = seeds_needed((-1 if negative else 1) * d * sd, sd, pair)
    power = power_paired if pair else power_unpaired
    if math.isinf(n):
        assert power(d, MAX_SEEDS) < POWER
        return
    n = int(n)
    assert 2 <= n <= MAX_SEEDS and power(d, n) >= POWER - 1e-9
    assert n == 2 or power(d, n - 1) < POWER + 1e-9


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 0.95), st.floats(-2, 0.5), st.booleans())
def test_seeds_needed_with_a_margin_uses_the_equivalence_tests_bound(share, log_m, pair):
    """With |Δ| < m: the fewer of the t-test's n and the smallest n where the one-sided powers of Δ > -m and Δ < m
    (closed form) sum to ≥ 1 + 80 %."""
    sd, m = 1.0, 10.0**log_m
    diff = share * m
    power = power_paired if pair else power_unpaired
    n = seeds_needed(diff, sd, pair, m)

    def tost(k):
        return power((m + diff) / sd, k, alternative="larger") + power((m - diff) / sd, k, alternative="larger") - 1

    def either(k):
        return tost(k) >= POWER - 1e-9 or power(abs(diff) / sd, k) >= POWER - 1e-9

    if math.isinf(n):
        assert not either(MAX_SEEDS)
        return
    assert either(int(n)) and (n == 2 or not either(int(n) - 1))


def test_equivalence_power_bound_holds_by_simulation():
    """At the returned n, a simulated TOST at Δ = 0.1, m = 0.5, sd = 1 rejects in at least 80 % of 4000 draws."""
    from statsmodels.stats.weightstats import ttost_paired

    n = int(seeds_needed(0.1, 1.0, True, 0.5))
    assert n < int(seeds_needed(0.1, 1.0, True))  # equivalence decides sooner than a difference here
    rng = np.random.default_rng(1)
    rejected = [ttost_paired(rng.normal(0.1, 1.0, n), np.zeros(n), -0.5, 0.5)[0] < ALPHA for _ in range(4000)]
    assert np.mean(rejected) >= POWER - 0.02


def test_seeds_needed_edges():
    assert math.isnan(seeds_needed(0.1, 0.0, True))  # no spread: undefined
    assert math.isnan(seeds_needed(math.nan, 1.0, True))
    assert math.isinf(seeds_needed(0.0, 1.0, True))  # no effect, no margin: never
    assert math.isinf(seeds_needed(1e-6, 1.0, False))
    assert seeds_needed(1e9, 1e-3, True) == 2  # a huge effect: the fewest a t-test takes
    assert seeds_needed(0.0, 1.0, True, margin=1e6) == 2  # far inside a wide margin


VERDICT_CASES = [
    # (diff, p, p_tost, mode, expected)
    (0.1, 0.01, float("nan"), "max", "better"),
    (-0.1, 0.01, float("nan"), "max", "worse"),
    (0.1, 0.01, float("nan"), "min", "worse"),
    (-0.1, 0.01, float("nan"), "min", "better"),
    (0.001, 0.01, 0.01, "max", "equivalent"),  # significant but inside the margin: the margin rules
    (0.001, 0.5, 0.01, "max", "equivalent"),
    (0.001, 0.5, 0.2, "max", "undecided"),
    (0.1, 0.05, 0.05, "max", "undecided"),  # strictly below alpha
    (0.1, float("nan"), float("nan"), "max", "undecided"),
]


@pytest.mark.parametrize("diff, p, p_tost, mode, expected", VERDICT_CASES)
def test_verdict_rule(diff, p, p_tost, mode, expected):
    assert verdict(diff, p, p_tost, mode) == expected


def test_judged_adjusts_each_family_by_holm():
    """Two comparisons, each significant alone (p = 0.03): after Holm over the two (0.06) neither is better;
    one comparison alone keeps its verdict. TOST p-values form their own family. A row without a comparison
    gets none."""
    rows = pd.DataFrame(
        {
            "paired": [True, True, None],
            "diff": [0.1, 0.2, None],
            "p": [0.03, 0.03, None],
            "p_tost": [0.02, 0.9, None],
            "seeds_needed": [12.0, 7.0, None],
        }
    )
    out = judged(rows)
    assert list(out["p_holm"][:2]) == [0.06, 0.06] and list(out["p_tost_holm"][:2]) == [0.04, 0.9]
    assert list(out["verdict"][:2]) == ["equivalent", "undecided"] and pd.isna(out["verdict"][2])
    assert math.isnan(out["seeds_needed"][0]) and out["seeds_needed"][1] == 7.0
    assert judged(rows[1:2].assign(p_tost=float("nan")))["verdict"].tolist() == ["better"]


def test_decide_spends_the_alpha_it_is_given():
    """A sequential design's look: the same data are better at α = 0.05 and undecided at a look spending 0.001."""
    a, b = pd.Series([0.60, 0.82, 0.90]), pd.Series([0.50, 0.60, 0.70])
    result, word = decide(a, b)
    assert word == "better" and 0.001 < result.p < 0.05
    assert decide(a, b, alpha=0.001)[1] == "undecided"
    assert decide(a, b, mode="min")[1] == "worse"


def test_fewer_than_two_seeds_is_undecided():
    result = difference(pd.Series([0.5]), pd.Series([0.4, 0.6]))
    assert result.note == "fewer than 2 seeds" and math.isnan(result.p) and result.diff == pytest.approx(0.0)


def test_metric_directions():
    modes = decisions.metric_modes(["test_exact", "time_total", "mse", "valid_cost"], {"valid_cost": "min"}, ("mse",))
    assert modes == {"test_exact": "max", "time_total": "min", "mse": "min", "valid_cost": "min"}


def test_results_table_gets_interval_verdict_and_seeds_needed():
    """The report's table (tuner/report/stats.py): a variant clearly better, one within the margin, one undecided
    with its seeds needed, and a lower-better metric judged the other way."""
    from tuner.report.stats import formatted, results_table

    rows = [("baseline", None, s, v, 10.0) for s, v in enumerate((0.50, 0.60, 0.70, 0.55))]
    rows += [("fisher", 0.1, s, v, 12.0 + s / 10) for s, v in enumerate((0.70, 0.81, 0.89, 0.76))]
    rows += [("hessian", 0.1, s, v, 9.0 - s / 10) for s, v in enumerate((0.505, 0.601, 0.702, 0.548))]
    rows += [("hessian", 1.0, s, v, 10.0 + s / 10) for s, v in enumerate((0.45, 0.70, 0.62, 0.60))]
    frame = pd.DataFrame(
        rows, columns=["param_variant", "param_lam", "param_seed", "final_test_exact", "final_time_total"]
    ).assign(status="FINISHED")
    frame["param_lam"] = frame["param_lam"].astype("Float64")
    table = results_table(frame, ["test_exact", "time_total"], {"time_total": "min"}, {"test_exact": 0.02})
    by = table.set_index(["variant", "lam"])
    assert by.loc[("fisher", 0.1), "test_exact_verdict"] == "better"
    assert by.loc[("hessian", 0.1), "test_exact_verdict"] == "equivalent"
    assert by.loc[("hessian", 1.0), "test_exact_verdict"] == "undecided"
    assert by.loc[("fisher", 0.1), "time_total_verdict"] == "worse"  # slower
    assert by.loc[("hessian", 0.1), "time_total_verdict"] == "better"  # faster
    assert by.loc[("fisher", 0.1), "test_exact_p_better"] == 1.0
    assert by.loc[("hessian", 1.0), "test_exact_seeds_needed"] > 4
    cells = formatted(table, ["test_exact", "time_total"], ("test_exact",)).set_index(["variant", "lam"])
    assert cells.loc[("fisher", "0.1"), "test_exact Δ [95% CI]"].startswith("+20.25 [")
    assert cells.loc[("fisher", "0.1"), "test_exact verdict"] == "better"
    assert cells.loc[("fisher", "0.1"), "test_exact seeds needed"] == ""
    assert cells.loc[("hessian", "1"), "test_exact seeds needed"].isdigit()
    assert cells.loc[("baseline", ""), "test_exact verdict"] == ""
    assert "`test_exact` ±0.02" in decisions.explained({"test_exact": 0.02})


def test_a_study_names_positive_margins_for_its_report_metrics(tmp_path):
    from tasks import TASKS
    from tuner.errors import StudyError
    from tuner.study_file import load_study

    first, second = TASKS.get("ranking").REPORT_METRICS[:2]

    def study(margin):
        path = tmp_path / "s.yaml"
        path.write_text(
            "name: s\ntask: ranking\nmetric: valid_exact\ngrid: {variant: [baseline]}\n"
            f"report: {{margin: {margin}}}\n"
        )
        return path

    assert load_study(study(f"{{{first}: 0.01, {second}: 1}}")).report.margin == {first: 0.01, second: 1.0}
    for bad, message in (
        (f"{{{first}: 0}}", f"{first}: a margin is a positive number"),
        (f"{{{first}: -0.1}}", "positive number"),
        (f"{{{first}: .nan}}", "positive number"),
        (f"{{{first}: true}}", "positive number"),
        (f"{{{first}: '0.1'}}", "positive number"),
        ("{train_loss: 0.1}", "report.margin.train_loss: task 'ranking' tables no metric"),
    ):
        with pytest.raises(StudyError, match=message):
            load_study(study(bad))


def test_float32_rounding_of_equal_differences_is_no_spread():
    """The values of a real smoke run (table1_ranking-smoke, softsort n = 5, test element-wise accuracy on 500
    digits, seeds 0 and 1): fisher beat the baseline by 11 of 500 in both seeds. Read back as float64 the two
    differences are 0.0220000148 and 0.0219999552; that is rounding, not a spread, and no verdict may rest on it."""
    fisher = pd.Series([0.6340000033378601, 0.5899999737739563], index=[0, 1])
    baseline = pd.Series([0.6119999885559082, 0.5680000185966492], index=[0, 1])
    result = difference(fisher, baseline, "max")
    assert result.note == "no spread" and math.isnan(result.p)
    assert result.diff == pytest.approx(0.022, abs=1e-7)
    assert verdict(result.diff, result.p, result.p_tost) == "undecided"
    frame = {  # the results table's p column reads the same values through tuner/report/stats.py
        name: pd.DataFrame({"param_seed": values.index, "final_test_elementwise": values.to_numpy()})
        for name, values in (("fisher", fisher), ("baseline", baseline))
    }
    row = compare(frame["fisher"], frame["baseline"], "test_elementwise")
    assert row["test"] == "paired t (undefined: equal differences)" and math.isnan(row["p"])


@pytest.mark.parametrize(
    "values, step",
    [
        ([1.0, 0.5], 2.0**-23),  # float32 numbers: float32's step at 1
        ([0.1, 0.2], 2.0**-55),  # float64 numbers: float64's step at 0.2 (0.1 and 0.2 are not float32 numbers)
        ([float(np.float32(0.1)), float(np.float32(0.3))], 2.0**-25),  # float32's step at 0.3 (in [0.25, 0.5))
        ([1e39, 2e39], float(np.spacing(2e39))),  # beyond float32's range: float64 steps, never infinite
        ([1e-50, 2e-50], float(np.spacing(2e-50))),  # below float32's range: float64 steps, never float32's 1e-45
        ([np.inf, 1.0, np.nan], 2.0**-23),  # non-finite values are left out
        ([np.nan], 0.0),
        ([0.0, 0.0], float(np.spacing(np.float32(0)))),
    ],
)
def test_the_rounding_step_is_that_of_the_values_own_precision(values, step):
    assert decisions.rounding_step(np.array(values)) == step


@pytest.mark.parametrize("scale", [1e-50, 1e-12, 1.0, 1e12, 1e39])
def test_a_ten_percent_spread_is_a_spread_at_every_float64_scale(scale):
    values = np.array([1.0, 1.1, 0.9]) * scale
    assert not decisions.no_spread(float(values.std(ddof=1)), values)
    assert decisions.no_spread(0.0, values)
