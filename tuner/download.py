"""One file over HTTP(S), resumable and verified: ``NAME.part`` grows (an HTTP Range request continues it after an
interruption), its size and digests are checked, and only then is it renamed to ``NAME``. Problems are one-line
``DataError``s: no network (connection refused, a name that does not resolve, a timeout), a bad checksum (the
download is deleted), a full disk (the ``.part`` stays, so the next run resumes)."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .errors import DataError

CHUNK = 1 << 20
TIMEOUT_S = 30
USER_AGENT = "newton-losses-tuner (tuner data)"


class Unreachable(Exception):
    """This URL did not deliver (no connection, an HTTP error, a connection lost mid-way): try the next one."""


def fetch(
    urls: Sequence[str], target: Path, digests: dict[str, str], size: int | None = None, progress: TextIO | None = None
) -> str:
    """Download ``target`` from the first of ``urls`` that delivers, continuing ``target.part`` if there is one;
    verify ``size`` and every digest (hashlib name -> hex); rename into place. Returns the URL used."""
    part = target.with_name(target.name + ".part")
    failures = []
    for url in urls:
        try:
            _into(url, part, size, progress or sys.stderr)
            break
        except Unreachable as error:
            failures.append(f"{url}: {error}")
    else:
        kept = f"; {part.name} keeps {_mb(part.stat().st_size)}, a rerun resumes it" if part.exists() else ""
        raise DataError(
            f"cannot download {target.name} ({'; '.join(failures)}){kept}: check the network and the "
            f"URL, or serve the files yourself and pass --mirror URL"
        )
    problem = mismatch(part, digests, size)
    if problem:
        part.unlink()
        raise DataError(
            f"{target.name} from {url} failed verification ({problem}); the download was deleted. "
            f"A mirror that serves other bytes than the published file, or a corrupted transfer: retry, "
            f"or try another --mirror"
        )
    os.replace(part, target)
    return url


def mismatch(path: Path, digests: dict[str, str], size: int | None = None) -> str | None:
    """None if ``path`` has ``size`` bytes and every digest; else what differs."""
    have = path.stat().st_size
    if size is not None and have != size:
        return f"{have} bytes, expected {size}"
    hashes = {name: hashlib.new(name, usedforsecurity=False) for name in digests}
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashes.values():
                h.update(chunk)
    wrong = [
        f"{name} {h.hexdigest()}, expected {digests[name]}"
        for name, h in hashes.items()
        if h.hexdigest() != digests[name].lower()
    ]
    return "; ".join(wrong) or None


def read_text(url: str) -> str | None:
    """A small text file (a checksum manifest), or None if the server says it has none (HTTP 404)."""
    try:
        with urllib.request.urlopen(_request(url), timeout=TIMEOUT_S) as response:
            return response.read().decode()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise DataError(f"cannot read {url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DataError(f"cannot read {url}: {_reason(error)}: is this machine online, is the mirror up?") from None


def _into(url: str, part: Path, size: int | None, progress: TextIO) -> None:
    """Append the rest of ``url`` to ``part`` (all of it when the server ignores the Range request)."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # not a prefix of this file
        part.unlink()
        have = 0
    try:
        response = urllib.request.urlopen(_request(url, have), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing after `have`: the .part is complete (verification will tell)
            return
        raise Unreachable(f"HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise Unreachable(_reason(error)) from None
    with response:
        start = _start(response, have)
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else size
        bar = Bar(part.name.removesuffix(".part"), start, total, progress)
        try:
            with open(part, "ab" if start else "wb") as out:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except OSError as error:  # the connection broke mid-way: what arrived stays for a resume
                        raise Unreachable(f"connection lost after {_mb(bar.done)} ({_reason(error)})") from None
                    if not chunk:
                        break
                    _append(out, chunk)
                    bar.advance(len(chunk))
        except OSError as error:
            raise _disk_error(error, part) from None
        finally:
            bar.close()
    if total is not None and bar.done < total:
        raise Unreachable(f"the server closed the connection after {_mb(bar.done)} of {_mb(total)}")


def _append(out, chunk: bytes) -> None:
    out.write(chunk)


def _start(response, have: int) -> int:
    """Where this response's body starts in the file: ``have`` for a matching 206, else 0 (a full 200)."""
    if response.status != 206:
        return 0
    content_range = response.headers.get("Content-Range", "")
    try:
        first = int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        raise Unreachable(f"a partial response without a usable Content-Range ({content_range!r})") from None
    if first != have:
        raise Unreachable(f"asked for bytes from {have}, got a range from {first}")
    return have


def _request(url: str, start: int = 0) -> urllib.request.Request:
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={start}-"} if start else {})}
    return urllib.request.Request(url, headers=headers)


def _reason(error: BaseException) -> str:
    """Connection refused, a name that does not resolve, a timeout: said plainly."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, socket.gaierror):
        return f"the host name does not resolve ({reason.strerror or reason})"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {TIMEOUT_S} s"
    return getattr(reason, "strerror", None) or str(reason)


def _disk_error(error: OSError, part: Path) -> DataError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        written = _mb(part.stat().st_size) if part.exists() else "nothing"
        return DataError(
            f"no space left on the device of {part.parent} while writing {part.name} ({written} "
            f"written): free some space and run the command again, it resumes from there"
        )
    return DataError(f"cannot write {part}: {error.strerror or error}")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class Bar:
    """A plain-text progress bar on ``stream``: redrawn in place on a terminal, a line per 10 % elsewhere."""

    def __init__(self, name: str, done: int, total: int | None, stream: TextIO):
        self.name, self.done, self.total, self.stream = name, done, total, stream
        self.tty = getattr(stream, "isatty", lambda: False)()
        self.begun, self.first, self.shown = time.monotonic(), done, -1
        if done:
            stream.write(f"{name}: resuming after {_mb(done)}\n")

    def advance(self, n: int) -> None:
        self.done += n
        if not self.total:
            return
        share = self.done / self.total
        if self.tty:
            rate = (self.done - self.first) / max(time.monotonic() - self.begun, 1e-6)
            filled = int(30 * share)
            self.stream.write(
                f"\r{self.name} [{'#' * filled}{'.' * (30 - filled)}] {share:4.0%} "
                f"{_mb(self.done)} / {_mb(self.total)}  {rate / 1e6:.1f} MB/s "
            )
        elif int(share * 10) > self.shown:
            self.shown = int(share * 10)
            self.stream.write(f"{self.name}: {share:.0%} ({_mb(self.done)} / {_mb(self.total)})\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
