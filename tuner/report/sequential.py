"""Sequential verdicts: a family of comparisons (each Newton variant against the baseline of its setting) judged at
several looks while seeds are added, with the family-wise error rate of its better/worse verdicts (and, with a
margin, of its equivalent ones) at most α over every look together.

**Spending** (Lan & DeMets 1983, the O'Brien-Fleming-type function): by information time t = seeds so far /
``max_seeds``, the α spent up to t is

    α(t) = 2 − 2 Φ(z_{1−α/2} / √t),   α(0) = 0,  α(1) = α,

and look k spends the increment α_k = α(t_k) − α(t_{k−1}): almost nothing at the first looks (t = 0.3 spends
0.00035 of 0.05), most of α at the last.

**The rule at look k** (``sequential_look``). Each comparison i keeps a *score*, the smallest ratio of its two-sided
p-value (the report's paired t-test) to the α of the look it came from over the looks it was tested at:
r_i = min_j p_ij / α_j, ∞ before its first test. Holm's step-down at level 1 over the scores of the whole family
(every comparison, decided ones included; sorted ascending, r_(l) is rejected while (m − l + 1) r_(l) < 1, i.e. its
Holm-adjusted score is below 1) decides which comparisons differ: **better** or **worse** by the sign of Δ at the
look that gave the score. The equivalence tests (TOST against the study's margin) keep their own scores and Holm
family, and win as in ``decisions.verdict``: **equivalent** first. A verdict once given is final (the comparison gets
no more seeds); the rest stay **undecided**.

Why it holds: this is the closed test (Marcus, Peritz & Gabriel 1976) whose test of the intersection of any set J of
nulls rejects when some i in J had p_ij < α_j / |J| at some look j; by Bonferroni over comparisons and looks its
level is Σ_j α_j ≤ α under any dependence between looks, comparisons and the choice of which comparisons get more
seeds (each t-test is exact at its level; stopping a comparison only removes chances to reject). Holm on the scores
is that closed test's shortcut, and since the scores only fall from look to look, a later look rejects every
comparison an earlier one did: the verdicts of all looks are the closed test's at the last, so the chance of any
false better/worse verdict in the study, over all its looks, is at most α (Maurer & Bretz 2013 derive the same for
group-sequential boundaries).

Each look spends its increment as its own level (Bonferroni over looks), not as the probability of a first crossing
there under the normal theory of Armitage, McPherson & Rowe (1969): that recursion's boundaries, applied to the
t-tests of 2 or 3 first seeds, overshoot α (0.054 to 0.057 in 200 000 simulated A/A sequences on 2 or 3 first seeds
and up to 10), while this rule holds for any test exact at its level. The price is power at the last looks, which
are highly correlated: ``benchmarks/adaptive_seeds.py`` measures it against a fixed 10 seeds.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from .decisions import ALPHA, holm

UNDECIDED = "undecided"


def spending(t, alpha: float = ALPHA):
    """The Lan-DeMets O'Brien-Fleming-type spending function α(t) = 2 − 2 Φ(z_{1−α/2} / √t) for t in [0, 1]
    (α(0) = 0, α(1) = α); a float for a float, an array for an array."""
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore"):
        spent = np.where(t > 0, 2 * norm.sf(norm.isf(alpha / 2) / np.sqrt(np.where(t > 0, t, 1.0))), 0.0)
    return float(spent) if spent.ndim == 0 else spent


def look_levels(seeds: list[int], max_seeds: int, alpha: float = ALPHA) -> np.ndarray:
    """The α each look spends, α(t_k) − α(t_{k−1}) with t_k = ``seeds[k]`` / ``max_seeds`` (seeds so far at each look,
    increasing)."""
    spent = spending(np.asarray(seeds, dtype=float) / max_seeds, alpha)
    return np.diff(np.concatenate([[0.0], np.atleast_1d(spent)]))


def sequential_look(score, score_tost, lead, verdicts, p, p_tost, diff, level: float, mode: str = "max"):
    """One look of the family (arrays of length m, one entry per comparison, in a fixed order).

    Args:
        score, score_tost: each comparison's scores after the previous look (``inf`` before the first).
        lead: Δ at the look that gave ``score`` (NaN before the first).
        verdicts: the verdicts recorded so far (``undecided`` for the comparisons still open).
        p, p_tost, diff: this look's two-sided p, TOST p (NaN without a margin) and Δ; NaN where a comparison was
            not tested (decided earlier, or its test was undefined: no spread, a NaN value, under 2 seeds).
        level: the α this look spends (``look_levels``).
        mode: the metric's direction (``max``: higher is better).

    Returns:
        ``(score, score_tost, lead, verdicts)`` after this look; recorded verdicts are kept as they were.
    """
    score, score_tost, lead = (np.asarray(x, dtype=float).copy() for x in (score, score_tost, lead))
    verdicts = np.asarray(verdicts, dtype=object).copy()
    open_ = verdicts == UNDECIDED
    ratio, ratio_tost = (_ratio(np.asarray(x, dtype=float), level, open_) for x in (p, p_tost))
    lead = np.where(ratio < score, np.asarray(diff, dtype=float), lead)
    score, score_tost = np.minimum(score, ratio), np.minimum(score_tost, ratio_tost)
    differs, equivalent = holm(score) < 1, holm(score_tost) < 1  # inf scores count in m and are never rejected
    direction = np.where((lead > 0) == (mode == "max"), "better", "worse")
    new = np.where(equivalent, "equivalent", np.where(differs, direction, UNDECIDED))
    verdicts[open_] = new[open_]
    return score, score_tost, lead, verdicts


def _ratio(p: np.ndarray, level: float, open_: np.ndarray) -> np.ndarray:
    """p / level for the open comparisons with a defined test, ∞ for the others (and for a look spending nothing)."""
    tested = open_ & ~np.isnan(p) & (level > 0)
    return np.divide(p, level, out=np.full(p.shape, np.inf), where=tested)
