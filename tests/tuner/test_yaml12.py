"""Study files read numbers as researchers write them: YAML 1.2's core schema, checked against ruamel.yaml (a YAML
1.2 loader we did not write) on the spellings ML configs use, and through the study loader end to end."""

import math

import pytest
from ruamel.yaml import YAML

from tuner.errors import StudyError
from tuner.study_file import load_study
from tuner.yaml12 import load_yaml12

SPELLINGS = [
    "1e-3",
    "1E3",
    ".5",
    "+1e-2",
    "-1.5e+2",
    "1.0e-3",
    "3.",
    "0",
    "-0",
    "010",
    "0o17",
    "0x1F",
    "+12",
    "12e",
    "1e3.5",
    "e3",
    ".e3",
    "1:20",
    "yes",
    "no",
    "on",
    "off",
    "Yes",
    "true",
    "False",
    "TRUE",
    "null",
    "Null",
    "~",
    ".inf",
    "-.Inf",
    "+.INF",
    ".nan",
    ".NaN",
    "1,000",
    "inf",
    "nan",
    "'1e-3'",
    '"1e3"',
    "λ",
    "fisher",
]
# ruamel.yaml extends the 1.2 core schema with these (YAML 1.1 leftovers); the core schema reads them as strings
OUTSIDE_THE_CORE_SCHEMA = ["1_000", "2001-12-14", "0b101"]


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("text", SPELLINGS)
def test_plain_scalars_resolve_as_a_yaml_1_2_loader_resolves_them(text):
    ruamel = YAML(typ="safe", pure=True)  # YAML 1.2 core schema by default
    expected = ruamel.load(f"v: {text}\n")["v"]
    got = load_yaml12(f"v: {text}\n")["v"]
    assert same(got, expected), (text, got, expected)


@pytest.mark.parametrize("text", OUTSIDE_THE_CORE_SCHEMA)
def test_spellings_outside_the_core_schema_stay_strings(text):
    assert load_yaml12(f"v: {text}\n")["v"] == text


STUDY = """name: numbers
task: ranking
metric: valid_elementwise
params: {n: 3, steps: 4, batch_size: 4, eval_every: 2, eval_sets: 6, lr: 1e-3}
grid:
  - {variant: [fisher], lam: [1e-2, 1E3, .5, +1e-2]}
search:
  trials: 2
  fixed: {variant: fisher}
  space: {lam: {log: [1e-3, 1e3]}, lr: {uniform: [5e-4, 2E-3]}}
scales:
  smoke: {params: {lr: 1E-2}}
"""


def test_the_common_spellings_of_lr_and_lambda_are_numbers_in_a_study(tmp_path):
    path = tmp_path / "numbers.yaml"
    path.write_text(STUDY)
    study = load_study(path)
    assert study.params["lr"] == 0.001 and isinstance(study.params["lr"], float)
    assert [t["lam"] for t in study.grid_trials()] == [0.01, 1000.0, 0.5]  # +1e-2 is 1e-2: one trial
    assert study.search.space["lam"].log == (0.001, 1000.0) and study.search.space["lr"].uniform == (0.0005, 0.002)
    assert load_study(path, "smoke").params["lr"] == 0.01


def test_what_really_is_not_a_number_keeps_its_one_line_error(tmp_path):
    path = tmp_path / "words.yaml"
    path.write_text(STUDY.replace("lr: 1e-3}", "lr: 1e-3x}"))
    with pytest.raises(StudyError, match=r"lr must be a positive number, got '1e-3x'"):
        load_study(path)
