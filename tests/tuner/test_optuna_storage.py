"""The search's Optuna study in its RDB storage (``tuner.optuna_storage``): a restore after a killed driver
settles the storage with Tune's saved searcher, warm starts map earlier trials onto a new space, errors are one
line. Real Optuna on a real SQLite storage, Ray's own ``OptunaSearch`` underneath; no Tune run (the CLI tests in
``test_search_cli.py`` drive the whole thing)."""
import pickle

import optuna
import pytest
from optuna.samplers import TPESampler
from optuna.trial import TrialState
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from tuner.errors import OptunaStorageError
from tuner.optuna_storage import (StoredOptunaSearch, check_name_free, new_phase_study, open_storage, reserve_study,
                                  warm_start_trials)
from tuner.study import Study

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"lam": tune.loguniform(0.01, 100)}
KEPT = ("acc", "time_total")


def result(acc, run, step=1):
    return {"acc": acc, "time_total": 2.0 * acc, "training_iteration": step, "mlflow_run_id": run}


def searcher(url):
    made = StoredOptunaSearch(url, "s", KEPT, metric="acc", mode="max", sampler=TPESampler(seed=0))
    made.set_search_properties("other_metric", "min", SPACE)  # Tune's metric/mode: the searcher keeps its own
    return made


def test_restore_after_a_kill_neither_loses_nor_repeats_a_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    new_phase_study(url, "s", ["maximize"], OptunaSearch.convert_search_space(SPACE), [], "/here")
    pickled_at_start = pickle.dumps(StoredOptunaSearch(url, "s", KEPT, metric="acc", mode="max",
                                                       sampler=TPESampler(seed=0)))  # tuner.pkl
    first = searcher(url)
    for trial in ("a", "b", "c"):
        first.suggest(trial)
    first.on_trial_result("a", result(0.5, "run-a"))
    first.on_trial_complete("a", result(0.5, "run-a"))
    first.on_trial_result("b", result(0.6, "run-b"))
    first.save(str(tmp_path / "searcher.pkl"))      # Tune's last saved state
    first.on_trial_complete("b", result(0.7, "run-b", step=2))  # told after the save
    first.suggest("d")                               # asked after the save: the restored Tune never heard of it

    # the driver is killed; a new one unpickles tuner.pkl's searcher and restores Tune's saved state
    restored = pickle.loads(pickled_at_start)
    restored.set_search_properties("valid", "max", SPACE)
    restored.restore(str(tmp_path / "searcher.pkl"))
    stored = {t.user_attrs.get("tune_trial_id", f"#{t.number}"): t for t in optuna.load_study(study_name="s", storage=url).trials}
    assert stored["a"].state == TrialState.COMPLETE and stored["b"].state == TrialState.COMPLETE
    orphan = stored.pop("#3")
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
    assert [t.user_attrs.get("tune_trial_id") for t in trials] == ["a", "b", "c", None, "e"]
    assert trials[1].intermediate_values == {1: 0.6}  # the replayed result was not reported again
    assert trials[2].user_attrs["metrics"] == {"acc": 0.4, "time_total": 0.8}


def test_two_objectives_are_told_as_values(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    new_phase_study(url, "s", ["maximize", "minimize"], OptunaSearch.convert_search_space(SPACE), [], "/here")
    two = StoredOptunaSearch(url, "s", KEPT, metric=["acc", "time_total"], mode=["max", "min"], sampler=TPESampler(seed=0))
    two.set_search_properties("acc", "max", SPACE)  # Tune passes the first objective only
    two.suggest("a")
    two.on_trial_result("a", result(0.5, "run-a"))
    two.on_trial_complete("a", result(0.5, "run-a"))
    (trial,) = optuna.load_study(study_name="s", storage=url).trials
    assert trial.values == [0.5, 1.0] and trial.user_attrs["mlflow_run_id"] == "run-a"


def test_warm_start_maps_trials_by_name_and_skips_the_rest(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old_space = {"lam": tune.loguniform(0.001, 1000), "tau": tune.choice([0.5, 1.0])}
    new_phase_study(url, "old", ["maximize"], OptunaSearch.convert_search_space(old_space), [], "/old")
    old = optuna.load_study(study_name="old", storage=url)
    cases = [({"lam": 0.1, "tau": 0.5}, 0.61), ({"lam": 500.0, "tau": 1.0}, 0.62),  # lam outside the new range
             ({"lam": 1.0, "tau": 1.0}, 0.63), ({"lam": 2.0, "tau": 0.5}, None)]  # no metrics: skipped
    for params, acc in cases:
        old.add_trial(optuna.trial.create_trial(
            params=params, distributions=OptunaSearch.convert_search_space(old_space), value=0.0,
            user_attrs={"metrics": {"valid": acc, "time_total": 3.0}} if acc is not None else {}))
    old.add_trial(optuna.trial.create_trial(params={"lam": 0.2, "tau": 0.5}, distributions=OptunaSearch.convert_search_space(old_space),
                                            state=TrialState.FAIL))
    old_study = Study(name="old", task="ranking", metric="valid", search={"trials": 4, "space": {"lam": {"log": [1e-3, 1e3]}},
                                                                         "fixed": {"variant": "fisher"}})
    new = Study(name="new", task="ranking", metric=["valid", "time_total"], mode=["max", "min"],
                search={"trials": 4, "space": {"lam": {"log": [1e-2, 1e2]}, "variant": {"choice": ["fisher", "hessian"]}}})
    dists = OptunaSearch.convert_search_space({"lam": tune.loguniform(0.01, 100), "variant": tune.choice(["fisher", "hessian"])})
    seeded, lines = warm_start_trials([("old", old_study, {"optuna_storage": url, "optuna_study": "old"})], new, dists)
    assert [s["params"] for s in seeded] == [{"lam": 0.1, "variant": "fisher"}, {"lam": 1.0, "variant": "fisher"}]
    assert [s["values"] for s in seeded] == [[0.61, 3.0], [0.63, 3.0]]
    assert lines == ["warm start from study 'old': 2 trial(s) seed the search, 2 skipped (outside this search space "
                     "or without its metrics), 1 unfinished"]
    new_url = f"sqlite:///{tmp_path / 'new.db'}"
    new_phase_study(new_url, "new", ["maximize", "minimize"], dists, seeded, "/new")
    made = optuna.load_study(study_name="new", storage=new_url)
    assert [t.user_attrs["warm_start"] for t in made.trials] == ["old", "old"] and made.directions[1].name == "MINIMIZE"


def test_storage_errors_are_one_line(tmp_path):
    with pytest.raises(OptunaStorageError, match=r"cannot open the Optuna storage postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/x") as error:
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
    new_phase_study(url, "taken", ["maximize"], {}, [], "/studies/taken")
    with pytest.raises(OptunaStorageError, match=r"belongs to the study in /studies/taken, not to this one \(/elsewhere/taken\)"):
        new_phase_study(url, "taken", ["maximize"], {}, [], "/elsewhere/taken")
    assert optuna.load_study(study_name="taken", storage=url).user_attrs["tuner_study_folder"] == "/studies/taken"
