"""``tuner dashboard`` serves one study's Optuna study, read-only: a real optuna-dashboard server over a storage
that also holds another user's study, probed through its HTTP API (list, read, delete, rename, tell, notes)."""

import json
import urllib.error
import urllib.request

import optuna
import pytest

from tuner.state import OptunaRef, StudyState, save_state
from tuner.study import Study

from .helpers import TUNER, free_port, serving

optuna.logging.set_verbosity(optuna.logging.WARNING)


def call(method, url, body=None):
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None


@pytest.fixture
def shared_storage(tmp_path):
    """A study folder whose search kept its Optuna study in a storage that also holds someone else's study."""
    url = f"sqlite:///{tmp_path / 'shared-optuna.db'}"
    for name in ("mine", "someone_elses"):
        created = optuna.create_study(study_name=name, storage=url, direction="maximize")
        created.enqueue_trial({"lam": 0.1})
        created.optimize(lambda trial: trial.suggest_float("lam", 0.01, 1.0, log=True), n_trials=2)
        created.ask()  # one trial left RUNNING: something a dashboard could tell
    study = Study(
        name="mine",
        task="ranking",
        metric="valid_elementwise",
        search={"trials": 2, "space": {"lam": {"log": [0.01, 1.0]}}, "fixed": {"variant": "fisher"}},
    )
    (tmp_path / "store" / "mine").mkdir(parents=True)
    save_state(
        tmp_path / "store" / "mine",
        StudyState(
            study=study,
            mlflow_uri="sqlite:////unused",
            experiment_id="1",
            parent_run_id="p",
            optuna=OptunaRef(url=url, study="mine"),
        ),
    )
    return tmp_path / "store", url


def test_the_dashboard_shows_one_study_and_changes_nothing(shared_storage):
    store, url = shared_storage
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    with serving([TUNER, "dashboard", "mine", "--storage", str(store), "--port", str(port)], f"{api}/studies"):
        status, listed = call("GET", f"{api}/studies")
        assert status == 200 and [s["study_name"] for s in listed["study_summaries"]] == ["mine"]
        (mine,) = listed["study_summaries"]
        status, detail = call("GET", f"{api}/studies/{mine['study_id']}")
        assert status == 200 and len(detail["trials"]) == 3
        other = optuna.load_study(study_name="someone_elses", storage=url)._study_id
        assert call("GET", f"{api}/studies/{other}")[0] >= 400
        running = [t for t in detail["trials"] if t["state"] == "Running"][0]["trial_id"]
        writes = [
            ("DELETE", f"{api}/studies/{mine['study_id']}", None),
            ("DELETE", f"{api}/studies/{other}", None),
            ("POST", f"{api}/studies/{mine['study_id']}/rename", {"study_name": "renamed"}),
            ("POST", f"{api}/studies", {"study_name": "new", "directions": ["maximize"]}),
            ("POST", f"{api}/trials/{running}/tell", {"state": "Complete", "values": [1.0]}),
            ("POST", f"{api}/trials/{running}/user-attrs", {"user_attrs": {"x": 1}}),
            ("PUT", f"{api}/studies/{mine['study_id']}/note", {"version": 0, "body": "hello"}),
        ]
        for method, address, body in writes:
            assert call(method, address, body)[0] >= 400, (method, address)
    after = {s.study_name: s for s in optuna.get_all_study_summaries(url)}
    assert sorted(after) == ["mine", "someone_elses"]
    trials = optuna.load_study(study_name="mine", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "RUNNING"] and not trials[2].user_attrs
