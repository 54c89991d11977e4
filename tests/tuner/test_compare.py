"""``tuner compare``: settings matched across two executions, verdicts, what else differs, the exit code.

The fast tests log executions into a real MLflow store without training (the runs carry what a trial logs:
tags, params, final metrics); the slow one runs three real tiny studies through the CLI."""

import math

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from scipy import stats

from tasks import TASKS
from tuner import cli
from tuner.compare import matching_keys
from tuner.state import StudyState, save_state
from tuner.study import Study
from tuner.tracking import PARENT_TAG, prepare_experiment, start_parent_run

from .helpers import REPO, run_tuner, tiny_study

pytestmark = pytest.mark.xdist_group("test_compare")  # one worker runs the module: its module-scoped fixture once

METRIC, OTHER = TASKS.get("ranking").REPORT_METRICS[:2]  # the compared metrics: the task's report metrics


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    """One SQLite store for every fabricated execution (two executions of one study name share an experiment,
    as on a team's tracking server: compare must read each by its execution id)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def fabricate(store, name, uri, cells, *, params=None, env=None, margin=None, task="ranking"):
    """A finished execution of study ``name`` in ``store``: ``cells`` maps (variant, lam, extra params) to
    {seed: value of METRIC} (OTHER is METRIC / 2 + 0.4); each trial run is tagged and logged as a trial logs."""
    folder = store / name
    folder.mkdir(parents=True)
    experiment = prepare_experiment(uri, name, None)
    parent = start_parent_run(uri, experiment, name, {}, {"study": name})
    client = MlflowClient(uri)
    for i, ((variant, lam, extra), values) in enumerate(cells.items()):
        for seed, value in values.items():
            tags = {
                PARENT_TAG: parent,
                "role": "trial",
                "phase": "grid",
                "trial_id": f"t{i}_{seed}",
                "study": name,
                "git_commit": "c0ffee",
                "env.torch": "2.13.0",
                "env.python": "3.11.2",
                **(env or {}),
            }
            run = client.create_run(experiment, tags=tags)
            config = {
                "loss": "neuralsort",
                "steps": 4,
                "lr": 0.001,
                **(params or {}),
                "variant": variant,
                "lam": lam,
                "seed": seed,
                **dict(extra),
            }
            metrics = [Metric(METRIC, value, 0, 4), Metric(OTHER, value / 2 + 0.4, 0, 4)]
            client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in config.items()])
            client.set_terminated(run.info.run_id, "FINISHED")
    study = Study(
        name=name, task=task, metric="valid_exact", grid=({"variant": ("baseline",)},), report={"margin": margin or {}}
    )
    save_state(
        folder,
        StudyState(
            study=study,
            mlflow_uri=uri,
            experiment_id=experiment,
            parent_run_id=parent,
            git_commit="c0ffee",
            git_dirty="False",
        ),
    )
    return folder


SEEDS = (0, 1, 2, 3)
BASE = {s: v for s, v in zip(SEEDS, (0.50, 0.60, 0.55, 0.65))}
BEFORE = {
    ("baseline", None, ()): BASE,
    ("fisher", 0.1, ()): {s: v + 0.10 for s, v in BASE.items()},
    ("hessian", 0.1, ()): {s: v + 0.05 for s, v in BASE.items()},
    ("hessian", 1.0, ()): {s: v - 0.05 for s, v in BASE.items()},
}


def test_an_identical_rerun_is_no_difference_and_passes(tmp_path, uri, capsys):
    """The same values on the same seeds: every difference exactly 0, no spread, so no test and no verdict but
    undecided; --fail-on worse exits 0; nothing differs in params or environment."""
    fabricate(tmp_path / "a", "same", uri, BEFORE)
    fabricate(tmp_path / "b", "same", uri, BEFORE)
    out = tmp_path / "out"
    assert (
        cli.main(
            [
                "compare",
                "same",
                "same",
                "--before-storage",
                str(tmp_path / "a"),
                "--after-storage",
                str(tmp_path / "b"),
                "--out",
                str(out),
                "--fail-on",
                "worse",
            ]
        )
        == 0
    )
    table = pd.read_csv(out / "compare.csv")
    assert len(table) == 8 and set(table["verdict"]) == {"undecided"} and (table["diff"] == 0).all()
    assert set(table["note"]) == {"no spread"} and table["paired"].all()
    text = (out / "compare.md").read_text()
    assert "## Parameters each execution keeps fixed, where they differ\n\nNone." in text
    assert "None: the same git commit" in text
    assert "0 better, 0 worse, 0 equivalent, 8 undecided" in capsys.readouterr().out


def test_a_planted_regression_is_worse_and_fails_the_job(tmp_path, uri, capsys):
    """AFTER, against BEFORE on the same seeds: fisher 0.2 worse (a much smaller lr, logged), hessian λ = 0.1
    within ±0.02 of BEFORE (margin 0.05), hessian λ = 1 better by 0.2 on other seeds (unpaired, Welch), the
    baseline unchanged; steps 4 -> 2 and torch 2.13.0 -> 2.14.1 everywhere; a setting only AFTER runs."""
    noise = dict(zip(SEEDS, (0.01, -0.012, 0.008, -0.006)))
    after = {
        ("baseline", None, (("lr", 0.001),)): BASE,
        ("fisher", 0.1, (("lr", 1e-6),)): {s: v + 0.10 - 0.2 + noise[s] for s, v in BASE.items()},
        ("hessian", 0.1, (("lr", 0.001),)): {s: v + 0.05 + noise[s] / 2 for s, v in BASE.items()},
        ("hessian", 1.0, (("lr", 0.001),)): {s + 10: v - 0.05 + 0.2 + noise[s] for s, v in BASE.items()},
        ("hessian", 10.0, (("lr", 0.001),)): BASE,
    }
    before = fabricate(tmp_path / "store", "before", uri, BEFORE)
    fabricate(
        tmp_path / "store",
        "after",
        uri,
        after,
        params={"steps": 2},
        env={"env.torch": "2.14.1"},
        margin={METRIC: 0.05, OTHER: 0.05},
    )
    out = tmp_path / "out"
    assert (
        cli.main(
            [
                "compare",
                "before",
                "after",
                "--storage",
                str(tmp_path / "store"),
                "--out",
                str(out),
                "--fail-on",
                "worse",
            ]
        )
        == 1
    )
    captured = capsys.readouterr()
    assert "verdict(s) worse (--fail-on)" in captured.err
    table = pd.read_csv(out / "compare.csv")
    verdicts = table[table["present"] == "both"].set_index(["variant", "lam", "metric"])["verdict"]
    by = {(v, None if pd.isna(lam) else lam, m): word for (v, lam, m), word in verdicts.items()}
    assert by[("fisher", 0.1, METRIC)] == by[("fisher", 0.1, OTHER)] == "worse"
    assert by[("hessian", 0.1, METRIC)] == "equivalent"
    assert by[("hessian", 1.0, METRIC)] == "better"
    assert by[("baseline", None, METRIC)] == "undecided"
    row = table[(table["variant"] == "hessian") & (table["lam"] == 1.0) & (table["metric"] == METRIC)].iloc[0]
    welch = stats.ttest_ind(
        [v + 0.15 + noise[s] for s, v in BASE.items()], [v - 0.05 for v in BASE.values()], equal_var=False
    )
    assert not row["paired"] and row["p"] == pytest.approx(welch.pvalue)
    fisher = table[(table["variant"] == "fisher") & (table["metric"] == METRIC)].iloc[0]
    assert fisher["diff"] == pytest.approx(np.mean([-0.2 + n for n in noise.values()]))
    assert fisher["ci_low"] < fisher["diff"] < fisher["ci_high"] < 0 and fisher["p_better"] == 0
    assert fisher["changed"] == "lr 0.001 → 1e-06"
    assert table.loc[table["present"] == "after", "setting"].tolist() == ["variant=hessian lam=10"]
    text = (out / "compare.md").read_text()
    assert (
        "- steps: 4 → 2" in text
        and "- torch: 2.13.0 → 2.14.1" in text
        and "python" not in text.split("Recorded environment")[1]
    )
    assert "AFTER only: variant=hessian lam=10 (4 seeds)" in text and "**Verdicts.**" in text
    assert (out / "compare.png").stat().st_size > 10_000
    # the same comparison without --fail-on is informational: exit 0
    assert cli.main(["compare", "before", "after", "--storage", str(tmp_path / "store"), "--out", str(out)]) == 0
    assert before.exists()


def test_settings_match_on_what_both_vary_unless_that_is_ambiguous():
    def frame(rows):
        return pd.DataFrame(rows, columns=["param_variant", "param_lam", "param_seed", "param_n", "param_lr"])

    before = frame([("baseline", None, 0, 5, 1e-3), ("fisher", 0.1, 0, 5, 1e-3)])
    lr_planted = frame([("baseline", None, 0, 5, 1e-3), ("fisher", 0.1, 0, 5, 1e-6)])
    assert matching_keys(before, lr_planted) == ["param_variant", "param_lam"]  # lr is a change, not a setting
    two_sizes = frame(
        [
            ("baseline", None, 0, 5, 1e-3),
            ("baseline", None, 0, 10, 1e-3),
            ("fisher", 0.1, 0, 5, 1e-3),
            ("fisher", 0.1, 0, 10, 1e-3),
        ]
    )
    assert matching_keys(two_sizes, before) == ["param_n", "param_variant", "param_lam"]  # n=10: BEFORE only


def test_user_errors_exit_2(tmp_path, uri, capsys):
    fabricate(tmp_path / "s", "ranked", uri, {("baseline", None, ()): BASE})
    fabricate(tmp_path / "s", "paths", uri, {("baseline", None, ()): BASE}, task="shortest_path")
    assert cli.main(["compare", "ranked", "paths", "--storage", str(tmp_path / "s")]) == 2
    assert "BEFORE runs task 'ranking' and AFTER 'shortest_path'" in capsys.readouterr().err
    assert cli.main(["compare", "ranked", "missing", "--storage", str(tmp_path / "s")]) == 2
    assert cli.main(["compare", "ranked", "ranked", "--storage", str(tmp_path / "s"), "--fail-on", "worst"]) == 2
    assert "'worst' is no verdict" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_on_real_tiny_studies(tmp_path):
    """Three real executions of a tiny study (the example top-k task: an MLP that learns in 20 Adam steps, so a
    planted regression is decidable on 3 seeds; the ranking task at this size is still at chance): a rerun in
    another storage is no difference, a fisher lr of 1e-6 is worse, and --fail-on worse fails the job."""
    env = {"PYTHONPATH": str(REPO / "examples" / "topk_lab")}
    study = {
        "task": "topk_lab.task",
        "metric": "valid_top1",
        "params": {
            "loss": "topk_lab.loss:DiffSortTopKLoss",
            "k": 2,
            "steps": 20,
            "batch_size": 64,
            "eval_every": 20,
            "lr": 3e-3,
        },
        "grid": [{"variant": ["baseline"]}, {"variant": ["fisher"], "lam": [1.0]}],
        "seeds": [0, 1, 2],
        "report": {"margin": {"test_top1": 0.05, "test_topk": 0.05}},
    }
    regressed = {**study, "grid": [{"variant": ["baseline"]}, {"variant": ["fisher"], "lam": [1.0], "lr": [1e-6]}]}
    for store, name, spec in (("a", "cmp", study), ("b", "cmp", study), ("a", "cmp_regressed", regressed)):
        (tmp_path / store).mkdir(exist_ok=True)
        path = tiny_study(tmp_path / store, name, **spec)
        result = run_tuner("run", path, "--storage", tmp_path / store / "studies", env=env, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]

    same = run_tuner(
        "compare",
        "cmp",
        "cmp",
        "--before-storage",
        tmp_path / "a" / "studies",
        "--after-storage",
        tmp_path / "b" / "studies",
        "--out",
        tmp_path / "same",
        "--fail-on",
        "worse",
        env=env,
    )
    assert same.returncode == 0, same.stderr[-3000:]
    table = pd.read_csv(tmp_path / "same" / "compare.csv")
    assert len(table) == 4 and set(table["verdict"]) <= {"equivalent", "undecided"}
    assert table["diff"].abs().max() < 1e-6  # the same code, seeds and machine: the same numbers
    text = (tmp_path / "same" / "compare.md").read_text()
    assert "## Parameters each execution keeps fixed, where they differ\n\nNone." in text
    assert "git_commit:" not in text and "torch:" not in text  # (code_hash differs if the tree is edited meanwhile)

    worse = run_tuner(
        "compare",
        "cmp",
        "cmp_regressed",
        "--storage",
        tmp_path / "a" / "studies",
        "--out",
        tmp_path / "worse",
        "--fail-on",
        "worse",
        env=env,
    )
    assert worse.returncode == 1, worse.stdout + worse.stderr[-3000:]
    table = pd.read_csv(tmp_path / "worse" / "compare.csv").set_index(["variant", "metric"])
    assert table.loc[("fisher", "test_top1"), "verdict"] == "worse"
    assert table.loc[("fisher", "test_top1"), "changed"] == "lr 0.003 → 1e-06"
    assert set(table.loc["baseline", "verdict"]) <= {"equivalent", "undecided"}
    assert not math.isnan(table.loc[("fisher", "test_top1"), "ci_low"])
