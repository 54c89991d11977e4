"""A private PostgreSQL server for the tests: Debian's ``initdb`` and ``postgres`` in a temporary folder, on
127.0.0.1, stopped afterwards. Both refuse to run as root, so under root they run as the ``postgres`` system user
that Debian's package creates (``.ci/run`` installs it)."""

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .helpers import free_port


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def postgres_server(password: str | None = None):
    """Yield the SQLAlchemy URI ``postgresql://mlflow@127.0.0.1:PORT/mlflow`` of a fresh, empty database; the
    server also holds an empty database ``optuna`` (same user and port) for Optuna storages. With ``password``,
    connections over TCP need it (SCRAM), as on a shared server; the URI yielded then carries it."""
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run does it)")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="nl-pg-", dir="/tmp"))  # reachable by the postgres user
    data = folder / "data"
    if as_user:
        shutil.chown(folder, "postgres")
    port = free_port()
    auth = ["--auth=trust"]
    if password is not None:
        secret = folder / "pwfile"
        secret.write_text(password + "\n")
        if as_user:
            shutil.chown(secret, "postgres")
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={secret}"]
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "mlflow", *auth, "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [
            *as_user,
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(folder),
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 60
        while (
            subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            ).returncode
            != 0
        ):
            assert server.poll() is None and time.time() < deadline, "postgres did not start"
            time.sleep(0.3)
        env = {**os.environ, **({"PGPASSWORD": password} if password is not None else {})}
        for database in ("mlflow", "optuna"):  # Optuna's tables (alembic_version too) need a database of their own
            subprocess.run(
                [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", database],
                check=True,
                capture_output=True,
                env=env,
            )
        credentials = f"mlflow:{password}" if password is not None else "mlflow"
        yield f"postgresql://{credentials}@127.0.0.1:{port}/mlflow"
    finally:
        os.killpg(server.pid, signal.SIGINT)  # PostgreSQL's fast shutdown
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
