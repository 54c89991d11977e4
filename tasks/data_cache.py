"""One copy per node of a data set that every trial would otherwise build or read on its own.

An entry is a folder ``<cache>/<name>-<key>`` of ``.npy`` files and a ``manifest.json``. The key hashes everything
the content depends on (a generator's parameters and seed, or the source files' paths, sizes and mtimes), so other
inputs make another entry. The first process that asks builds the entry under an exclusive ``fcntl.flock`` on the
entry's ``.lock`` file; trials that start together wait for it instead of building it again. Every file is written
under a hidden name in the entry's folder, flushed to the disk and renamed into place. The manifest comes last,
with each file's size, shape, dtype and CRC-32. A reader checks all of that before it uses the entry (about 0.15 s
per 300 MB), so a truncated, altered or half-written file is rebuilt, never read. Then it memory-maps the files
(``np.load(mmap_mode="r")``): the trials of a node share the page cache and hold no copy of their own.

Where: ``$NEWTON_CACHE_DIR``, else ``$XDG_CACHE_HOME/newton-losses``, else ``~/.cache/newton-losses``. Deleting the
folder while no trial runs is always safe; the next trial rebuilds what it needs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import mmap
import os
import time
import uuid
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

import numpy as np

ENV_VAR = "NEWTON_CACHE_DIR"
MANIFEST = "manifest.json"
FORMAT = 1  # of the manifest
PARTIAL = ".partial"

log = logging.getLogger(__name__)

Build = Callable[[], Iterable[tuple[str, np.ndarray]]]


def cache_root() -> Path:
    """The node's cache folder: ``$NEWTON_CACHE_DIR``, else ``$XDG_CACHE_HOME/newton-losses``, else
    ``~/.cache/newton-losses``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "newton-losses"


def cached(name: str, identity: Any, build: Build, root: str | Path | None = None) -> Path:
    """The folder of entry ``name`` for ``identity``, built once per node by ``build`` and checked on every call.

    Args:
        name: the entry's kind, the start of its folder's name (``warcraft-generated``).
        identity: JSON-serialisable; everything the content depends on. Its hash is the folder's key.
        build: returns the entry's files as (file name, array) pairs; called at most once per node and identity,
            by whichever process asks first, while the others wait.
        root: the cache folder (default ``cache_root()``).

    Returns:
        The entry's folder, holding the ``.npy`` files ``build`` named, complete and as built.
    """
    identity = json.loads(json.dumps(identity))  # as the manifest stores it (tuples become lists)
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(root if root is not None else cache_root()).expanduser() / f"{name}-{key}"
    if problem(folder, identity) is None:
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / ".lock", "ab")  # never deleted: a deleted lock file lets two builders in
    except OSError as error:
        raise OSError(
            f"cannot write the data cache {folder.parent} ({error.strerror or error}): set {ENV_VAR} to a "
            f"writable folder"
        ) from None
    with lock:  # closing it (or dying) releases the lock
        try:
            _lock(lock, folder)
        except OSError as error:  # ENOLCK on NFS without lockd, ENOSYS on Lustre with noflock
            raise OSError(
                f"cannot lock the data cache {folder} ({error.strerror or error}): set {ENV_VAR} to a folder on "
                f"a local disk of each node"
            ) from None
        reason = problem(folder, identity)  # again: another process may have built it while this one waited
        if reason is not None:
            (log.info if reason == "not built yet" else log.warning)("data cache %s: %s; building it", folder, reason)
            _build(folder, identity, build)
    return folder


def problem(folder: Path, identity: Any) -> str | None:
    """None when ``folder`` holds a complete entry for ``identity`` whose files match its manifest; else why not."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return "not built yet"
    except (OSError, ValueError) as error:
        return f"{MANIFEST} is unreadable ({error})"
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or manifest.get("identity") != identity
        or not isinstance(manifest.get("files"), dict)
    ):
        return f"{MANIFEST} is of another format or another data set"
    for file, record in manifest["files"].items():
        path = folder / file
        try:
            size = path.stat().st_size
            if size != record["size"]:
                return f"{file} has {size} bytes, not {record['size']} (truncated or overwritten)"
            if crc32(path) != record["crc32"]:
                return f"{file} does not match its checksum (altered)"
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError, KeyError, TypeError) as error:
            return f"{file} is unreadable ({error})"
        if list(array.shape) != record["shape"] or str(array.dtype) != record["dtype"]:
            return f"{file} holds {array.shape} {array.dtype}, not {tuple(record['shape'])} {record['dtype']}"
    return None


def crc32(path: Path) -> int:
    """The file's CRC-32, read through a memory map (shared page cache, no copy)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return zlib.crc32(b"")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return zlib.crc32(view)


def write_atomically(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write ``path`` whole or not at all, durably: a hidden file beside it, fsync, rename, fsync of the folder."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{PARTIAL}")
    try:
        with open(partial, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _lock(lock, folder: Path) -> None:
    """Hold the entry's exclusive lock (released when ``lock`` closes, or the process dies)."""
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("data cache %s: another process is building it; waiting", folder)
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)


def _build(folder: Path, identity: Any, build: Build) -> None:
    """Write the entry's files, then its manifest; readers see no manifest (so wait for the lock) meanwhile."""
    start = time.perf_counter()
    (folder / MANIFEST).unlink(missing_ok=True)
    for leftover in folder.glob(f".*{PARTIAL}"):  # of a builder that was killed
        leftover.unlink(missing_ok=True)
    files = {}
    for file, array in build():
        path = folder / file
        write_atomically(path, lambda f, array=array: np.save(f, array, allow_pickle=False))
        files[file] = {
            "size": path.stat().st_size,
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "crc32": crc32(path),
        }
    seconds = time.perf_counter() - start
    manifest = {
        "format": FORMAT,
        "identity": identity,
        "files": files,
        "built": {"pid": os.getpid(), "seconds": round(seconds, 3), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    write_atomically(folder / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    log.info("data cache %s: built in %.1f s", folder, seconds)
