"""Verdicts on two groups of seeds: is A **better** than B, **worse**, **equivalent** within a margin the study
names, or **undecided**; with a confidence interval, the probability of improvement, and how many seeds would decide.

A and B are one metric's final values indexed by seed: a Newton variant and its baseline (``tuner report``), or one
setting after and before a change (``tuner compare``). The metric's direction (``mode``: ``max`` or ``min``, see
``metric_modes``) says which way is better.

- Pairing: paired by seed when both ran the same seeds (at least two), as the report's t-test
  (``stats.compare``); unpaired otherwise.
- Δ: the mean of A − B (paired) or mean(A) − mean(B), in the metric's units, with a 95 % bootstrap confidence
  interval (``scipy.stats.bootstrap``, BCa, 9 999 resamples of the paired differences, or of each group on its
  own; a fixed random state, so a report rebuilds the same; percentile where BCa is undefined).
- P(A better): paired, the share of seeds where A beats B in the metric's direction, a tie counting half;
  unpaired, the Mann-Whitney probability of superiority U / (n_A n_B) (the same count over all pairs of seeds).
- Tests: two-sided paired t / Welch t (as the report's), and with a margin m the equivalence test of
  -m < Δ < m, two one-sided tests (TOST: statsmodels ``ttost_paired`` / ``ttost_ind`` with unequal variances),
  whose p is the larger one-sided p.

The rule (``verdict``), at level α (0.05) on Holm-adjusted p-values, the two-sided tests and the TOSTs each one
Holm family (all comparisons of one metric in one table):

1. adjusted TOST p < α: **equivalent** (Δ is shown to lie inside ±m; a significant difference inside the margin
   is one the study declared irrelevant);
2. else adjusted two-sided p < α: **better** or **worse**, by the sign of Δ in the metric's direction;
3. else **undecided**.

Holm controls each family's error rate at α under any dependence: the chance that a table calls any comparison with
Δ = 0 better or worse is at most α, and the chance that it calls any with |Δ| ≥ m equivalent is at most α. A test
without spread (every paired difference equal, or both groups constant: t = ±inf or 0/0), with a NaN value (a
diverged run) or with fewer than two seeds a side is undefined: no p, and the comparison stays undecided.

For a sequential design (more seeds, then another look), ``decide`` judges one comparison on the seeds finished so
far, and ``judged`` a family, at the α the caller's spending function allots to that look.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.power import TTestIndPower, TTestPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

ALPHA = 0.05  # the level of every verdict and of the seeds-needed power analysis
POWER = 0.8
CONFIDENCE = 0.95
RESAMPLES = 9999
MAX_SEEDS = 1000  # seeds-needed beyond this is "> 1000"
MAX_EFFECT = 1e6  # Cohen's d used in power analysis at most this
# A spread of at most this many steps (ulps) of the values' own precision at their magnitude is rounding, not a
# spread. Most metrics come from float32 tensors (torch's default): two seeds whose accuracy differences are
# equal in exact arithmetic (11/500 in both) differ by ~1 float32 ulp once read as float64, and a float64
# threshold (1e-12) took that for a spread: t ~ 1e6, Holm p ~ 1e-5, a "better" verdict from two seeds. Values
# that are all float32 numbers get float32 steps; any other value (a float64 metric such as cvxpy_relu's MSE)
# float64 steps. The smallest real step of the paper's accuracies (one element in 10 000 test sets of n = 10:
# 1e-5) is ~80 float32 ulps of 1.
NO_SPREAD_ULPS = 4
VERDICTS = ("better", "worse", "equivalent", "undecided")
LOWER_BETTER_PREFIX = "time_"  # time_total, time_loss, ...: seconds, lower is better


@dataclass(frozen=True)
class Difference:
    """A − B over seeds: the statistics of one comparison (NaN where undefined, ``note`` says why)."""

    paired: bool
    n_a: int
    n_b: int
    diff: float  # mean of A − B (paired), or mean(A) − mean(B)
    ci_low: float  # 95 % bootstrap interval of ``diff``
    ci_high: float
    p_better: float  # P(A beats B) in the metric's direction
    p: float  # two-sided paired t / Welch t
    p_tost: float  # TOST against ±margin; NaN without a margin
    sd: float  # of the paired differences, or pooled sqrt((s_A² + s_B²) / 2): Cohen's d's denominator
    seeds_needed: float  # see ``seeds_needed``
    note: str = ""

    def row(self, prefix: str = "") -> dict:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}


def paired(a: pd.Series, b: pd.Series) -> bool:
    """Both groups ran the same seeds, at least two (the report's t-test pairs them the same way)."""
    common = a.index.intersection(b.index)
    return len(common) >= 2 and len(common) == len(a) == len(b)


def rounding_step(*values: np.ndarray) -> float:
    """One step (ulp) of the values' precision at their largest finite magnitude: float32's when every finite
    value is a float32 number, float64's otherwise; 0 without a finite value."""
    finite = np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in values] or [np.zeros(0)])
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return 0.0
    with np.errstate(over="ignore"):  # a float64 beyond float32's range is not a float32 number
        single = bool(np.all(finite.astype(np.float32).astype(float) == finite))
    return float(np.spacing((np.float32 if single else np.float64)(np.abs(finite).max())))


def no_spread(sd: float | np.ndarray, *values: np.ndarray) -> bool | np.ndarray:
    """``sd`` (a number, or an array of them) is zero up to rounding of the values it comes from: at most
    ``NO_SPREAD_ULPS`` steps of their precision at their largest magnitude (conservative: a test it declines
    leaves the comparison undecided; NaN counts as no spread)."""
    return ~(np.asarray(sd) > NO_SPREAD_ULPS * rounding_step(*values))


def difference(
    a: pd.Series,
    b: pd.Series,
    mode: str = "max",
    margin: float | None = None,
    *,
    alpha: float = ALPHA,
    resamples: int = RESAMPLES,
) -> Difference:
    """The statistics of A against B (final values indexed by seed); see the module's docstring."""
    pair = paired(a, b)
    if pair:
        a, b = a.loc[a.index.intersection(b.index)], b.loc[a.index.intersection(b.index)]
    x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    blank = Difference(pair, len(x), len(y), *[math.nan] * 8)
    if np.isnan(x).any() or np.isnan(y).any():
        return replace(blank, note="a NaN value")
    if len(x) < 2 or len(y) < 2:
        return replace(
            blank, diff=float(x.mean() - y.mean()) if len(x) and len(y) else math.nan, note="fewer than 2 seeds"
        )
    sign = 1.0 if mode == "max" else -1.0
    if pair:
        d = x - y
        diff, sd = float(d.mean()), float(d.std(ddof=1))
        p_better = float(np.mean((np.sign(sign * d) + 1) / 2))  # win 1, tie 1/2, loss 0
    else:
        diff, sd = float(x.mean() - y.mean()), math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2)
        p_better = float(stats.mannwhitneyu(sign * x, sign * y).statistic / (len(x) * len(y)))
    if no_spread(sd, x, y):
        return replace(blank, diff=diff, ci_low=diff, ci_high=diff, p_better=p_better, sd=0.0, note="no spread")
    low, high = _bootstrap(x, y, pair, resamples)
    if pair:
        p = stats.ttest_rel(x, y).pvalue
        p_tost = ttost_paired(x, y, -margin, margin)[0] if margin else math.nan
    else:
        p = stats.ttest_ind(x, y, equal_var=False).pvalue
        p_tost = ttost_ind(x, y, -margin, margin, usevar="unequal")[0] if margin else math.nan
    return Difference(
        pair,
        len(x),
        len(y),
        diff,
        low,
        high,
        p_better,
        float(p),
        float(p_tost),
        sd,
        seeds_needed(diff, sd, pair, margin, alpha),
    )


def _bootstrap(x: np.ndarray, y: np.ndarray, pair: bool, resamples: int) -> tuple[float, float]:
    """The BCa interval of the mean difference (percentile where BCa is undefined, e.g. a jackknife without spread)."""
    if pair:
        data, statistic = (x - y,), np.mean
    else:
        data, statistic = (x, y), lambda u, v, axis=-1: u.mean(axis=axis) - v.mean(axis=axis)
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns on degenerate BCa, answered by the percentile interval
            ci = stats.bootstrap(
                data,
                statistic,
                n_resamples=resamples,
                confidence_level=CONFIDENCE,
                method=method,
                random_state=np.random.default_rng(0),
            ).confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            break
    return float(ci.low), float(ci.high)


def verdict(diff: float, p: float, p_tost: float, mode: str = "max", alpha: float = ALPHA) -> str:
    """The rule of the module's docstring on (adjusted) p-values; ``alpha``: the level this look spends."""
    if p_tost < alpha:
        return "equivalent"
    if p < alpha:
        return "better" if (diff > 0) == (mode == "max") else "worse"
    return "undecided"


def seeds_needed(
    diff: float, sd: float, pair: bool, margin: float | None = None, alpha: float = ALPHA, power: float = POWER
) -> float:
    """How many seeds (pairs; per group when unpaired) would decide the comparison with ``power`` at ``alpha`` if
    the observed Δ and spread were the truth: the fewer of

    - the two-sided t-test's: the smallest n at which its power (statsmodels ``TTestPower``, or ``TTestIndPower``
      for Welch's test, planned as the pooled one with equal groups) at Cohen's d = |Δ| / sd reaches ``power``
      (what ``solve_power`` solves for, found exactly over the integers);
    - with a margin m > |Δ|, the smallest n whose TOST power is at least ``power`` by the bound
      P(both one-sided tests reject) ≥ power(Δ > −m) + power(Δ < m) − 1 (each statsmodels' one-sided t power).

    ``inf`` beyond ``MAX_SEEDS`` (a tiny effect: "> 1000"), NaN without spread. The α is per test: after Holm over
    a family of k tests the smallest p must be below α / k, and Δ and sd of a few seeds are rough estimates, so
    read it as an order of magnitude.
    """
    if not (math.isfinite(diff) and math.isfinite(sd) and sd > 0):
        return math.nan
    analysis, n = (TTestPower() if pair else TTestIndPower()), np.arange(2, MAX_SEEDS + 1)

    def effect(delta):  # power is 1 at n = 2 long before the cap; scipy's noncentral t is NaN near d = 1e10
        return min(delta / sd, MAX_EFFECT)

    reached = [_power(analysis, effect(abs(diff)), n, alpha, "two-sided") >= power]
    if margin and abs(diff) < margin:
        reached.append(
            _power(analysis, effect(margin + diff), n, alpha, "larger")
            + _power(analysis, effect(margin - diff), n, alpha, "larger")
            - 1
            >= power
        )
    return min((float(n[np.argmax(r)]) for r in reached if r.any()), default=math.inf)


def _power(analysis, effect: float, n: np.ndarray, alpha: float, alternative: str) -> np.ndarray:
    """statsmodels' t-test power at each n. Where scipy's noncentral t gives NaN (a far tail at a large
    noncentrality: paired, d = 7, n = 2), a two-sided power is its upper tail alone (the lower one is ~0 there),
    and a one-sided power is 1 (every such NaN from n = 2 to 1000, d = 0.001 to 1e6, is at a power above 0.999)."""
    result = analysis.power(effect, n, alpha, alternative=alternative)
    if alternative == "two-sided":
        result = np.where(np.isnan(result), analysis.power(effect, n, alpha / 2, alternative="larger"), result)
    return np.nan_to_num(result, nan=1.0)


def judged(frame: pd.DataFrame, mode: str = "max", alpha: float = ALPHA, prefix: str = "") -> pd.DataFrame:
    """A family's verdicts: ``frame`` holds one comparison per row (``Difference.row(prefix)``; rows without one,
    e.g. a baseline's, have no ``{prefix}paired``). Adds the Holm-adjusted ``{prefix}p_holm`` (unless present) and
    ``{prefix}p_tost_holm``, and ``{prefix}verdict``; ``{prefix}seeds_needed`` is kept for undecided rows only."""
    frame = frame.copy()
    compared = frame[f"{prefix}paired"].notna()
    for test in ("p", "p_tost"):
        if f"{prefix}{test}_holm" not in frame:
            frame[f"{prefix}{test}_holm"] = holm(frame[f"{prefix}{test}"].where(compared))
    words = [
        verdict(d, p, q, mode, alpha) if c else None
        for d, p, q, c in zip(frame[f"{prefix}diff"], frame[f"{prefix}p_holm"], frame[f"{prefix}p_tost_holm"], compared)
    ]
    frame[f"{prefix}verdict"] = words
    frame[f"{prefix}seeds_needed"] = frame[f"{prefix}seeds_needed"].where(frame[f"{prefix}verdict"] == "undecided")
    return frame


def decide(
    a: pd.Series, b: pd.Series, mode: str = "max", margin: float | None = None, alpha: float = ALPHA
) -> tuple[Difference, str]:
    """One comparison on the seeds finished so far, at ``alpha``: the level a sequential design spends at this
    look (e.g. Lan-DeMets O'Brien-Fleming's share); its own family of one, so no Holm."""
    result = difference(a, b, mode, margin, alpha=alpha)
    return result, verdict(result.diff, result.p, result.p_tost, mode, alpha)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment: with the m defined p-values sorted ascending, ``p_(i)`` becomes
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``. NaN (undefined tests) stays NaN and does not count in m."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    order = defined[np.argsort(p[defined], kind="stable")]
    m = len(order)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return adjusted


def metric_modes(metrics, objectives: dict[str, str], lower_better=()) -> dict[str, str]:
    """Each metric's direction: the study's ``mode`` for its objectives; ``min`` for the task's
    ``LOWER_IS_BETTER`` and for time metrics (``time_*``, seconds); ``max`` for any other (accuracies)."""
    return {
        m: objectives.get(m) or ("min" if m in lower_better or m.startswith(LOWER_BETTER_PREFIX) else "max")
        for m in metrics
    }


def explained(margins: dict[str, float], a: str = "A", b: str = "B", alpha: float = ALPHA) -> str:
    """The rule in one paragraph, for report.md (``a``: the variant, ``b``: its baseline) and compare.md."""
    named = ", ".join(f"`{m}` ±{v:g}" for m, v in margins.items()) or "none named (`report: {margin: {METRIC: m}}`)"
    return (
        f"**Verdicts.** Δ is {a} minus {b} with a 95 % bootstrap interval (BCa; over the seeds' paired "
        f"differences when both ran the same seeds); P(better) is the share of seeds where {a} beats {b} in the "
        f"metric's direction (ties half), or the Mann-Whitney U / (n₁n₂) when seeds differ. **equivalent**: the "
        f"equivalence test (two one-sided t-tests against ±margin, in the metric's units; margins: {named}) has "
        f"Holm-adjusted p < {alpha:g}; else **better** or **worse** (time: lower is better) when the two-sided "
        f"test's Holm-adjusted p < {alpha:g}; else **undecided**. Each kind of test is one Holm family per "
        f"metric; a test without spread, with a NaN value or under 2 seeds a side stays undecided. *Seeds "
        f"needed* (undecided only): the seeds per side that would give {POWER:.0%} power at α = {alpha:g} were "
        f"the observed Δ and spread true (the t-test's power; with a margin also the equivalence test's); "
        f'"> {MAX_SEEDS}" beyond {MAX_SEEDS}.'
    )
