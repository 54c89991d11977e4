"""Credentials never reach a file or a log: URLs are carried without them.

A tracking URI or an Optuna storage URL given with a password (``http://user:SECRET@head:5000``,
``postgresql+psycopg://user:SECRET@head/optuna``) is split at the command line: the URL without the password is
what the study records (``study.json``, MLflow tags, Tune's pickled searcher, reports, messages), and the
password goes where each client library reads it from the environment of this process, in memory only:
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` for an MLflow server, libpq's ``PGPASSWORD`` for a
PostgreSQL database (``PGPASSFILE`` or ``~/.pgpass`` work too, and are the better place for it). A local Ray's
workers inherit that environment; on a cluster every node needs the same variables (README, cluster section).
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

from .errors import TunerError

USERINFO = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/?#]*)(?::(?P<password>.*?))?@"
    r"(?P<host>[^@/?#]*)(?P<tail>(?:[/?#].*)?)$",
    re.DOTALL,
)
"""``scheme://user:password@host/tail``. The password may hold any character, ``/``, ``?``, ``#`` and a raw ``@``
included (SQLAlchemy reads a database URL's password the same way): it ends at the first ``@`` after which a host
(no ``@``, ``/``, ``?``, ``#``) runs to the end or to the path, query or fragment. ``urlsplit`` would cut it at
the first ``/``, ``?`` or ``#``."""


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and anything shown)."""
    match = USERINFO.match(url) if isinstance(url, str) else None
    if match is None or match["password"] is None:
        return url
    return f"{match['scheme']}{match['user']}:***@{match['host']}{match['tail']}"


def redact_text(text: str) -> str:
    """Every URL password inside a longer text (a command line, an error message) replaced by ``***``."""
    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", lambda m: redact(m.group()), text)


def split_credentials(url: str | None) -> tuple[str | None, dict[str, str]]:
    """(the URL without its password, the environment variables that carry it instead). An http(s) URL keeps
    neither user nor password (MLflow takes both from the environment); a database URL keeps its user name."""
    if not url:
        return url, {}
    match = USERINFO.match(url)
    web = url.startswith(("http://", "https://"))
    if match is None or (match["password"] is None and not web):
        return url, {}
    password = unquote(match["password"] or "")
    if web:
        env = {"MLFLOW_TRACKING_USERNAME": unquote(match["user"]), "MLFLOW_TRACKING_PASSWORD": password}
        return f"{match['scheme']}{match['host']}{match['tail']}", env
    user = f"{match['user']}@" if match["user"] else ""
    return f"{match['scheme']}{user}{match['host']}{match['tail']}", {"PGPASSWORD": password}


def move_to_environment(env: dict[str, str]) -> None:
    """Put the split-off credentials into this process's environment; two different values for one variable
    (two databases with two passwords) are refused, naming the way out."""
    for key, value in env.items():
        if os.environ.get(key) not in (None, value) and key.endswith("PASSWORD"):
            raise TunerError(
                f"two different passwords for {key} (one in a URL, one in the environment or another "
                f"URL): give the database passwords in a libpq password file (PGPASSFILE) instead"
            )
        os.environ[key] = value
