"""The paper's selection protocol as a phase (``select:``): hand-computed selections on small grids, with ties,
failures and ``by``; and a real study through the CLI whose driver is killed inside the selection phase."""

import json
import os
import signal
import subprocess
import textwrap
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tuner.errors import StudyError
from tuner.selection import select_settings, selected_trials
from tuner.state import load_state
from tuner.study import Study
from tuner.study_file import load_study

from .helpers import GATED_TASK, TUNER, run_tuner

LAMS = [0.01, 0.1, 1.0, 10.0]


def lam_study(**select):
    return Study(
        name="s",
        task="ranking",
        metric="valid_elementwise",
        mode="max",
        params={"n": 5},
        grid=[
            {"variant": ["baseline"]},
            {"loss": ["neuralsort", "softsort"], "variant": ["hessian", "fisher"], "lam": LAMS},
        ],
        seeds=[0, 1, 2],
        select={"over": ["lam"], "seed": 0, **select},
    )


def test_lambda_is_selected_per_loss_and_variant_and_replicated_on_every_seed():
    study = lam_study()
    trials = study.selection_trials()
    assert len(trials) == 1 + 2 * 2 * 4 and {t["seed"] for t in trials} == {0}
    value = {
        ("neuralsort", "hessian"): {0.01: 0.6, 0.1: 0.7, 1.0: 0.7, 10.0: 0.2},  # a tie: the first (0.1) wins
        ("neuralsort", "fisher"): {0.01: 0.1, 0.1: 0.2, 1.0: 0.3, 10.0: 0.9},
        ("softsort", "hessian"): {0.01: 0.5, 0.1: None, 1.0: 0.4, 10.0: 0.3},  # a failed candidate
        ("softsort", "fisher"): {0.01: None, 0.1: None, 1.0: None, 10.0: None},
    }  # nothing to select
    finals = [(t, 0.55 if t["variant"] == "baseline" else value[(t["loss"], t["variant"])][t["lam"]]) for t in trials]
    selections = select_settings(study, finals[::-1])  # the order results arrive in does not matter
    chosen = {(s["group"].get("loss"), s["group"]["variant"]): s["selected"] for s in selections}
    assert chosen == {
        (None, "baseline"): {"lam": None},
        ("neuralsort", "hessian"): {"lam": 0.1},
        ("neuralsort", "fisher"): {"lam": 10.0},
        ("softsort", "hessian"): {"lam": 0.01},
        ("softsort", "fisher"): None,
    }
    replicated, skipped = selected_trials(study, selections)
    settings = sorted({(t.get("loss"), t["variant"], t.get("lam")) for t in replicated}, key=str)
    assert settings == sorted(
        [
            (None, "baseline", None),
            ("neuralsort", "hessian", 0.1),
            ("neuralsort", "fisher", 10.0),
            ("softsort", "hessian", 0.01),
        ],
        key=str,
    )
    assert len(replicated) == 4 * 3 and sorted({t["seed"] for t in replicated}) == [0, 1, 2]
    assert len(skipped) == 1 and "'softsort'" in skipped[0] and "every candidate of its group failed" in skipped[0]


def test_minimising_objectives_select_the_lowest():
    study = Study(**{**lam_study().model_dump(), "metric": "train_loss", "mode": "min"})
    finals = [(t, t.get("lam", 1.0)) for t in study.selection_trials()]
    assert {s["selected"]["lam"] for s in select_settings(study, finals) if s["group"]["variant"] != "baseline"} == {
        0.01
    }


def test_selected_on_the_baseline_applies_to_every_variant():
    """Table 2's protocol: the learning rate per (loop, norm), chosen on the baseline, then used by NL Fisher too,
    whose own λ depends on the norm."""
    study = Study(
        name="t2",
        task="shortest_path",
        metric="valid_match_path",
        params={"loss": "bellman_ford"},
        grid=[
            {"loop": ["for", "while"], "norm": ["l1"], "variant": ["baseline"], "lr": [0.1, 0.01]},
            {"loop": ["for", "while"], "norm": ["l1"], "variant": ["fisher"], "lam": [1000], "lr": [0.1, 0.01]},
        ],
        seeds=[0, 1],
        select={"over": ["lr"], "seed": 0, "by": {"variant": "baseline"}},
    )
    trials = study.selection_trials()
    assert {t["variant"] for t in trials} == {"baseline"} and len(trials) == 4  # Fisher is not run to select
    best = {"for": 0.01, "while": 0.1}
    selections = select_settings(study, [(t, 1.0 if t["lr"] == best[t["loop"]] else 0.5) for t in trials])
    replicated, skipped = selected_trials(study, selections)
    assert not skipped
    assert sorted((t["loop"], t["variant"], t["lr"], t["seed"]) for t in replicated) == sorted(
        (loop, variant, best[loop], seed) for loop in best for variant in ("baseline", "fisher") for seed in (0, 1)
    )


@pytest.mark.parametrize(
    "select, message",
    [
        ({"over": ["tau"]}, r"select.over: \['tau'\] are not keys of the grid"),
        ({"over": []}, "over names the grid keys to select"),
        ({"over": ["lam"], "by": {"nope": 1}}, r"select.by: \['nope'\] are neither grid keys nor params"),
    ],
)
def test_bad_selections_are_one_line(tmp_path, select, message):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "bad",
                "task": "ranking",
                "metric": "valid_elementwise",
                "grid": [{"variant": ["fisher"], "lam": [0.1, 1.0]}],
                "select": select,
            }
        )
    )
    with pytest.raises(StudyError, match=message):
        load_study(path)


@pytest.mark.slow
def test_a_selection_study_killed_inside_its_selection_phase_resumes_to_the_same_selection(tmp_path):
    """The gated task's score peaks at lam = 1 (fisher) and 0.1 (hessian). Two selection trials finish, then the
    gate closes: the next ones wait at their last step, and the driver is SIGKILLed there. ``tuner resume`` finds
    the hand-computed selection, runs each selected setting on every seed once, and reports the selection."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "gatelab.py").write_text(textwrap.dedent(GATED_TASK))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "code")}
    gate = tmp_path / "gate"
    gate.touch()
    path = tmp_path / "sel.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "sel",
                "task": "gatelab:",
                "metric": "score",
                "mode": "max",
                "params": {"gate": str(gate)},
                "grid": [{"variant": ["baseline"]}, {"variant": ["hessian", "fisher"], "lam": [0.01, 0.1, 1.0, 10.0]}],
                "seeds": [0, 1],
                "select": {"over": ["lam"], "seed": 1},
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
        if not (store / "sel" / "study.json").exists():
            return []
        state = load_state(store / "sel")
        return MlflowClient(state.mlflow_uri).search_runs([state.experiment_id], "tags.role = 'trial'")

    deadline, closed = time.time() + 300, False
    while True:
        assert driver.poll() is None and time.time() < deadline, "the selection phase never got there"
        current = runs()
        if not closed and sum(r.info.status == "FINISHED" for r in current) >= 2:
            gate.unlink()
            closed = True
        waiting = [r for r in current if r.info.status == "RUNNING" and r.data.metrics.get("score") is not None]
        if closed and waiting:
            break
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert load_state(store / "sel").phases == {"select": "started"}
    gate.touch()
    result = run_tuner("resume", "sel", "--storage", store, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    state = load_state(store / "sel")
    chosen = {s["group"]["variant"]: s["selected"] for s in state.selections["select"]}
    assert chosen == {"baseline": {"lam": None}, "hessian": {"lam": 0.1}, "fisher": {"lam": 1.0}}
    final = runs()
    select = [json.loads(r.data.tags["trial_config"]) for r in final if r.data.tags["phase"] == "select"]
    assert len(select) == 9 and {c["seed"] for c in select} == {1}  # each candidate once, on the selection seed
    replicated = sorted(
        (c["variant"], c.get("lam"), c["seed"])
        for c in (json.loads(r.data.tags["trial_config"]) for r in final if r.data.tags["phase"] == "replicate")
    )
    assert replicated == sorted(
        [
            ("baseline", None, 0),
            ("baseline", None, 1),
            ("hessian", 0.1, 0),
            ("hessian", 0.1, 1),
            ("fisher", 1.0, 0),
            ("fisher", 1.0, 1),
        ]
    )
    assert all(r.info.status == "FINISHED" for r in final) and len(final) == 15
    parent = MlflowClient(state.mlflow_uri).get_run(state.parent_run_id)
    assert {"variant": "fisher", "lam": 1.0} in [
        {k: v for k, v in entry.items() if k in ("variant", "lam")}
        for entry in json.loads(parent.data.tags["selection"])
    ]
    reported = run_tuner("report", "sel", "--storage", store, env=env)
    assert reported.returncode == 0, reported.stderr[-3000:]
    text = (store / "sel" / "report" / "report.md").read_text()
    assert "## Selection" in text and "selection.csv" in os.listdir(store / "sel" / "report")
