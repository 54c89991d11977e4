"""``tuner``: run, resume, validate, export and browse Newton-loss studies.

Examples:
  tuner validate studies/*.yaml
  tuner run studies/quickstart.yaml
  tuner run studies/lambda_search.yaml --address auto --storage /shared/studies --mlflow-uri http://head:5000
  tuner resume quickstart
  tuner export quickstart --out exports/
  tuner report quickstart
  tuner compare quickstart quickstart --before-storage main_results --fail-on worse
  tuner ui quickstart
  tuner dashboard lambda_search
  tuner data mnist ~/data/mnist
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_STORAGE = "tuner_results"


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


COMMANDS = {
    "run": (
        cmd_run,
        "run a study file",
        "tuner run studies/quickstart.yaml [--storage DIR] [--mlflow-uri URI] [--address ADDR]",
    ),
    "resume": (cmd_resume, "continue a study whose driver stopped", "tuner resume quickstart [--storage DIR]"),
    "validate": (cmd_validate, "check study files without training", "tuner validate studies/*.yaml"),
    "export": (
        cmd_export,
        "write the study's trials and metric history as Parquet",
        "tuner export quickstart --out exports/",
    ),
    "report": (
        cmd_report,
        "write the study's results table, statistics, plots and runtime table",
        "tuner report quickstart [--out DIR]",
    ),
    "compare": (
        cmd_compare,
        "judge each setting of study AFTER against the same setting of study BEFORE: better, "
        "worse, equivalent or undecided, with intervals, table and forest plot",
        "tuner compare BEFORE AFTER [--before-storage DIR] [--after-storage DIR] [--fail-on worse]",
    ),
    "ui": (cmd_ui, "open the MLflow dashboard of a study on 127.0.0.1", "tuner ui quickstart [--port 5000]"),
    "dashboard": (
        cmd_dashboard,
        "open optuna-dashboard, read-only, on a searched study's Optuna study (127.0.0.1)",
        "tuner dashboard lambda_search [--port 8080] [--host 127.0.0.1]",
    ),
    "data": (
        cmd_data,
        "download one of the paper's data sets (mnist, warcraft) into a folder, checksums verified",
        "tuner data mnist ~/data/mnist [--mirror URL]",
    ),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="tuner", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (handler, summary, example) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=summary,
            description=f"{summary}.\n\nexample:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=handler)
        if name == "validate":
            p.add_argument("files", nargs="+", help="study YAML files")
            continue
        if name == "data":
            p.add_argument("dataset", help="mnist (ranking) or warcraft (shortest paths, 12x12)")
            p.add_argument(
                "dir", help="folder to put it in (created if needed); a rerun resumes or skips what is there"
            )
            p.add_argument(
                "--mirror",
                default=None,
                help="base URL serving the same file names (and optionally a "
                "SHA256SUMS manifest) instead of the published sources",
            )
            p.add_argument("--keep-archive", action="store_true", help="keep an archive after unpacking it")
            continue
        if name == "compare":
            p.add_argument("before", help="the study judged against: its name (or YAML file)")
            p.add_argument("after", help="the study judged")
            p.add_argument(
                "--storage", default=DEFAULT_STORAGE, help=f"folder holding both (default ./{DEFAULT_STORAGE})"
            )
            p.add_argument("--before-storage", default=None, help="BEFORE's folder, when not --storage")
            p.add_argument("--after-storage", default=None, help="AFTER's folder, when not --storage")
            p.add_argument("--out", default=None, help="output folder (default AFTER_STORAGE/AFTER/compare-BEFORE)")
            p.add_argument(
                "--fail-on",
                default="",
                metavar="VERDICTS",
                help="exit 1 when a verdict is one of these (worse; or e.g. worse,undecided)",
            )
            continue
        p.add_argument("study", help="study YAML file" if name == "run" else "study name (or its YAML file)")
        p.add_argument(
            "--storage",
            default=DEFAULT_STORAGE,
            help=f"folder holding studies (default ./{DEFAULT_STORAGE}); shared storage on a cluster",
        )
        if name in ("run", "resume"):
            p.add_argument(
                "--address",
                default=None,
                help="Ray cluster address (e.g. auto, HEAD:6379); default $RAY_ADDRESS, else a local Ray",
            )
        if name == "run":
            p.add_argument(
                "--scale",
                default=None,
                help="apply one of the study's `scales` (e.g. smoke: a laptop-sized run named STUDY-smoke)",
            )
            p.add_argument(
                "--mlflow-uri",
                default=None,
                help="MLflow tracking URI (e.g. http://head:5000); default SQLite in the study folder",
            )
            p.add_argument(
                "--optuna-storage",
                default=None,
                help="Optuna RDB storage URL for the search phase (e.g. postgresql+psycopg://USER@HEAD/"
                "optuna, its password in PGPASSWORD or a libpq password file); default SQLite "
                "(optuna.db) in the study folder",
            )
        if name in ("export", "report"):
            p.add_argument("--out", default=None, help=f"output folder (default STORAGE/STUDY/{name})")
        if name == "ui":
            p.add_argument("--port", type=int, default=5000)
        if name == "dashboard":
            p.add_argument("--port", type=int, default=8080)
            p.add_argument(
                "--host",
                default="127.0.0.1",
                help="address to serve on (default 127.0.0.1: the dashboard has no authentication)",
            )
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .credentials import redact_text
    from .errors import TunerError
    from .tracking import tracking_env

    # Ray records the driver's command line (its job's entrypoint): never with a password in it
    sys.argv = [redact_text(arg) for arg in sys.argv]
    os.environ.update(tracking_env())  # short MLflow retries for every command: a dead server fails in seconds
    try:
        return args.handler(args)
    except TunerError as error:  # the user's input or environment: one line; anything else is a bug: a traceback
        _stop_ray()  # first, so that no late log line of a worker lands below the error
        print(f"tuner: error: {redact_text(str(error))}", file=sys.stderr)
        return 2


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


if __name__ == "__main__":
    sys.exit(main())
