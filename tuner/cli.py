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

from .commands import (
    _stop_ray,
    cmd_compare,
    cmd_dashboard,
    cmd_data,
    cmd_export,
    cmd_report,
    cmd_resume,
    cmd_run,
    cmd_ui,
    cmd_validate,
)

DEFAULT_STORAGE = "tuner_results"


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


if __name__ == "__main__":
    sys.exit(main())
