"""The search's Optuna study in its RDB storage (``tuner.optuna_study``): restores after killed drivers settle the
storage with Tune's saved searcher (any number of them), a success after a retry reaches the storage, warm starts
map earlier trials onto a new space only when they ran the same setting, errors are one line. Real Optuna on a
real SQLite storage, Ray's own ``OptunaSearch`` underneath; no Tune run (the CLI tests in ``test_search_cli.py``
drive the whole thing)."""

import pickle

import optuna
import pytest
from optuna.samplers import TPESampler
from optuna.trial import TrialState
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from tasks import ranking
from tuner.errors import OptunaStorageError
from tuner.optuna_study import (
    StoredOptunaSearch,
    check_name_free,
    new_phase_study,
    open_storage,
    reserve_study,
    settle_with_runs,
)
from tuner.state import OptunaRef, StudyState
from tuner.study import Study
from tuner.warm_start import warm_start_trials

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"lam": tune.loguniform(0.01, 100)}
KEPT = ("acc", "time_total")


def result(acc, run, step=1):
    return {"acc": acc, "time_total": 2.0 * acc, "training_iteration": step, "mlflow_run_id": run}


def searcher(url):
    made = StoredOptunaSearch(OptunaRef(url=url, study="s"), KEPT, metric="acc", mode="max", sampler=TPESampler(seed=0))
    made.set_search_properties("other_metric", "min", SPACE)  # Tune's metric/mode: the searcher keeps its own
    return made


def test_restore_after_a_kill_neither_loses_nor_repeats_a_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    new_phase_study(OptunaRef(url=url, study="s"), ["maximize"], OptunaSearch.convert_search_space(SPACE), [], "/here")
    pickled_at_start = pickle.dumps(searcher(url))  # tuner.pkl
    first = searcher(url)
    for trial in ("a", "b", "c"):
        first.suggest(trial)
    first.on_trial_result("a", result(0.5, "run-a"))
    first.on_trial_complete("a", result(0.5, "run-a"))
    first.on_trial_result("b", result(0.6, "run-b"))
    first.save(str(tmp_path / "searcher.pkl"))  # Tune's last saved state
    first.on_trial_complete("b", result(0.7, "run-b", step=2))  # told after the save
    first.suggest("d")  # asked after the save: the restored Tune never heard of it

    # the driver is killed; a new one unpickles tuner.pkl's searcher and restores Tune's saved state
    restored = pickle.loads(pickled_at_start)
    restored.set_search_properties("valid", "max", SPACE)
    restored.restore(str(tmp_path / "searcher.pkl"))
    stored = {
        t.user_attrs.get("tune_trial_id", f"#{t.number}"): t
        for t in optuna.load_study(study_name="s", storage=url).trials
    }
    assert stored["a"].state == TrialState.COMPLETE and stored["b"].state == TrialState.COMPLETE
    orphan = stored.pop("d")  # named at its suggestion, so even a trial lost before reporting is identified
    assert orphan.state == TrialState.FAIL and orphan.user_attrs["orphaned"] is True
    # Tune runs b again (its finished MLflow run is replayed) and continues c: b is not told twice
    restored.on_trial_result("b", result(0.7, "run-b", step=2))
    restored.on_trial_complete("b", result(0.7, "run-b", step=2))
    restored.on_trial_result("c", result(0.4, "run-c"))
    restored.on_trial_complete("c", result(0.4, "run-c"))
    restored.suggest("e")
    restored.on_trial_complete("e", result(0.9, "run-e"))

    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL, TrialState.COMPLETE]
    assert [t.value for t in trials] == [0.5, 0.7, 0.4, None, 0.9]
    assert [t.user_attrs.get("mlflow_run_id") for t in trials] == ["run-a", "run-b", "run-c", None, "run-e"]
    assert [t.user_attrs.get("tune_trial_id") for t in trials] == ["a", "b", "c", "d", "e"]
    assert trials[1].intermediate_values == {1: 0.6}  # the replayed result was not reported again
    assert trials[2].user_attrs["metrics"] == {"acc": 0.4, "time_total": 0.8}


def test_intermediate_values_are_keyed_by_the_tasks_step_and_survive_a_retrain_from_the_start(tmp_path):
    """A trial restored from an emptied checkpoint (tuner/atomic_files.py) retrains from step 0 while Tune's report
    count goes on: Optuna must hold each step's value once, under the step, not the count."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    new_phase_study(OptunaRef(url=url, study="s"), ["maximize"], OptunaSearch.convert_search_space(SPACE), [], "/here")
    search = searcher(url)
    search.suggest("a")
    values = {20: 0.3, 40: 0.4, 60: 0.5}
    first_attempt, retrain = [20, 40], [20, 40, 60]
    for count, step in enumerate(first_attempt + retrain, start=1):
        search.on_trial_result("a", {**result(values[step], "run-a", step=count), "step": step})
    search.on_trial_complete("a", {**result(0.5, "run-a", step=5), "step": 60})
    (trial,) = optuna.load_study(study_name="s", storage=url).trials
    assert trial.intermediate_values == values and trial.value == 0.5


def test_two_objectives_are_told_as_values(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    new_phase_study(
        OptunaRef(url=url, study="s"), ["maximize", "minimize"], OptunaSearch.convert_search_space(SPACE), [], "/here"
    )
    two = StoredOptunaSearch(
        OptunaRef(url=url, study="s"),
        KEPT,
        metric=["acc", "time_total"],
        mode=["max", "min"],
        sampler=TPESampler(seed=0),
    )
    two.set_search_properties("acc", "max", SPACE)  # Tune passes the first objective only
    two.suggest("a")
    two.on_trial_result("a", result(0.5, "run-a"))
    two.on_trial_complete("a", result(0.5, "run-a"))
    (trial,) = optuna.load_study(study_name="s", storage=url).trials
    assert trial.values == [0.5, 1.0] and trial.user_attrs["mlflow_run_id"] == "run-a"


def _state(study, url, name):
    return StudyState(
        study=study,
        mlflow_uri="sqlite:////nowhere",
        experiment_id="1",
        parent_run_id="p",
        optuna=OptunaRef(url=url, study=name),
    )


def test_warm_start_maps_trials_by_name_and_skips_what_ran_another_setting(tmp_path):
    """An earlier search over variant x lam x tau seeds a new search over lam (and tau) with the variant fixed to
    fisher: its Hessian trials ran another setting and are skipped, counted by reason, as are trials outside the
    new space and trials without the new metrics."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old_space = {
        "lam": tune.loguniform(0.001, 1000),
        "tau": tune.choice([0.5, 1.0]),
        "variant": tune.choice(["fisher", "hessian"]),
    }
    new_phase_study(
        OptunaRef(url=url, study="old"), ["maximize"], OptunaSearch.convert_search_space(old_space), [], "/old"
    )
    old = optuna.load_study(study_name="old", storage=url)
    cases = [
        ({"lam": 0.1, "tau": 0.5, "variant": "fisher"}, 0.61),
        ({"lam": 500.0, "tau": 1.0, "variant": "fisher"}, 0.62),  # lam outside the new range
        ({"lam": 1.0, "tau": 1.0, "variant": "fisher"}, 0.63),
        ({"lam": 1.0, "tau": 1.0, "variant": "hessian"}, 0.70),  # the same lam, another variant
        ({"lam": 2.0, "tau": 1.0, "variant": "hessian"}, 0.71),
        ({"lam": 2.0, "tau": 0.5, "variant": "fisher"}, None),
    ]  # no metrics
    for params, acc in cases:
        old.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=OptunaSearch.convert_search_space(old_space),
                value=0.0,
                user_attrs={"metrics": {"valid_exact": acc, "time_total": 3.0}} if acc is not None else {},
            )
        )
    old.add_trial(
        optuna.trial.create_trial(
            params={"lam": 0.2, "tau": 0.5, "variant": "fisher"},
            distributions=OptunaSearch.convert_search_space(old_space),
            state=TrialState.FAIL,
        )
    )
    old_study = Study(
        name="old",
        task="ranking",
        metric="valid_exact",
        params={"n": 5},
        search={
            "trials": 4,
            "space": {
                "lam": {"log": [1e-3, 1e3]},
                "tau": {"choice": [0.5, 1.0]},
                "variant": {"choice": ["fisher", "hessian"]},
            },
        },
    )
    new = Study(
        name="new",
        task="ranking",
        metric=["valid_exact", "time_total"],
        mode=["max", "min"],
        params={"n": 5, "steps": 100_000},  # the task's default, spelled out: the same setting
        search={
            "trials": 4,
            "fixed": {"variant": "fisher"},
            "space": {"lam": {"log": [1e-2, 1e2]}, "tau": {"choice": [0.5, 1.0]}},
        },
    )
    dists = OptunaSearch.convert_search_space({"lam": tune.loguniform(0.01, 100), "tau": tune.choice([0.5, 1.0])})
    seeded, lines = warm_start_trials([("old", old_study, _state(old_study, url, "old"))], new, dists, ranking.describe)
    assert [s["params"] for s in seeded] == [{"lam": 0.1, "tau": 0.5}, {"lam": 1.0, "tau": 1.0}]
    assert [s["values"] for s in seeded] == [[0.61, 3.0], [0.63, 3.0]]
    assert lines == [
        "warm start from study 'old': 2 trial(s) seed the search, 4 skipped (2 ran with variant='hessian' "
        "(this study: 'fisher'); 1 no final valid_exact/time_total; 1 outside this space in lam), "
        "1 unfinished"
    ]
    # another n (a param of both studies) is another setting too
    other_n = Study(
        name="n10",
        task="ranking",
        metric="valid_exact",
        params={"n": 10},
        search={
            "trials": 4,
            "fixed": {"variant": "fisher"},
            "space": {"lam": {"log": [1e-2, 1e2]}, "tau": {"choice": [0.5, 1.0]}},
        },
    )
    none, lines = warm_start_trials(
        [("old", old_study, _state(old_study, url, "old"))], other_n, dists, ranking.describe
    )
    assert none == [] and "ran with n=5 (this study: 10)" in lines[0]
    new_url = f"sqlite:///{tmp_path / 'new.db'}"
    new_phase_study(OptunaRef(url=new_url, study="new"), ["maximize", "minimize"], dists, seeded, "/new")
    made = optuna.load_study(study_name="new", storage=new_url)
    assert [t.user_attrs["warm_start"] for t in made.trials] == ["old", "old"] and made.directions[1].name == "MINIMIZE"


def test_storage_errors_are_one_line(tmp_path):
    with pytest.raises(
        OptunaStorageError, match=r"cannot open the Optuna storage postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/x"
    ) as error:
        open_storage("postgresql+psycopg://u:secret@127.0.0.1:1/x")
    assert "\n" not in str(error.value) and "secret" not in str(error.value)
    with pytest.raises(OptunaStorageError, match="cannot open the Optuna storage nosuchdb://x"):
        open_storage("nosuchdb://x")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    reserve_study(url, "taken", ["maximize"], "/studies/taken")
    with pytest.raises(OptunaStorageError, match=r"already holds a study named 'taken'"):
        check_name_free(url, "taken")
    check_name_free(url, "free")
    # starting the search phase anew replaces the study's own copy, never another folder's study of that name
    new_phase_study(OptunaRef(url=url, study="taken"), ["maximize"], {}, [], "/studies/taken")
    with pytest.raises(
        OptunaStorageError, match=r"belongs to the study in /studies/taken, not to this one \(/elsewhere/taken\)"
    ):
        new_phase_study(OptunaRef(url=url, study="taken"), ["maximize"], {}, [], "/elsewhere/taken")
    assert optuna.load_study(study_name="taken", storage=url).user_attrs["tuner_study_folder"] == "/studies/taken"


def test_any_number_of_kills_in_the_replay_window_settle_the_same_way(tmp_path):
    """kill -> resume -> Tune saves again -> kill before the replay of a trial told before the first restore
    finishes -> resume, three times over: the trial is never forgotten (it would raise KeyError in Ray's
    searcher), never told twice, and the storage ends with one COMPLETE trial per trial."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    new_phase_study(OptunaRef(url=url, study="s"), ["maximize"], OptunaSearch.convert_search_space(SPACE), [], "/here")
    pickled_at_start = pickle.dumps(searcher(url))  # tuner.pkl
    first = searcher(url)
    for trial in ("a", "b"):
        first.suggest(trial)
    first.on_trial_complete("a", result(0.5, "run-a"))
    first.save(str(tmp_path / "state-0.pkl"))
    first.on_trial_complete("b", result(0.7, "run-b"))  # told after the save: replayed after every restore
    for kill in range(1, 4):
        restored = pickle.loads(pickled_at_start)
        restored.set_search_properties("valid", "max", SPACE)
        restored.restore(str(tmp_path / f"state-{kill - 1}.pkl"))
        assert "b" in restored._told_before_restore
        restored.save(str(tmp_path / f"state-{kill}.pkl"))  # Tune saves again before b's replay finished; killed
    restored.on_trial_result("b", result(0.7, "run-b"))
    restored.on_trial_complete("b", result(0.7, "run-b"))
    restored.suggest("c")
    restored.on_trial_complete("c", result(0.9, "run-c"))
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [(t.user_attrs.get("tune_trial_id"), t.state, t.value) for t in trials] == [
        ("a", TrialState.COMPLETE, 0.5),
        ("b", TrialState.COMPLETE, 0.7),
        ("c", TrialState.COMPLETE, 0.9),
    ]


class _Run:
    """The parts of an MLflow run that settle_with_runs reads."""

    def __init__(self, trial_id, run_id, status, metrics):
        self.info = type("Info", (), {"run_id": run_id, "status": status})()
        self.data = type("Data", (), {"tags": {"trial_id": trial_id}, "metrics": metrics})()


def test_a_success_after_a_retry_reaches_the_storage_with_its_values(tmp_path):
    """Trial a was told FAIL, then finished on a retry (Ray's limiter drops that completion); trial b's driver
    died before telling it. settle_with_runs gives each finished run one COMPLETE trial of its values, once."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    distributions = OptunaSearch.convert_search_space(SPACE)
    new_phase_study(OptunaRef(url=url, study="s"), ["maximize"], distributions, [], "/here")
    first = searcher(url)
    for trial in ("a", "b", "c"):
        first.suggest(trial)
    first.on_trial_complete("a", None, error=True)
    first.on_trial_complete("c", result(0.3, "run-c"))
    runs = [
        _Run("a", "run-a", "FINISHED", {"acc": 0.8, "time_total": 1.6}),
        _Run("b", "run-b", "FINISHED", {"acc": 0.6, "time_total": 1.2}),
        _Run("c", "run-c", "FINISHED", {"acc": 0.3, "time_total": 0.6}),
        _Run("d", "run-d", "FAILED", {}),
    ]
    ref = OptunaRef(url=url, study="s")
    assert settle_with_runs(ref, runs, ("acc",), distributions) == 2
    assert settle_with_runs(ref, runs, ("acc",), distributions) == 0  # idempotent
    trials = optuna.load_study(study_name="s", storage=url).trials
    complete = {t.user_attrs["tune_trial_id"]: t for t in trials if t.state == TrialState.COMPLETE}
    assert {k: t.value for k, t in complete.items()} == {"a": 0.8, "b": 0.6, "c": 0.3}
    assert {k: t.user_attrs["mlflow_run_id"] for k, t in complete.items()} == {"a": "run-a", "b": "run-b", "c": "run-c"}
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1
    assert complete["a"].user_attrs["retry_of"] == failed[0].number and complete["a"].params == failed[0].params
