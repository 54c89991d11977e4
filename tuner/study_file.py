"""Study files: YAML -> a frozen, validated ``Study`` before Ray starts, with one-line errors.

Study files are read with YAML 1.2's core-schema rules for plain scalars (``yaml12.py``): ``1e-3``, ``1E3``,
``.5`` and ``+1e-2`` are numbers, as in every YAML 1.2 loader and every other language, while PyYAML alone
(YAML 1.1) reads the first two as strings. Every trial config the study can produce is checked against the task
(``task.check``), so a bad loss parameter or a lambda <= 0 fails here, not in a trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel, ValidationError

from tasks import TASKS

from .errors import StudyError
from .study import Study
from .yaml12 import load_yaml12


def load_study(path: str | Path, scale: str | None = None) -> Study:
    """Read and validate a study file; any problem is a ``StudyError`` naming the file and the key.

    ``scale`` applies one of the file's ``scales`` (e.g. ``smoke``); the study is then named ``NAME-SCALE``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise StudyError(f"{path}: cannot read study file ({error.strerror or error})") from None
    try:
        raw = load_yaml12(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StudyError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    if not isinstance(raw, dict):
        raise StudyError(
            f"{path}: a study file is a mapping of keys (name, task, metric, ...), got {type(raw).__name__}"
        )
    try:
        study = Study(**raw, source=str(path.resolve()))
        if scale is not None:
            study = _scaled(study, scale, path)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = f"unknown key (valid here: {_valid_keys(first['loc'])})"
        raise StudyError(f"{path}: {key}: {message}") from None
    check_study(study, path)
    return study


def _scaled(study: Study, scale: str, path: Path) -> Study:
    if scale not in study.scales:
        raise StudyError(f"{path}: scales: no scale {scale!r} (this study has: {', '.join(study.scales) or 'none'})")
    override = study.scales[scale]
    raw = study.model_dump()
    raw.update(
        name=f"{study.name}-{scale}", params={**study.params, **override.params}, scales={}, data=override.data or "any"
    )  # a scale runs on the substitutes unless it says otherwise
    if override.seeds is not None:
        raw["seeds"] = override.seeds
    if override.grid is not None:
        raw["grid"] = override.grid
    if override.search_trials is not None and study.search is not None:
        raw["search"]["trials"] = override.search_trials
    if override.resources is not None:
        raw["resources"] = override.resources.model_dump()
    if override.max_concurrent is not None:
        raw["max_concurrent"] = override.max_concurrent
    return Study(**raw)


def load_task(name: str, study: str):
    """The study's task, or a one-line ``StudyError`` (user code that is gone or broken since the run)."""
    try:
        return TASKS.get(name)
    except (KeyError, ImportError, TypeError) as error:
        raise StudyError(
            f"study {study!r}: task: {error.args[0]} (is the package that provides it installed here, "
            f"or on PYTHONPATH?)"
        ) from None


def check_study(study: Study, path: str | Path) -> None:
    """Check the task and every config the study can produce against the task's ``check``."""
    try:
        task = TASKS.get(study.task)
    except (KeyError, ImportError, TypeError) as error:  # unknown name, user code that fails to import, contract
        raise StudyError(f"{path}: task: {error.args[0]}") from None
    if study.data == "paper" and not callable(getattr(task, "missing_paper_data", None)):
        raise StudyError(
            f"{path}: data: task {study.task!r} cannot say whether a config trains on the paper's data "
            f"(it has no missing_paper_data, see tasks/contract.py), so it cannot run with data: paper"
        )
    if study.grid and not study.grid_trials():
        raise StudyError(f"{path}: grid: the grid is empty (a block has a key with no values)")
    checked = set()
    for i, trial in enumerate(study.grid_trials()):  # seeds do not change what a config is: each config once
        setting = repr(sorted((k, repr(v)) for k, v in trial.items() if k != "seed"))
        if setting not in checked:
            checked.add(setting)
            _check(task, trial, path, f"grid (trial {i + 1}: {_short(trial, study.params)})")
    if study.replicate is not None:
        from .adaptive import comparisons  # imports the report, which imports this module

        settings = [{k: v for k, v in t.items() if k != "seed"} for t in study.grid_trials()]
        if not comparisons(settings):
            raise StudyError(
                f"{path}: replicate: no grid setting has both a baseline and a Newton variant to compare it with, "
                f"so no seed would be added"
            )
    if study.search is not None:
        first = {**study.search_base(), **{k: p.corners()[0] for k, p in study.search.space.items()}}
        for name, param in study.search.space.items():
            for value in param.corners():
                _check(task, {**first, name: value}, path, f"search.space.{name} (value {value!r})")
    for metric in study.metrics:
        if metric not in task.METRICS:
            raise StudyError(
                f"{path}: metric: task {study.task!r} reports no metric {metric!r} "
                f"(it reports: {', '.join(task.METRICS)})"
            )
    for metric in study.report.margin:
        if metric not in task.REPORT_METRICS:
            raise StudyError(
                f"{path}: report.margin.{metric}: task {study.task!r} tables no metric {metric!r} "
                f"(margins are for its report metrics: {', '.join(task.REPORT_METRICS)})"
            )
    _check_shippable(study, path)


def _check_shippable(study: Study, path) -> None:
    """What ``tuner run`` does with the study's code before its first trial (provenance tags, the folders shipped
    to workers, the code hash), done here too: a task given as an instance, a loss given as a ``functools.partial``
    or a module that cannot be shipped fails at validation, in one line, not after Ray started."""
    from .plugins import code_hash, code_tags, plugins, user_code_dirs

    try:
        code_tags(study)
        dirs = user_code_dirs(study)
        code_hash(tuple(t for names in plugins(study).values() for t in names.values()))
    except (AttributeError, KeyError, OSError, TypeError, ValueError) as error:
        raise StudyError(
            f"{path}: the study's task or loss code cannot be described or shipped to Ray workers "
            f"({type(error).__name__}: {error})"
        ) from None
    missing = [d for d in dirs if not Path(d).exists()]
    if missing:
        raise StudyError(f"{path}: the study's user code is not on this disk, so it cannot be shipped: {missing}")


def _check(task, config, path, where):
    try:
        task.check(config)
    except (KeyError, TypeError, ValueError, FileNotFoundError, ImportError) as error:
        raise StudyError(f"{path}: {where}: {error.args[0] if error.args else error}") from None


def _short(trial: dict, params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in trial.items() if k not in params or params[k] != v)


def _valid_keys(loc: tuple) -> str:
    """The keys of the model at ``loc`` (the error's location without its last part), found by walking the
    field annotations: ``Optional[Resources]``, ``dict[str, Scale]`` and ``tuple[dict[str, SearchParam]]`` lead
    to the model inside; a dict key or a list index leaves the model unchanged."""
    model: type[BaseModel] = Study
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is not None:
            model = _model_inside(field.annotation) or model
    return ", ".join(k for k in model.model_fields if k != "source")


def _model_inside(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_inside, get_args(annotation)) if m is not None), None)
