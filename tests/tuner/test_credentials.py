"""Credentials are split off URLs at the command line and never shown: the URL without them is what a study
records, the password goes to the client library's environment variable."""

import os
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuner.credentials import move_to_environment, redact, redact_text, split_credentials
from tuner.errors import TunerError


@pytest.mark.parametrize(
    "url, clean, env",
    [
        (
            "http://alice:s3cret@head:5000",
            "http://head:5000",
            {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "s3cret"},
        ),
        (
            "https://alice:p%40ss@head/mlflow",
            "https://head/mlflow",
            {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "p@ss"},
        ),
        (
            "postgresql+psycopg://optuna:p%40ss@10.0.0.1:5432/optuna",
            "postgresql+psycopg://optuna@10.0.0.1:5432/optuna",
            {"PGPASSWORD": "p@ss"},
        ),
        ("postgresql://mlflow@head/mlflow", "postgresql://mlflow@head/mlflow", {}),
        # a generated password holds /, ?, # or a raw @: urlsplit would cut it there and keep the rest in the URL
        ("postgresql+psycopg://u:ab/cd@host/optuna", "postgresql+psycopg://u@host/optuna", {"PGPASSWORD": "ab/cd"}),
        ("postgresql://u:ab#c?d@host:5432/optuna", "postgresql://u@host:5432/optuna", {"PGPASSWORD": "ab#c?d"}),
        (
            "postgresql://u:pw@host/db?application_name=a@b",
            "postgresql://u@host/db?application_name=a@b",
            {"PGPASSWORD": "pw"},
        ),
        (
            "http://alice:w/d?e#f@head:5000/mlflow",
            "http://head:5000/mlflow",
            {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "w/d?e#f"},
        ),
        (
            "http://alice:p@ss@head:5000",
            "http://head:5000",
            {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "p@ss"},
        ),
        ("sqlite:////abs/mlflow.db", "sqlite:////abs/mlflow.db", {}),
        ("http://head:5000", "http://head:5000", {}),
        (None, None, {}),
    ],
)
def test_split_keeps_the_url_and_moves_the_secret(url, clean, env):
    assert split_credentials(url) == (clean, env)


@given(
    user=st.text("abcxyz0123_-.", min_size=1, max_size=8),
    password=st.text("abcXYZ0123!$&'()*+,;=~%_-./?#:", min_size=1, max_size=12),
    host=st.sampled_from(["h", "10.1.2.3:5432", "db.x"]),
    scheme=st.sampled_from(["postgresql", "postgresql+psycopg", "http", "https", "mysql+pymysql"]),
)
def test_no_password_survives_splitting_or_redaction(user, password, host, scheme):
    url = f"{scheme}://{user}:{password}@{host}/db"
    clean, env = split_credentials(url)
    kept_user = "" if scheme.startswith("http") else f"{user}@"  # MLflow reads the user from the environment
    assert clean == f"{scheme}://{kept_user}{host}/db"
    assert unquote(password) in env.values()
    shown = f"{scheme}://{user}:***@{host}/db"
    assert redact(url) == shown
    assert redact_text(f"tuner run x.yaml --optuna-storage {url} --mlflow-uri {url}") == (
        f"tuner run x.yaml --optuna-storage {shown} --mlflow-uri {shown}"
    )
    assert redact(clean) == clean


def test_two_passwords_for_one_variable_are_refused(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "")  # recorded, so the variable set below is undone after the test
    monkeypatch.delenv("PGPASSWORD")
    move_to_environment({"PGPASSWORD": "one"})
    assert os.environ["PGPASSWORD"] == "one"
    move_to_environment({"PGPASSWORD": "one"})  # the same one again is fine
    with pytest.raises(TunerError, match="two different passwords for PGPASSWORD.*PGPASSFILE"):
        move_to_environment({"PGPASSWORD": "two"})
