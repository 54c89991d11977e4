"""Adaptive replication against a fixed number of seeds, on simulated studies (no Ray, no MLflow): the verdict
rates and the trials each design runs.

A simulated study is shaped like one Table-1 block: 2 settings, each a baseline, a Hessian and a Fisher variant, so
4 comparisons (the two variants of a setting share its baseline). Each run's final accuracy is its setting's
value plus independent normal noise with the per-seed spread σ of the paper's Table 1 (0.5 to 2.6 points); every
Newton variant is better than its baseline by the planted Δ (0: an A/A study, where any better or worse verdict is
false). Both designs judge with the report's paired t-test (and, with ``--margin``, its TOST):

- **adaptive**: ``replicate: {add: 2, max_seeds: 10}`` on ``seeds: [0, 1, 2]``, looks on 3, 5, 7, 9, 10 seeds, the
  rule of ``tuner/report/sequential.py`` (Lan-DeMets O'Brien-Fleming-type spending, Holm over the scores);
- **fixed 10**: every run on 10 seeds, one look at α with Holm over the family (the report's verdicts).

Then, for one comparison, why each look's t-test is held to the increment the look spends rather than to the exact
normal-theory boundaries (whose type-I error overshoots α with t-tests at a few seeds).

    python benchmarks/adaptive_seeds.py [--studies 2000] [--sequences 200000] [--margin 1.0]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats
from scipy.optimize import brentq

from tuner.report.decisions import ALPHA
from tuner.report.sequential import UNDECIDED, look_levels, sequential_look, spending

SETTINGS, VARIANTS = 2, 2  # per study: 2 settings x (baseline + 2 variants) = 4 comparisons, 6 configs
FIRST, ADD, MAX_SEEDS = 3, 2, 10
SPREADS = (0.5, 1.0, 2.6)  # per-seed std of an accuracy in the paper's Table 1, in points
EFFECTS = (0.0, 1.0, 2.0, 5.0)  # planted Δ, in points


def looks() -> list[int]:
    seeds = list(range(FIRST, MAX_SEEDS, ADD))
    return seeds + [MAX_SEEDS]


def tests(diff: np.ndarray, n: int, margin: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paired t-test's p, the TOST p against ±margin (statsmodels' ``ttost_paired``: the larger one-sided p),
    and Δ, on the first ``n`` seeds of every comparison (``diff``: (..., seeds) paired differences)."""
    d = diff[..., :n]
    mean, se = d.mean(axis=-1), d.std(axis=-1, ddof=1) / math.sqrt(n)
    p = 2 * stats.t.sf(np.abs(mean / se), n - 1)
    if margin is None:
        return p, np.full(p.shape, np.nan), mean
    p_tost = np.maximum(stats.t.sf((mean + margin) / se, n - 1), stats.t.cdf((mean - margin) / se, n - 1))
    return p, p_tost, mean


def simulate(sigma: float, effect: float, studies: int, margin: float | None, adaptive: bool, seed: int = 0):
    """Per study: the 4 comparisons' verdicts and the trials run. Returns (verdicts (studies, 4), trials (studies,),
    seeds per comparison (studies, 4))."""
    rng = np.random.default_rng(seed)
    runs = rng.normal(0.0, sigma, (studies, SETTINGS, 1 + VARIANTS, MAX_SEEDS))
    runs[:, :, 1:] += effect
    diff = (runs[:, :, 1:] - runs[:, :, :1]).reshape(studies, SETTINGS * VARIANTS, MAX_SEEDS)
    schedule = looks() if adaptive else [MAX_SEEDS]
    levels = look_levels(schedule, MAX_SEEDS) if adaptive else [ALPHA]
    per_look = [tests(diff, n, margin) for n in schedule]
    m = SETTINGS * VARIANTS
    verdicts, seeds = np.empty((studies, m), dtype=object), np.zeros((studies, m), dtype=int)
    for s in range(studies):
        state = ([math.inf] * m, [math.inf] * m, [math.nan] * m, np.full(m, UNDECIDED, dtype=object))
        for n, level, (p, p_tost, mean) in zip(schedule, levels, per_look):
            seeds[s, state[3] == UNDECIDED] = n
            state = sequential_look(*state, p[s], p_tost[s], mean[s], level)
            if not (state[3] == UNDECIDED).any():
                break
        verdicts[s] = state[3]
    per_setting = seeds.reshape(studies, SETTINGS, VARIANTS)
    trials = (per_setting.sum(axis=2) + per_setting.max(axis=2)).sum(axis=1)  # variants, then their baseline
    return verdicts, trials, seeds


def row(sigma, effect, margin, adaptive, studies) -> dict:
    verdicts, trials, seeds = simulate(sigma, effect, studies, margin, adaptive)
    share = {v: float(np.mean(verdicts == v)) for v in ("better", "worse", "equivalent", UNDECIDED)}
    false = (verdicts == "worse") | ((verdicts == "better") if effect == 0 else False)
    return {
        "σ": f"{sigma:g}" if effect or margin else "any",
        "Δ": effect,
        "margin": "" if margin is None else f"±{margin:g}",
        "design": "adaptive" if adaptive else f"fixed {MAX_SEEDS}",
        **share,
        "any false": float(np.mean(false.any(axis=1))),
        "seeds": float(seeds.mean()),
        "trials": float(trials.mean()),
    }


def normal_boundaries(t: np.ndarray, grid: int = 801) -> np.ndarray:
    """Two-sided z boundaries whose first-crossing probabilities under H0 are the increments of the spending function
    (the recursion of Armitage, McPherson & Rowe 1969 on a grid of the Brownian motion's value): the exact
    normal-theory design, for the comparison below."""
    spent = np.diff(np.concatenate([[0.0], spending(t)]))
    bounds = [stats.norm.isf(spent[0] / 2)]
    x = np.linspace(-bounds[0] * math.sqrt(t[0]), bounds[0] * math.sqrt(t[0]), grid)
    density = stats.norm.pdf(x / math.sqrt(t[0])) / math.sqrt(t[0])
    for k in range(1, len(t)):
        step, weights = math.sqrt(t[k] - t[k - 1]), np.full(grid, x[1] - x[0])
        weights[[0, -1]] /= 2
        mass = density * weights

        def crossing(c, k=k, mass=mass, x=x, step=step):
            b = c * math.sqrt(t[k])
            return mass @ (stats.norm.sf((b - x) / step) + stats.norm.cdf((-b - x) / step)) - spent[k]

        bounds.append(brentq(crossing, 0.0, 50.0, xtol=1e-10))
        new = np.linspace(-bounds[-1] * math.sqrt(t[k]), bounds[-1] * math.sqrt(t[k]), grid)
        density = (mass * stats.norm.pdf((new[:, None] - x) / step) / step).sum(axis=1)
        x = new
    return np.array(bounds)


def why_bonferroni(sequences: int) -> list[str]:
    """One comparison, standard-normal paired differences: the share of A/A sequences with a verdict, and of
    sequences with Δ = 1 sd with a better one, when each look's t-test is held to its increment (this rule) or to
    the nominal level of the exact normal-theory boundaries; and a fixed design on the last look's seeds."""
    lines = [
        "| looks (seeds) | A/A: this rule | A/A: normal-theory boundaries | A/A: fixed | Δ = 1 sd: this rule | "
        "normal-theory | fixed |",
        "|" + "---|" * 7,
    ]
    rng = np.random.default_rng(1)
    for schedule in ([3, 5, 7, 9, 10], [2, 4, 6, 8, 10], [3, 4, 5, 6, 7, 8, 9, 10], [3, 6]):
        t = np.array(schedule) / schedule[-1]
        own, nominal = look_levels(schedule, schedule[-1]), 2 * stats.norm.sf(normal_boundaries(t))
        cells = {}
        for effect in (0.0, 1.0):
            d = rng.standard_normal((sequences, schedule[-1])) + effect
            p = np.stack([tests(d, n, None)[0] for n in schedule], axis=1)
            cells[effect] = [(p < own).any(axis=1).mean(), (p < nominal).any(axis=1).mean(), (p[:, -1] < ALPHA).mean()]
        shown = [f"{100 * v:.2f} %" for v in cells[0.0]] + [f"{100 * v:.1f} %" for v in cells[1.0]]
        lines.append(f"| {', '.join(map(str, schedule))} | " + " | ".join(shown) + " |")
    return lines


def markdown(rows: list[dict]) -> str:
    head = "| σ (points) | Δ (points) | margin | design | better | worse | equivalent | undecided | any false "
    head += "better/worse | seeds per comparison | trials per study |"
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        cells = [r["σ"], f"{r['Δ']:g}", r["margin"], r["design"]]
        cells += [f"{100 * r[k]:.1f} %" for k in ("better", "worse", "equivalent", UNDECIDED, "any false")]
        cells += [f"{r['seeds']:.1f}", f"{r['trials']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000, help="simulated studies per row")
    parser.add_argument("--sequences", type=int, default=200_000, help="sequences per row of the second table")
    parser.add_argument("--margin", type=float, default=1.0, help="equivalence margin (points) for the A/A rows")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = [row(1.0, 0.0, None, adaptive, args.studies) for adaptive in (True, False)]  # A/A: σ does not matter
    rows += [
        row(sigma, effect, None, adaptive, args.studies)
        for sigma in SPREADS
        for effect in EFFECTS[1:]
        for adaptive in (True, False)
    ]
    rows += [row(sigma, 0.0, args.margin, adaptive, args.studies) for sigma in SPREADS for adaptive in (True, False)]
    print(markdown(rows))
    print(
        f"\n{args.studies} simulated studies per row (4 comparisons each, fixed 10: {SETTINGS * (1 + VARIANTS) * 10} "
        f"trials); α = {ALPHA}\n"
    )
    print("\n".join(why_bonferroni(args.sequences)))
    print(f"\n{args.sequences} simulated sequences per row; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
