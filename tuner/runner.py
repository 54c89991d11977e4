"""Run and resume studies with Ray Tune: a grid phase, an Optuna search phase and its replication.

Each phase is one Tune experiment in ``STORAGE/STUDY/PHASE``; the study's state (the validated
study, the MLflow store and parent run, which phases are done, the best searched config) lives in
``STORAGE/STUDY/study.json`` so ``tuner resume`` can continue after the driver was killed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import optuna
import ray
from optuna.samplers import TPESampler
from ray import tune
from ray.tune.error import TuneError
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from losses import LOSSES
from tasks import TASKS

from .callbacks import TRACKING_FAILURES, MlflowStatus, TrialSummary
from .environment import git_state
from .errors import ClusterUnreachableError, TrackingError, TunerError
from .optuna_storage import (DB_FILE, StoredOptunaSearch, check_name_free, drop_study, new_phase_study, open_storage,
                             reserve_study, warm_start_trials)
from .pareto import pareto_mask
from .storage import atomic_filesystem
from .study import NAME, SearchParam, Study, StudyError, check_study
from .trainable import run_trial
from .tracking import (close_orphans, describe_code, prepare_experiment, probe_tracking, set_tags, sqlite_uri,
                       start_parent_run, tracking_at, tracking_env)

STATE_FILE = "study.json"
USER_CHECKPOINT_PERIOD = os.environ.get("TUNE_GLOBAL_CHECKPOINT_S")  # before checkpoint_period() sets it per phase


class StudyStateError(TunerError, RuntimeError):
    """The storage folder does not hold what the command needs (missing or already existing study)."""


class InfeasibleResourcesError(TunerError, RuntimeError):
    """A trial asks for more CPUs or GPUs than any node of the Ray cluster has."""


def study_dir(storage: str | Path, name: str) -> Path:
    """``STORAGE/NAME``; ``name`` must be a name a study file may have, so it never leaves the storage folder."""
    if not NAME.fullmatch(str(name)):
        raise StudyStateError(f"{name!r} is not a study name (letters, digits, '_', '.', '-'; not starting with '.')")
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


def run_study(study: Study, storage: str | Path, mlflow_uri: str | None = None, address: str | None = None,
              optuna_storage: str | None = None) -> int:
    """Start a new study execution; returns the number of failed trials.

    Everything that can be checked is checked before the first file is written (the study folder exists only
    once the tracking store holds the study's experiment and parent run): an existing study, the tracking
    server, the Optuna storage and the studies a search warm-starts from, the Ray cluster, whether a node can
    hold a trial, and whether the tracking store suits the cluster.
    """
    folder = study_dir(storage, study.name)
    if (folder / STATE_FILE).exists():
        raise StudyStateError(f"study {study.name!r} already exists in {folder}: continue it with "
                              f"`tuner resume {study.name} --storage {folder.parent}`, or choose another --storage")
    if optuna_storage and study.search is None:
        raise StudyError(f"--optuna-storage: study {study.name!r} has no search phase to keep there")
    if mlflow_uri:
        probe_tracking(mlflow_uri)
    if optuna_storage:
        check_name_free(optuna_storage, study.name)
    warm_start_sources(study, folder.parent)
    _init_ray(address, user_code_dirs(study))
    check_resources_fit(study)
    uri = mlflow_uri or sqlite_uri(folder)
    check_tracking_fits_cluster(uri)
    created, reserved = not folder.exists(), False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if optuna_storage:  # a shared storage: the study's name is taken there from now on
            reserve_study(optuna_storage, study.name, study.directions, str(folder))
            reserved = True
        with tracking_at(uri, f"creating the experiment of study {study.name!r}"):
            experiment_id = prepare_experiment(uri, study.name, folder / "artifacts")
            git = git_state(Path(__file__).resolve().parent)
            parent = start_parent_run(uri, experiment_id, f"{study.name} study", _study_params(study),
                                      {"study": study.name, **git, "storage": str(folder), **code_tags(study)},
                                      artifact=study.source)
        state = {"study": study.model_dump(mode="json"), "mlflow_uri": uri, "experiment_id": experiment_id,
                 "parent_run_id": parent, **git, "phases": {}, "failed": {}, "best": None,
                 **(optuna_state(study, folder, optuna_storage) if study.search else {})}
        save_state(folder, state)
    except BaseException:
        if created:  # nothing half-written: the folder goes with the failed setup
            shutil.rmtree(folder, ignore_errors=True)
        if reserved:
            drop_study(optuna_storage, study.name)
        raise
    return _run_phases(folder, state)


def resume_study(folder: Path, address: str | None = None) -> int:
    """Continue a study whose driver stopped: done phases are skipped, started ones restored."""
    state = load_state(folder)
    study = Study(**state["study"])
    check_study(study, folder / STATE_FILE)  # its task and losses still load here (user code may be gone)
    probe_tracking(state["mlflow_uri"])
    if study.search is not None:
        if "optuna_storage" not in state:  # a study begun before searches kept their Optuna study
            state.update(optuna_state(study, folder, None))
        open_storage(state["optuna_storage"])
    _init_ray(address, user_code_dirs(study))
    check_resources_fit(study)
    check_tracking_fits_cluster(state["mlflow_uri"])
    with tracking_at(state["mlflow_uri"], "tagging the study's parent run as resumed"):
        set_tags(state["mlflow_uri"], state["parent_run_id"], {"resumed": "true"})
    return _run_phases(folder, state)


def optuna_state(study: Study, folder: Path, url: str | None) -> dict[str, str]:
    """Where the search keeps its Optuna study: ``url``, or by default a SQLite file in the study's folder."""
    return {"optuna_storage": url or f"sqlite:///{folder / DB_FILE}", "optuna_study": study.name}


def warm_start_sources(study: Study, storage: Path) -> list[tuple[str, Study, dict[str, Any]]]:
    """The earlier studies ``search.warm_start`` names, each (name, study, saved state), checked: present in the
    same storage folder, of the same task, with a searched phase kept in an Optuna storage."""
    sources = []
    for name in study.search.warm_start if study.search else ():
        where = f"{study.source or study.name}: search.warm_start: study {name!r}"
        if name == study.name:
            raise StudyError(f"{where} is this study itself")
        try:
            state = load_state(study_dir(storage, name))
        except StudyStateError:
            raise StudyError(f"{where} is not in {storage} (warm starts read studies of the same --storage)") from None
        other = Study(**state["study"])
        if other.task != study.task:
            raise StudyError(f"{where} is of task {other.task!r}, not {study.task!r}")
        if "optuna_storage" not in state:
            raise StudyError(f"{where} kept no Optuna storage (it has no search, or ran before searches kept one)")
        open_storage(state["optuna_storage"])
        sources.append((name, other, state))
    return sources


def plugins(study: Study) -> dict[str, dict[str, str]]:
    """The study's names that resolve to user code, with their import paths: trials on workers resolve them the
    same way, whether or not the user's package (and its entry points) is installed there."""
    found = {"tasks": {study.task: TASKS.target(study.task)},
             "losses": {name: LOSSES.target(name) for name in study.loss_names()}}
    return {kind: {name: target for name, target in names.items() if target} for kind, names in found.items()}


def user_code_dirs(study: Study) -> list[str]:
    """Folders of the user's packages that the study names, shipped to every Ray worker (``py_modules``)."""
    dirs = TASKS.user_code_dirs(study.task) + [d for name in study.loss_names() for d in LOSSES.user_code_dirs(name)]
    return list(dict.fromkeys(dirs))


def code_tags(study: Study) -> dict[str, str]:
    """Which code the study's task and losses are, and which version, as MLflow tags."""
    tags = {"code.task": describe_code(TASKS.source(study.task))}
    tags.update({f"code.loss.{name}": describe_code(LOSSES.source(name)) for name in study.loss_names()})
    return tags


def check_tracking_fits_cluster(uri: str) -> None:
    """Refuse an embedded SQLite store on a multi-node cluster: trials on several nodes would write one SQLite
    file over shared storage (NFS and the like), which SQLite does not support (locks fail, writes get lost)."""
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if uri.startswith("sqlite") and len(nodes) > 1:
        raise TunerError(f"this Ray cluster has {len(nodes)} nodes, and their trials cannot share one SQLite file "
                         f"({uri.removeprefix('sqlite:///')}) over shared storage: start an MLflow server on one "
                         f"node (see README, 'Running on a Ray cluster') and pass --mlflow-uri http://HOST:PORT")


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
    """Run the phases not done yet; returns the failed trials of the whole study, phases finished before a
    ``tuner resume`` included (their counts are kept in the state)."""
    from mlflow.tracking import MlflowClient

    study = Study(**state["study"])
    uri = state["mlflow_uri"]
    failed = state.setdefault("failed", {})
    for phase in phases(study):
        if state["phases"].get(phase) == "done":
            continue
        state["phases"][phase] = "started"
        save_state(folder, state)
        TRACKING_FAILURES.clear()
        try:
            results = _fit(folder, state, study, phase)
        except (TrackingError, TuneError) as error:
            if isinstance(error, TuneError) and not TRACKING_FAILURES:
                raise  # not the tracking store: a bug, with its traceback
            raise TrackingError(f"{TRACKING_FAILURES[0] if TRACKING_FAILURES else error}; phase {phase!r} stopped and "
                                f"the study is kept as it was: once the tracking store answers again, `tuner resume "
                                f"{study.name} --storage {folder.parent}` continues it") from None
        failed[phase] = len(results.errors)
        with tracking_at(uri, f"closing phase {phase!r}"):
            orphans = close_orphans(uri, state["experiment_id"], phase)
            if orphans:
                print(f"tuner: {orphans} MLflow run(s) of phase {phase!r} belonged to trials lost with the killed "
                      f"driver; marked KILLED (tag 'orphaned')", flush=True)
            if phase == "search" and study.multi_objective:
                state["front"] = _front_configs(state, study)
                set_tags(uri, state["parent_run_id"], {"pareto_front": json.dumps(state["front"])})
            elif phase == "search":
                state["best"] = _best_config(results, study)
                set_tags(uri, state["parent_run_id"], {"best_config": json.dumps(state["best"])})
        state["phases"][phase] = "done"
        save_state(folder, state)
    total = sum(failed.values())
    with tracking_at(uri, "closing the study's parent run"):
        MlflowClient(uri).set_terminated(state["parent_run_id"], "FAILED" if total else "FINISHED")
    return total


def _fit(folder: Path, state: dict[str, Any], study: Study, phase: str):
    meta = {"task": study.task, "study": study.name, "phase": phase, "mlflow_uri": state["mlflow_uri"],
            "experiment_id": state["experiment_id"], "parent_run_id": state["parent_run_id"],
            "git_commit": state["git_commit"], "git_dirty": state.get("git_dirty", "unknown"),
            "plugins": plugins(study), "shown": study.shown_keys()}
    trainable = tune.with_resources(tune.with_parameters(run_trial, meta=meta),
                                    {"cpu": study.resources.cpu, "gpu": study.resources.gpu})
    path, storage = folder / phase, atomic_filesystem()
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = checkpoint_period(phase)  # read when Tune's controller starts
    if tune.Tuner.can_restore(str(path), storage_filesystem=storage):
        if any(path.glob("experiment_state-*.json")):
            check_tune_state(path)
            return tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True,
                                      storage_filesystem=storage).fit()
        # Killed between Tune writing its tuner.pkl and its first experiment state: no trial was recorded, and
        # Tune cannot restore such a folder (a search then fails for want of its space). Start the phase anew.
        shutil.rmtree(path)
    search_alg, scheduler, param_space, samples, concurrency = None, None, None, 1, study.max_concurrent
    if phase == "grid":
        trials = study.grid_trials()
        param_space, planned = {"trial": tune.grid_search(trials)}, len(trials)
    elif phase == "replicate":
        settings = state["front"] if study.multi_objective else [state["best"]]
        trials = [{**setting, "seed": s} for setting in settings for s in study.seeds]
        param_space, planned = {"trial": tune.grid_search(trials)}, len(trials)
    else:
        search = study.search
        space = {k: _tune_domain(p) for k, p in search.space.items()}
        param_space = {**study.search_base(), **space}
        searcher = _new_searcher(folder, state, study, OptunaSearch.convert_search_space(space))
        search_alg = ConcurrencyLimiter(searcher, max_concurrent=study.max_concurrent)
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
        # reuse_actors: a finished trial's worker process (torch, ray, mlflow and the task imported, the digit
        # pools loaded) runs the next trial instead of a fresh process per trial
        tune_config=tune.TuneConfig(metric=study.metrics[0], mode=study.modes[0], num_samples=samples, search_alg=search_alg,
                                    scheduler=scheduler, max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=tune.RunConfig(
            name=phase, storage_path=str(folder), storage_filesystem=storage, verbose=1,
            failure_config=tune.FailureConfig(max_failures=study.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[TrialSummary(study.metrics[0], phase, planned, study.shown_keys()),
                       MlflowStatus(meta, study.keep_checkpoints)]),
    )
    return tuner.fit()


def _new_searcher(folder: Path, state: dict[str, Any], study: Study, distributions: dict) -> StoredOptunaSearch:
    """The search phase's Optuna searcher on a fresh Optuna study in its storage, seeded by the warm start."""
    search, url, name = study.search, state["optuna_storage"], state["optuna_study"]
    seeded, lines = warm_start_trials(warm_start_sources(study, folder.parent), study, distributions)
    for line in lines:
        print(f"tuner: {line}", flush=True)
    new_phase_study(url, name, study.directions, distributions, seeded, str(folder))
    single = not study.multi_objective
    return StoredOptunaSearch(url, name, TASKS.get(study.task).METRICS,
                              metric=study.metrics[0] if single else list(study.metrics),
                              mode=study.modes[0] if single else list(study.modes),
                              sampler=TPESampler(seed=search.sampler_seed, n_startup_trials=search.startup_trials))


def checkpoint_period(phase: str) -> str:
    """How often Tune saves a phase's experiment state (``TUNE_GLOBAL_CHECKPOINT_S``).

    A search saves on every controller step: a trial the Optuna searcher suggested after the last save would be
    forgotten by a killed driver and replaced by another suggestion. Grids and replications save on Tune's
    adaptive period ("auto": at least every 10 s, at most 5 % of the driver's time): their trials are a fixed
    list whose ids Tune's restored generator hands out again, and a trial that ran past the last save reopens its
    MLflow run, whose logged steps are not logged twice (a finished one is replayed, not retrained). Every save
    copies every trial's record, so saving each step would cost the square of a long grid.
    A user's own ``TUNE_GLOBAL_CHECKPOINT_S`` wins.
    """
    return USER_CHECKPOINT_PERIOD or ("0" if phase == "search" else "auto")


def check_tune_state(path: Path) -> None:
    """Refuse a phase folder whose newest Tune state cannot be read (written by a version without atomic writes,
    or edited): Tune would log the failure and silently start the phase anew, duplicating its finished trials."""
    newest = max(path.glob("experiment_state-*.json"))
    try:
        json.loads(newest.read_text())
    except (OSError, ValueError) as error:
        raise StudyStateError(f"Tune's saved state {newest} cannot be read ({error}); tuner resume will not start "
                              f"phase {path.name!r} anew over its logged trials: remove the phase folder "
                              f"{path} to rerun that phase from scratch") from None


def _tune_domain(param: SearchParam):
    if param.log is not None:
        return tune.loguniform(*param.log)
    if param.uniform is not None:
        return tune.uniform(*param.uniform)
    if param.integer is not None:
        return tune.randint(param.integer[0], param.integer[1] + 1)
    return tune.choice(list(param.choice))


def _best_config(results, study: Study) -> dict[str, Any]:
    metric, mode = study.metrics[0], study.modes[0]
    best = results.get_best_result(metric=metric, mode=mode, scope="last", filter_nan_and_inf=True)
    if best is None or best.config is None:
        raise TunerError(f"search of study {study.name!r} produced no finished trial with metric {metric!r}")
    config = {k: v for k, v in best.config.items() if k in study.search_base() or k in study.search.space}
    config.pop("seed", None)
    return config


def _front_configs(state: dict[str, Any], study: Study) -> list[dict[str, Any]]:
    """The settings on the search's Pareto front (its own finished trials, not the warm-start ones), each once."""
    found = optuna.load_study(study_name=state["optuna_study"], storage=open_storage(state["optuna_storage"]))
    done = [t for t in found.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
            if "warm_start" not in t.user_attrs]
    if not done:
        raise TunerError(f"search of study {study.name!r} produced no finished trial with metrics {list(study.metrics)}")
    front = [t for t, keep in zip(done, pareto_mask([t.values for t in done], study.modes)) if keep]
    settings = {}
    for trial in front:
        setting = {k: v for k, v in {**study.search_base(), **trial.params}.items() if k != "seed"}
        settings.setdefault(json.dumps(setting, sort_keys=True, default=str), setting)
    return list(settings.values())


def _study_params(study: Study) -> dict[str, Any]:
    return {"task": study.task, "metric": ",".join(study.metrics), "mode": ",".join(study.modes), "seeds": list(study.seeds),
            "phases": phases(study), "study_file": study.source, "grid_trials": len(study.grid_trials()),
            "search_trials": study.search.trials if study.search else 0}


def _init_ray(address: str | None, py_modules: list[str] | None = None) -> None:
    os.environ.update(tracking_env())  # this driver's MLflow calls; trials get them through the runtime env
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return
    runtime_env = {"env_vars": tracking_env(), **({"py_modules": py_modules} if py_modules else {})}
    if not address:
        ray.init(include_dashboard=False, runtime_env=runtime_env)
        return
    _probe(address)
    try:
        ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
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
