"""Run and resume studies with Ray Tune: a grid phase, an Optuna search phase and its replication.

Each phase is one Tune experiment in ``STORAGE/STUDY/PHASE``; the study's state (the validated
study, the MLflow store and parent run, which phases are done, the best searched config) lives in
``STORAGE/STUDY/study.json`` so ``tuner resume`` can continue after the driver was killed.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import ray
from optuna.samplers import TPESampler
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from tasks import TASKS

from .callbacks import MlflowStatus, TrialSummary
from .errors import ClusterUnreachableError, TunerError
from .study import SearchParam, Study
from .trainable import run_trial
from .tracking import close_orphans, prepare_experiment, set_tags, sqlite_uri, start_parent_run

STATE_FILE = "study.json"


class StudyStateError(TunerError, RuntimeError):
    """The storage folder does not hold what the command needs (missing or already existing study)."""


class InfeasibleResourcesError(TunerError, RuntimeError):
    """A trial asks for more CPUs or GPUs than any node of the Ray cluster has."""


def study_dir(storage: str | Path, name: str) -> Path:
    return Path(storage).expanduser().resolve() / name


def load_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    if not path.is_file():
        raise StudyStateError(f"no study in {folder} (expected {path}; run it first with `tuner run STUDY.yaml`)")
    return json.loads(path.read_text())


def save_state(folder: Path, state: dict[str, Any]) -> None:
    tmp = folder / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=2, default=str))
    os.replace(tmp, folder / STATE_FILE)  # atomic: a kill never leaves a half-written state


def run_study(study: Study, storage: str | Path, mlflow_uri: str | None = None, address: str | None = None) -> int:
    """Start a new study execution; returns the number of failed trials."""
    folder = study_dir(storage, study.name)
    if (folder / STATE_FILE).exists():
        raise StudyStateError(f"study {study.name!r} already exists in {folder}: continue it with "
                              f"`tuner resume {study.name} --storage {folder.parent}`, or choose another --storage")
    _init_ray(address)  # before any file is written: a wrong address leaves nothing behind
    check_resources_fit(study)
    folder.mkdir(parents=True, exist_ok=True)
    uri = mlflow_uri or sqlite_uri(folder)
    experiment_id = prepare_experiment(uri, study.name, folder / "artifacts")
    commit = git_commit()
    parent = start_parent_run(uri, experiment_id, f"{study.name} study", _study_params(study),
                              {"study": study.name, "git_commit": commit, "storage": str(folder)},
                              artifact=study.source)
    state = {"study": study.model_dump(mode="json"), "mlflow_uri": uri, "experiment_id": experiment_id,
             "parent_run_id": parent, "git_commit": commit, "phases": {}, "best": None}
    save_state(folder, state)
    return _run_phases(folder, state)


def resume_study(folder: Path, address: str | None = None) -> int:
    """Continue a study whose driver stopped: done phases are skipped, started ones restored."""
    state = load_state(folder)
    _init_ray(address)
    check_resources_fit(Study(**state["study"]))
    set_tags(state["mlflow_uri"], state["parent_run_id"], {"resumed": "true"})
    return _run_phases(folder, state)


def check_resources_fit(study: Study) -> None:
    """Refuse, in one line, a per-trial request that no node of the Ray cluster can hold: Tune would otherwise
    keep every trial PENDING forever. ``TUNER_WAIT_FOR_RESOURCES=1`` skips this on an autoscaling cluster,
    where such nodes are added on demand."""
    if os.environ.get("TUNER_WAIT_FOR_RESOURCES") == "1":
        return
    need = {"CPU": study.resources.cpu, "GPU": study.resources.gpu}
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    if any(all(have.get(key, 0) >= amount for key, amount in need.items()) for have in nodes):
        return
    listed = ", ".join(f"{int(have.get('CPU', 0))} CPU + {have.get('GPU', 0):g} GPU" for have in nodes)
    hint = f"; try `--scale {next(iter(study.scales))}`" if study.scales else ""
    raise InfeasibleResourcesError(
        f"study {study.name!r} asks {study.resources.cpu:g} CPU + {study.resources.gpu:g} GPU per trial "
        f"(`resources`), but no node of this Ray cluster has that (nodes: {listed}){hint}; on an autoscaling "
        f"cluster set TUNER_WAIT_FOR_RESOURCES=1")


def phases(study: Study) -> list[str]:
    names = ["grid"] if study.grid else []
    if study.search is not None:
        names += ["search"] + (["replicate"] if study.search.replicate else [])
    return names


def _run_phases(folder: Path, state: dict[str, Any]) -> int:
    from mlflow.tracking import MlflowClient

    study = Study(**state["study"])
    failed = 0
    for phase in phases(study):
        if state["phases"].get(phase) == "done":
            continue
        state["phases"][phase] = "started"
        save_state(folder, state)
        results = _fit(folder, state, study, phase)
        failed += len(results.errors)
        orphans = close_orphans(state["mlflow_uri"], state["experiment_id"], phase)
        if orphans:
            print(f"tuner: {orphans} MLflow run(s) of phase {phase!r} belonged to trials lost with the killed "
                  f"driver; marked KILLED (tag 'orphaned')", flush=True)
        if phase == "search":
            state["best"] = _best_config(results, study)
            set_tags(state["mlflow_uri"], state["parent_run_id"], {"best_config": json.dumps(state["best"])})
        state["phases"][phase] = "done"
        save_state(folder, state)
    MlflowClient(state["mlflow_uri"]).set_terminated(state["parent_run_id"], "FAILED" if failed else "FINISHED")
    return failed


def _fit(folder: Path, state: dict[str, Any], study: Study, phase: str):
    meta = {"task": study.task, "study": study.name, "phase": phase, "mlflow_uri": state["mlflow_uri"],
            "experiment_id": state["experiment_id"], "parent_run_id": state["parent_run_id"],
            "git_commit": state["git_commit"]}
    trainable = tune.with_resources(tune.with_parameters(run_trial, meta=meta),
                                    {"cpu": study.resources.cpu, "gpu": study.resources.gpu})
    path = folder / phase
    if tune.Tuner.can_restore(str(path)):
        return tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True).fit()
    search_alg, scheduler, param_space, samples, concurrency = None, None, None, 1, study.max_concurrent
    if phase == "grid":
        trials = study.grid_trials()
        param_space, planned = {"trial": tune.grid_search(trials)}, len(trials)
    elif phase == "replicate":
        param_space = {"trial": tune.grid_search([{**state["best"], "seed": s} for s in study.seeds])}
        planned = len(study.seeds)
    else:
        search = study.search
        param_space = {**study.search_base(), **{k: _tune_domain(p) for k, p in search.space.items()}}
        search_alg = ConcurrencyLimiter(OptunaSearch(sampler=TPESampler(seed=search.sampler_seed)),
                                        max_concurrent=study.max_concurrent)
        samples = planned = search.trials
        concurrency = None  # the ConcurrencyLimiter holds it
        if search.asha is not None:
            # ASHA-stopped trials reach Optuna as COMPLETE with their value at the stopping rung: TPE then
            # treats them as (pessimistic) observations, which is what early stopping intends.
            max_t = TASKS.get(study.task).total_steps(study.search_base())
            scheduler = ASHAScheduler(time_attr="step", max_t=max_t, grace_period=search.asha.grace_period,
                                      reduction_factor=search.asha.reduction_factor)
    tuner = tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(metric=study.metric, mode=study.mode, num_samples=samples, search_alg=search_alg,
                                    scheduler=scheduler, max_concurrent_trials=concurrency),
        run_config=tune.RunConfig(
            name=phase, storage_path=str(folder), verbose=1,
            failure_config=tune.FailureConfig(max_failures=study.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[MlflowStatus(meta), TrialSummary(study.metric, phase, planned)]),
    )
    return tuner.fit()


def _tune_domain(param: SearchParam):
    if param.log is not None:
        return tune.loguniform(*param.log)
    if param.uniform is not None:
        return tune.uniform(*param.uniform)
    if param.integer is not None:
        return tune.randint(param.integer[0], param.integer[1] + 1)
    return tune.choice(list(param.choice))


def _best_config(results, study: Study) -> dict[str, Any]:
    best = results.get_best_result(metric=study.metric, mode=study.mode, scope="last", filter_nan_and_inf=True)
    if best is None or best.config is None:
        raise TunerError(f"search of study {study.name!r} produced no finished trial with metric {study.metric!r}")
    config = {k: v for k, v in best.config.items() if k in study.search_base() or k in study.search.space}
    config.pop("seed", None)
    return config


def _study_params(study: Study) -> dict[str, Any]:
    return {"task": study.task, "metric": study.metric, "mode": study.mode, "seeds": list(study.seeds),
            "phases": phases(study), "study_file": study.source, "grid_trials": len(study.grid_trials()),
            "search_trials": study.search.trials if study.search else 0}


def _init_ray(address: str | None) -> None:
    # Save Tune's experiment state (trials and the Optuna searcher) on every controller step instead of
    # every >= 10 s: a trial suggested after the last save is forgotten if the driver is killed.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return
    if not address:
        ray.init(include_dashboard=False)
        return
    _probe(address)
    try:
        ray.init(address=address, log_to_driver=True)
    except (ConnectionError, RuntimeError) as error:
        raise ClusterUnreachableError(f"cannot join the Ray cluster at {address}: {str(error).splitlines()[0]} (a cluster "
                              "with token authentication, Ray's default, needs RAY_AUTH_MODE=token and its token in "
                              "~/.ray/auth_token or RAY_AUTH_TOKEN on this machine too)") from None


def _probe(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at HOST:PORT (ray.init retries for a long time)."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:(\d+)", address)
    if not match:
        return  # "auto" and the like: ray.init resolves them itself
    try:
        socket.create_connection((match[1], int(match[2])), timeout=5).close()
    except OSError as error:
        raise ClusterUnreachableError(f"no Ray cluster answers at {address} ({error.strerror or error}); start one with "
                              f"`ray start --head --port=PORT` or check --address / RAY_ADDRESS") from None


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
