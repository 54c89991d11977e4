"""The handlers of ``tuner``'s subcommands (``cli.py`` holds the table that names them, the parser and ``main``).
Each imports what it needs when it runs, so ``tuner validate`` or ``tuner report`` never import Ray."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cmd_validate(args) -> int:
    from .study_file import load_study

    for path in args.files:
        for scale in [None, *load_study(path).scales]:
            study = load_study(path, scale)
            search = f", search {study.search.trials} trials" if study.search else ""
            trials = (
                f"grid {len(study.grid_trials())} trials"
                if study.select is None
                else (
                    f"selection {len(study.selection_trials())} trials on seed {study.select.seed}, then the selected "
                    f"settings on {len(study.seeds)} seed(s)"
                )
            )
            adaptive = (
                f", then +{study.replicate.add} seed(s) a round to the undecided up to {study.replicate.max_seeds}"
                if study.replicate
                else ""
            )
            print(
                f"ok  {path}{f' --scale {scale}' if scale else ''}: study {study.name!r}, task {study.task}, "
                f"{trials}{search}{adaptive}"
            )
    return 0


def cmd_run(args) -> int:
    from .credentials import move_to_environment, split_credentials
    from .runner import run_study
    from .study_file import load_study

    mlflow_uri, mlflow_env = split_credentials(args.mlflow_uri)
    optuna_url, optuna_env = split_credentials(args.optuna_storage)
    move_to_environment({**mlflow_env, **optuna_env})
    study = load_study(
        args.study, args.scale
    )  # every study error surfaces here, before Ray starts or a file is written
    failed = run_study(study, args.storage, mlflow_uri=mlflow_uri, address=args.address, optuna_storage=optuna_url)
    return _finish(study.name, args.storage, failed)


def cmd_resume(args) -> int:
    from .runner import resume_study
    from .state import study_dir

    name = _study_name(args.study)
    failed = resume_study(study_dir(args.storage, name), address=args.address)
    return _finish(name, args.storage, failed)


def cmd_export(args) -> int:
    from .export import export_study

    trials, history = export_study(_reachable_study(args), args.out)
    print(f"wrote {trials}\nwrote {history}")
    return 0


def cmd_report(args) -> int:
    from .report import build_report

    out = build_report(_reachable_study(args), args.out)
    print(f"wrote {out}/report.md (tables, figures; also attached to the study's MLflow parent run under report/)")
    return 0


def cmd_compare(args) -> int:
    from .compare import compare_studies, verdict_failures
    from .state import study_dir

    fail_on = verdict_failures(args.fail_on)
    before, after = (
        study_dir(storage or args.storage, _study_name(name))
        for name, storage in ((args.before, args.before_storage), (args.after, args.after_storage))
    )
    return compare_studies(before, after, args.out, fail_on)


def cmd_ui(args) -> int:
    from .state import load_state

    state = load_state(_reachable_study(args))
    uri = state.mlflow_uri
    if not uri.startswith("sqlite"):
        print(
            f"this study logs to the MLflow server {uri}: open {uri.rstrip('/')}/#/experiments/"
            f"{state.experiment_id}/runs in a browser (its execution: parent run {state.parent_run_id})"
        )
        return 0
    # this environment's MLflow, whether or not its bin folder is on PATH (a venv used without activating it)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(args.port),
    ]
    print(
        f"MLflow dashboard for {state.study.name!r}: http://127.0.0.1:{args.port}/#/experiments/"
        f"{state.experiment_id}/runs  (Ctrl-C to stop)",
        flush=True,
    )
    os.execv(command[0], command)


def cmd_dashboard(args) -> int:
    from .dashboard import serve_study
    from .state import load_state, study_dir

    serve_study(load_state(study_dir(args.storage, _study_name(args.study))), args.host, args.port)
    return 0


def cmd_data(args) -> int:
    from .data_command import data_command

    return data_command(args)


def _stop_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _study_name(study: str) -> str:
    """A study name, or the name inside a study YAML file."""
    if study.endswith((".yaml", ".yml")) and Path(study).is_file():
        from .study_file import load_study

        return load_study(study).name
    return study


def _reachable_study(args) -> Path:
    """The study's folder, once its tracking server answers (a dead one fails in seconds, naming it)."""
    from .state import load_state, study_dir
    from .tracking import probe_tracking

    folder = study_dir(args.storage, _study_name(args.study))
    probe_tracking(load_state(folder).mlflow_uri)
    return folder


def _finish(name: str, storage: str, failed: int) -> int:
    _stop_ray()  # first, so that no late log line of a worker lands below the summary
    if failed:
        print(
            f"tuner: {failed} trial(s) of study {name!r} failed; their errors are in MLflow "
            f"(`tuner ui {name} --storage {storage}`)",
            file=sys.stderr,
        )
        return 1
    print(
        f"study {name!r} done: `tuner ui {name} --storage {storage}` to browse, "
        f"`tuner export {name} --storage {storage}` for Parquet"
    )
    return 0
