"""Adaptive replication (``replicate:``): the Lan-DeMets spending function against its closed form, the sequential
rule against brute-force closed testing and by simulated A/A studies, the round planner on hand-computed examples,
the validation errors, and a real study through the CLI whose driver is killed inside a round."""

import itertools
import json
import math
import os
import runpy
import signal
import subprocess
import textwrap
import time

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient
from scipy import stats

from tuner.adaptive import comparisons, first_settings, round_trials, schedule, seeds_at, take_look
from tuner.errors import StudyError
from tuner.report.decisions import ALPHA, holm
from tuner.report.sequential import UNDECIDED, look_levels, sequential_look, spending
from tuner.state import StudyState, load_state, save_state
from tuner.study import Study
from tuner.study_file import load_study

from .helpers import REPO, TUNER, run_tuner

Z = 1.959963984540054  # z_{0.975}


def obf(t: float) -> float:
    """α(t) = 2 − 2Φ(z/√t) = erfc(z / √(2t)), with the standard library only."""
    return math.erfc(Z / math.sqrt(2 * t)) if t > 0 else 0.0


def test_spending_is_the_lan_demets_obrien_fleming_function():
    """Closed form at given t, α(1) = α, α(0) = 0; the well-known 0.0056 spent by the halfway look."""
    for t in (0.05, 0.1, 0.2, 0.3, 0.5, 0.6, 5 / 6, 0.9, 1.0):
        assert spending(t) == pytest.approx(obf(t), rel=1e-9, abs=1e-300)
    assert spending(1.0) == pytest.approx(ALPHA, rel=1e-12) and spending(0.0) == 0.0
    assert round(spending(0.5), 5) == 0.00557 and round(spending(0.3), 6) == 0.000346
    ts = np.linspace(0, 1, 101)
    assert np.all(np.diff(spending(ts)) >= 0)
    levels = look_levels([3, 5, 7, 9, 10], 10)
    assert levels.sum() == pytest.approx(ALPHA) and levels[0] == pytest.approx(obf(0.3))
    assert levels[-1] == pytest.approx(obf(1.0) - obf(0.9))


def look(p, diff, level, p_tost=None, before=None, mode="max"):
    """``sequential_look`` on a fresh family (or after ``before``)."""
    m = len(p)
    before = before or ([math.inf] * m, [math.inf] * m, [math.nan] * m, [UNDECIDED] * m)
    return sequential_look(*before, p, [math.nan] * m if p_tost is None else p_tost, diff, level, mode)


def test_one_look_spending_all_of_alpha_is_holm_on_the_p_values():
    """With a single look (seeds = max_seeds) the rule is the report's: Holm at α on the p-values."""
    p = np.array([0.001, 0.02, 0.03, 0.2])
    verdicts = look(p, [1.0, -1.0, 1.0, 1.0], ALPHA)[3]
    assert list(verdicts != UNDECIDED) == list(holm(p) < ALPHA) == [True, False, False, False]


def test_a_look_decides_by_holm_on_the_scores_and_keeps_recorded_verdicts():
    """Look 1 spends 0.01: p = (0.001, 0.004, 0.5) give scores (0.1, 0.4, 50); Holm: 3 x 0.1 < 1 and 2 x 0.4 < 1
    decide the first two (better; worse on a lower-better metric with Δ > 0), not the third. Look 2 spends 0.02 on
    the third alone: p = 0.03 gives 1.5, higher than no score it had, so nothing; p = 0.015 gives 0.75 < 1 after
    the two decided ones: better. A decided comparison keeps its verdict and score; a TOST rejection wins."""
    nan = math.nan
    first = look([0.001, 0.004, 0.5], [0.2, -0.1, 0.01], 0.01)
    assert list(first[0]) == pytest.approx([0.1, 0.4, 50]) and list(first[3]) == ["better", "worse", UNDECIDED]
    assert list(look([0.001, 0.004, 0.5], [0.2, 0.1, 0.01], 0.01, mode="min")[3]) == ["worse", "worse", UNDECIDED]
    still = look([nan, nan, 0.03], [nan, nan, 0.3], 0.02, before=first)
    assert list(still[0]) == pytest.approx([0.1, 0.4, 1.5]) and list(still[3]) == ["better", "worse", UNDECIDED]
    decided = look([0.9, 0.9, 0.015], [-5, 5, 0.3], 0.02, before=first)
    assert list(decided[3]) == ["better", "worse", "better"] and list(decided[2]) == pytest.approx([0.2, -0.1, 0.3])
    equivalent = look([nan, nan, 0.015], [nan, nan, 0.3], 0.02, p_tost=[nan, nan, 0.001], before=first)
    assert equivalent[3][2] == "equivalent"


def test_a_later_look_can_decide_on_an_earlier_looks_score():
    """Two comparisons at look 1 (α 0.01): scores 0.6 and 0.8, Holm needs 2 x 0.6 < 1: nothing. Look 2 (α 0.04):
    the first gets p = 0.004 (score 0.1), decided; the second's p = 0.2 (ratio 5) leaves its score at 0.8 < 1, so
    it is decided now on look 1's data, in look 1's direction (the closed test allows it)."""
    first = look([0.006, 0.008], [0.3, -0.2], 0.01)
    assert list(first[3]) == [UNDECIDED] * 2
    second = look([0.004, 0.2], [0.4, 0.1], 0.04, before=first)
    assert list(second[0]) == pytest.approx([0.1, 0.8]) and list(second[3]) == ["better", "worse"]


def test_holm_on_scores_is_the_closed_test_of_bonferroni_intersections():
    """Brute force over every subset J of up to 5 comparisons (500 random families, ∞ and ties included): H_J is
    rejected when some score in J is below 1 / |J|; H_i by the closed test when every J holding i is. Holm on the
    scores (adjusted below 1) agrees."""
    rng = np.random.default_rng(0)
    for _ in range(500):
        m = int(rng.integers(1, 6))
        scores = np.where(rng.random(m) < 0.2, np.inf, np.round(rng.exponential(0.5, m), 1))
        closed = [
            all(
                min(scores[list(J)]) < 1 / len(J)
                for size in range(1, m + 1)
                for J in itertools.combinations(range(m), size)
                if i in J
            )
            for i in range(m)
        ]
        assert list(holm(scores) < 1) == closed, scores


def simulate(effect: float, studies: int, m: int, seeds=(3, 5, 7, 9, 10), seed: int = 0) -> np.ndarray:
    """Verdicts of ``studies`` simulated families of ``m`` paired comparisons, standard-normal paired differences
    shifted by ``effect``, judged at the looks ``seeds`` (max 10) by the rule; numpy draws, scipy's t-test."""
    d = np.random.default_rng(seed).standard_normal((studies, m, seeds[-1])) + effect
    p = [stats.ttest_1samp(d[..., :n], 0.0, axis=-1).pvalue for n in seeds]
    diff = [d[..., :n].mean(axis=-1) for n in seeds]
    levels = look_levels(list(seeds), seeds[-1])
    out = np.empty((studies, m), dtype=object)
    for s in range(studies):
        state = ([math.inf] * m, [math.inf] * m, [math.nan] * m, [UNDECIDED] * m)
        for k, level in enumerate(levels):
            state = sequential_look(*state, p[k][s], [math.nan] * m, diff[k][s], level)
        out[s] = state[3]
    return out


def test_simulated_aa_studies_call_better_or_worse_at_most_alpha_of_the_time():
    """4000 A/A families of 3 comparisons looked at on 3, 5, 7, 9, 10 seeds: the share of families with any better
    or worse verdict (the family-wise error over all looks) is at most α within 3 Monte-Carlo standard errors (it
    is about 0.037: the looks' levels add up to α, a Bonferroni bound); a planted effect of 1.5 standard
    deviations is found in most comparisons, and in the right direction."""
    studies = 4000
    verdicts = simulate(0.0, studies, 3)
    family_wise = np.mean((verdicts != UNDECIDED).any(axis=1))
    assert family_wise <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / studies), family_wise
    assert np.mean(verdicts == "better") == pytest.approx(np.mean(verdicts == "worse"), abs=0.01)
    planted = simulate(1.5, 300, 3, seed=1)
    assert np.mean(planted == "better") > 0.8 and not (planted == "worse").any()


def test_the_benchmark_counts_trials_as_the_planner_does():
    """``benchmarks/adaptive_seeds.py`` on a few studies: a fixed design runs 6 configs x 10 seeds; an adaptive one
    at most that, and a comparison decided at look k has the schedule's seeds at k."""
    bench = runpy.run_path(str(REPO / "benchmarks" / "adaptive_seeds.py"))
    verdicts, trials, seeds = bench["simulate"](0.5, 5.0, 20, None, adaptive=True)
    assert (verdicts == "better").all() and set(seeds.ravel()) <= {3, 5, 7, 9, 10} and (trials < 60).all()
    per_setting = seeds.reshape(20, 2, 2)
    assert list(trials) == list((per_setting.sum(axis=2) + per_setting.max(axis=2)).sum(axis=1))
    assert set(bench["simulate"](0.5, 5.0, 20, None, adaptive=False)[1]) == {60}


def study(**overrides) -> Study:
    fields = {
        "name": "a",
        "task": "ranking",
        "metric": "valid_elementwise",
        "grid": [
            {"loss": ["neuralsort"], "variant": ["baseline", "hessian", "fisher"], "lam": [0.1]},
            {"loss": ["softsort"], "variant": ["baseline", "fisher"], "lam": [0.1]},
            {"loss": ["cauchy"], "variant": ["fisher"], "lam": [0.1]},  # no baseline: nothing to compare with
        ],
        "seeds": [0, 1, 2],
        "replicate": {"add": 1, "max_seeds": 5},
    }
    return Study(**{**fields, **overrides})


def settings(s: Study) -> list[dict]:
    return [{k: v for k, v in t.items() if k != "seed"} for t in s.grid_trials() if t["seed"] == s.seeds[0]]


def test_the_schedule_adds_seeds_after_the_largest_up_to_max_seeds():
    s = study(seeds=[4, 1, 7], replicate={"add": 2, "max_seeds": 8})
    assert schedule(s) == [4, 1, 7, 8, 9, 10, 11, 12]
    assert [seeds_at(s, k) for k in range(5)] == [0, 3, 5, 7, 8]


def test_comparisons_pair_each_variant_with_the_baseline_of_its_setting():
    pairs = [(v["loss"], v["variant"], b["loss"], b["variant"]) for v, b in comparisons(settings(study()))]
    assert pairs == [
        ("neuralsort", "hessian", "neuralsort", "baseline"),
        ("neuralsort", "fisher", "neuralsort", "baseline"),
        ("softsort", "fisher", "softsort", "baseline"),
    ]


def test_a_selection_study_compares_its_selected_settings():
    """With ``select:``, the family is the selected settings: Fisher at the λ its selection trial chose (1.0, the
    higher value) against the baseline."""
    from tuner.selection import select_settings

    s = Study(
        name="sel",
        task="ranking",
        metric="valid_elementwise",
        grid=[{"variant": ["baseline", "fisher"], "lam": [0.1, 1.0]}],
        select={"over": ["lam"]},
        seeds=[0, 1],
        replicate={"add": 1, "max_seeds": 3},
    )
    chosen = select_settings(s, [(t, t.get("lam") or 0.0) for t in s.selection_trials()])
    state = StudyState(
        study=s, mlflow_uri="sqlite:////x", experiment_id="1", parent_run_id="p", selections={"select": chosen}
    )
    assert comparisons(first_settings(state)) == [({"variant": "fisher", "lam": 1.0}, {"variant": "baseline"})]


def test_looks_and_rounds_on_a_hand_computed_family():
    """seeds 0-2, one seed a round, at most 5: looks at t = 0.6, 0.8, 1 spend α(0.6) = 0.0114, α(0.8) − α(0.6) and
    α(1) − α(0.8). Paired differences at look 1 (t-test with 2 df: p = 1 − t / √(t² + 2)):

    - neuralsort hessian: 0.30, 0.31, 0.32: t = 53.7, p = 3.5e-4, score 0.030: 3 x 0.030 < 1, **better**;
    - softsort fisher: -0.20, -0.21, -0.22: t = -36.4, p = 7.5e-4, score 0.066: 2 x 0.066 < 1, **worse**;
    - neuralsort fisher: 0.1, -0.1, 0.05: p = 0.81, **undecided**.

    Round 1 is neuralsort's baseline and fisher on seed 3; look 2 (fisher: 0.1, -0.1, 0.05, 0.0) stays undecided,
    round 2 adds seed 4; look 3 is at max_seeds: no round follows."""
    s = study()
    base = {0: 0.5, 1: 0.6, 2: 0.55, 3: 0.52, 4: 0.58}
    diffs = {
        ("neuralsort", "hessian"): [0.30, 0.31, 0.32],
        ("softsort", "fisher"): [-0.20, -0.21, -0.22],
        ("neuralsort", "fisher"): [0.1, -0.1, 0.05, 0.0, 0.02],
    }
    finals = {}
    for config in settings(s):
        shift = [0.0] * 5 if config["variant"] == "baseline" else diffs.get((config["loss"], config["variant"]), [])
        for seed, d in enumerate(shift):
            finals[(json.dumps(config, sort_keys=True), seed)] = base[seed] + d

    def p2(d):  # the paired t-test with 2 degrees of freedom, closed form
        t = np.mean(d) / (np.std(d, ddof=1) / math.sqrt(3))
        return 1 - abs(t) / math.sqrt(t * t + 2)

    one = take_look(s, None, comparisons(settings(s)), finals, "valid_elementwise", "max")
    assert one.seeds == (0, 1, 2) and one.t == 0.6 and one.level == pytest.approx(obf(0.6))
    rows = {(r.variant["loss"], r.variant["variant"]): r for r in one.rows}
    assert rows[("neuralsort", "hessian")].p == pytest.approx(p2([0.30, 0.31, 0.32]), rel=1e-6)
    assert rows[("softsort", "fisher")].p == pytest.approx(p2([-0.20, -0.21, -0.22]), rel=1e-6)
    assert rows[("neuralsort", "hessian")].score == pytest.approx(p2([0.30, 0.31, 0.32]) / obf(0.6), rel=1e-6)
    assert {k: r.verdict for k, r in rows.items()} == {
        ("neuralsort", "hessian"): "better",
        ("neuralsort", "fisher"): UNDECIDED,
        ("softsort", "fisher"): "worse",
    }
    assert rows[("neuralsort", "hessian")].decided_at == 1 and rows[("neuralsort", "fisher")].decided_at is None
    assert [(t["loss"], t["variant"], t["seed"]) for t in one.trials] == [
        ("neuralsort", "baseline", 3),
        ("neuralsort", "fisher", 3),
    ]
    two = take_look(s, one, [], finals, "valid_elementwise", "max")
    assert two.seeds == (0, 1, 2, 3) and two.level == pytest.approx(obf(0.8) - obf(0.6))
    assert [r.tested for r in two.rows] == [False, True, False] and two.rows[1].seeds == 4
    assert [r.verdict for r in two.rows] == ["better", UNDECIDED, "worse"]
    assert two.rows[0] == rows[("neuralsort", "hessian")].model_copy(update={"tested": False})  # carried as it was
    assert [(t["variant"], t["seed"]) for t in two.trials] == [("baseline", 4), ("fisher", 4)]
    three = take_look(s, two, [], finals, "valid_elementwise", "max")
    assert three.level == pytest.approx(obf(1.0) - obf(0.8)) and three.trials == [] and three.rows[1].seeds == 5
    assert sum(look.level for look in (one, two, three)) == pytest.approx(ALPHA)


def test_round_trials_give_a_shared_baseline_once():
    s = study()
    one = take_look(s, None, comparisons(settings(s)), {}, "valid_elementwise", "max")  # no values: undecided
    assert [r.verdict for r in one.rows] == [UNDECIDED] * 3 and [r.p for r in one.rows] == [None] * 3
    assert [(t["loss"], t["variant"]) for t in round_trials(one.rows, [3])] == [
        ("neuralsort", "baseline"),
        ("neuralsort", "hessian"),
        ("neuralsort", "fisher"),
        ("softsort", "baseline"),
        ("softsort", "fisher"),
    ]


def test_the_state_keeps_looks(tmp_path):
    s = study()
    look = take_look(s, None, comparisons(settings(s)), {}, "valid_elementwise", "max")
    state = StudyState(study=s, mlflow_uri="sqlite:////x", experiment_id="1", parent_run_id="p", looks=[look])
    save_state(tmp_path, state)
    assert load_state(tmp_path) == state


@pytest.mark.parametrize(
    "change, message",
    [
        ({"replicate": {"add": 0, "max_seeds": 5}}, r"replicate.add: Input should be greater than or equal to 1"),
        ({"replicate": {"add": 1, "max_seeds": 2}}, r"replicate: .*max_seeds at least as many as seeds"),
        ({"seeds": [0], "replicate": {"add": 1, "max_seeds": 5}}, r"replicate: the first look needs at least 2"),
        ({"seeds": [0, 0, 1]}, "seeds must be a non-empty list of distinct integers"),
        ({"replicate": {"add": 1}}, r"replicate.max_seeds: Field required"),
        ({"replicate": {"add": 1, "max_seeds": 5, "alpha": 0.1}}, r"replicate.alpha: unknown key"),
        ({"grid": [{"variant": ["fisher"], "lam": [0.1, 1.0]}]}, "replicate: no grid setting has both a baseline"),
        (
            {"search": {"trials": 2, "space": {"lam": {"log": [0.01, 1.0]}}}},
            r"replicate: adds seeds to grid or selected settings .* not to a search's best",
        ),
    ],
)
def test_bad_replications_are_one_line(tmp_path, change, message):
    raw = {
        "name": "bad",
        "task": "ranking",
        "metric": "valid_elementwise",
        "grid": [{"variant": ["baseline", "fisher"], "lam": [0.1]}],
        "seeds": [0, 1, 2],
        "replicate": {"add": 2, "max_seeds": 10},
        **change,
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(StudyError, match=message) as error:
        load_study(path)
    assert "\n" not in str(error.value)


# A user task whose score is a closed form of seed, setting (``effect``) and variant: the variant beats its baseline
# by ``effect`` (plus 0.001 on odd seeds) when ``effect`` is set, and by +-0.01 alternating with the seed when not;
# the seed's own luck is shared by both. The last step of seed ``gate_seed`` waits until the file ``gate`` exists.
ADAPTIVE_TASK = '''
    """Scores that are a closed form of seed, setting and variant; one seed's last step waits for a file."""
    import os
    import time

    LOSS_KIND = "ranking"
    DEFAULTS = {"loss": "neuralsort", "variant": "baseline", "lam": None, "seed": 0, "steps": 2, "gate": None,
                "gate_seed": None, "effect": 0.0, "lr": 1e-3}
    METRICS = ("score", "time_total")
    REPORT_METRICS = ("score",)


    def describe(config):
        return {**DEFAULTS, **config}


    def check(config):
        unknown = set(config) - set(DEFAULTS)
        if unknown:
            raise KeyError(f"adaptivelab: unknown keys {sorted(unknown)}")


    def total_steps(config):
        return describe(config)["steps"]


    def train(config, report, resume=None):
        cfg = describe(config)
        step = resume["step"] if resume else 0
        while step < cfg["steps"]:
            step += 1
            if step == cfg["steps"] and cfg["gate"] and cfg["seed"] == cfg["gate_seed"]:
                while not os.path.exists(cfg["gate"]):
                    time.sleep(0.2)
            report({"step": step, "score": score(cfg), "time_total": 0.1 * step}, {"step": step})


    def score(cfg):
        seed = cfg["seed"]
        luck = 0.01 * ((7 * seed) % 5)
        if cfg["variant"] == "baseline":
            return 0.5 + luck
        if cfg["effect"]:
            return 0.5 + luck + cfg["effect"] + 0.001 * (seed % 2)
        return 0.5 + luck + 0.01 * (-1) ** seed
'''


@pytest.mark.slow
def test_an_adaptive_study_killed_inside_a_round_resumes_to_the_hand_computed_rounds(tmp_path):
    """Two settings on seeds 0-2, two seeds a round, at most 6 (looks at t = 1/2, 5/6, 1; Holm over 2 comparisons):

    - effect 0.1: differences 0.1, 0.101, 0.1: t = 301 (2 df), p = 1.1e-5, score p / α(1/2) = 0.002 < 1/2:
      **better** at look 1, no more seeds;
    - effect 0: differences +0.01, -0.01, ...: p = 0.67, 0.68, 1.0 at 3, 5, 6 seeds: **undecided** to 6 seeds;
      round 1 runs its baseline and variant on seeds 3 and 4, round 2 on seed 5.

    Seed 4's last step waits on the gate: the driver is SIGKILLed inside round 1 once seed 3 finished, then
    ``tuner resume`` continues. Every trial runs once (12 + 4 + 2), look 1 is the one recorded before the kill,
    and the report has the rounds."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "adaptivelab.py").write_text(textwrap.dedent(ADAPTIVE_TASK))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "code")}
    gate = tmp_path / "gate"
    path = tmp_path / "ada.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "ada",
                "task": "adaptivelab:",
                "metric": "score",
                "mode": "max",
                "params": {"gate": str(gate), "gate_seed": 4},
                "grid": [{"effect": [0.1, 0.0], "variant": ["baseline", "fisher"], "lam": [1.0]}],
                "seeds": [0, 1, 2],
                "replicate": {"add": 2, "max_seeds": 6},
                "max_concurrent": 2,
                "max_failures": 0,
            }
        )
    )
    store = tmp_path / "store"
    driver = subprocess.Popen(
        [TUNER, "run", str(path), "--storage", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )

    def runs():
        if not (store / "ada" / "study.json").exists():
            return []
        state = load_state(store / "ada")
        return MlflowClient(state.mlflow_uri).search_runs([state.experiment_id], "tags.role = 'trial'")

    def seed_of(run):
        return json.loads(run.data.tags["trial_config"])["seed"]

    deadline = time.time() + 300
    while True:
        assert driver.poll() is None and time.time() < deadline, "the first round never got there"
        current = [r for r in runs() if r.data.tags.get("phase") == "replicate-1"]
        finished = [r for r in current if r.info.status == "FINISHED" and seed_of(r) == 3]
        waiting = [r for r in current if r.info.status == "RUNNING" and r.data.metrics.get("score") is not None]
        if len(finished) == 2 and waiting:
            break
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    before = load_state(store / "ada")
    assert before.phases == {"grid": "done", "replicate-1": "started"} and len(before.looks) == 1
    gate.touch()
    result = run_tuner("resume", "ada", "--storage", store, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    state = load_state(store / "ada")
    assert state.looks[0] == before.looks[0]  # recorded before the kill, not judged again
    assert state.phases == {"grid": "done", "replicate-1": "done", "replicate-2": "done"}
    levels = [obf(0.5), obf(5 / 6) - obf(0.5), obf(1.0) - obf(5 / 6)]
    assert [(look.seeds, look.level) for look in state.looks] == [
        ((0, 1, 2), pytest.approx(levels[0])),
        ((0, 1, 2, 3, 4), pytest.approx(levels[1])),
        ((0, 1, 2, 3, 4, 5), pytest.approx(levels[2])),
    ]
    verdicts = [[(r.variant["effect"], r.verdict, r.tested) for r in look.rows] for look in state.looks]
    assert verdicts == [
        [(0.1, "better", True), (0.0, UNDECIDED, True)],
        [(0.1, "better", False), (0.0, UNDECIDED, True)],
        [(0.1, "better", False), (0.0, UNDECIDED, True)],
    ]
    planned = [[(t["effect"], t["variant"], t["seed"]) for t in look.trials] for look in state.looks]
    assert planned == [
        [(0.0, "baseline", 3), (0.0, "fisher", 3), (0.0, "baseline", 4), (0.0, "fisher", 4)],
        [(0.0, "baseline", 5), (0.0, "fisher", 5)],
        [],
    ]
    final = runs()
    ran = sorted((r.data.tags["phase"], r.data.tags["trial_config"]) for r in final)
    assert len(ran) == len(set(ran)) == 18 and all(r.info.status == "FINISHED" for r in final)
    assert sorted(seed_of(r) for r in final if r.data.tags["phase"] != "grid") == [3, 3, 4, 4, 5, 5]
    assert MlflowClient(state.mlflow_uri).get_run(state.parent_run_id).info.status == "FINISHED"
    reported = run_tuner("report", "ada", "--storage", store, env=env)
    assert reported.returncode == 0, reported.stderr[-3000:]
    text = (store / "ada" / "report" / "report.md").read_text()
    assert (
        "## Adaptive replication" in text
        and "(first seeds and rounds): 18; every setting on 6 seeds would have been 24" in text
    )
    rounds = (store / "ada" / "report" / "rounds.csv").read_text().splitlines()
    assert len(rounds) == 1 + 4  # look 1: both comparisons; looks 2 and 3: the undecided one
