"""Files in a study's folder appear whole or not at all, and survive a host crash once written.

Tune saves its experiment state (trials, searcher, callbacks) to a private staging folder and copies it into the
study folder; the copy opens each destination file truncated and then fills it. A driver killed during a copy
(likely when the state is saved on every controller step) left an empty ``experiment_state-*.json``: Tune then
logged "Failed to restore the run state" and silently restarted the phase with new trial ids, which ``tuner
resume`` must never do. Through ``atomic_filesystem()`` each file is written beside its destination under a hidden
temporary name (``.NAME.XXXX.partial``), flushed to the disk (``fsync``), renamed onto its destination
(``os.replace``: atomic on POSIX), and the rename is made durable by an ``fsync`` of the folder: a killed process
leaves the previous version, and so does a host that loses power (the rename is either on the disk or not).
Trial checkpoints, written by the workers, go through it too; ``study.json`` through ``replace_durably``.

A process killed while writing leaves its ``.partial`` file behind; ``remove_partials`` clears a folder's
leftovers when a phase starts or resumes (nothing else writes there then).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import uuid
from pathlib import Path

import pyarrow
from fsspec.implementations.local import LocalFileSystem
from pyarrow.fs import FSSpecHandler, PyFileSystem

PARTIAL = ".partial"
CHECKPOINT_PREFIX = "checkpoint_"  # Tune's name for a trial's checkpoint folders


def empty_checkpoint(folder: Path) -> None:
    """Remove what a trial's checkpoint folder holds and keep the folder: a saved Tune state may still name it, and
    Tune refuses to restore a checkpoint whose folder is gone. Best effort: what cannot be removed costs disk,
    never a trial."""
    for item in folder.iterdir():
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make the folder's entries (a rename into it) durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all, and durably."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{PARTIAL}")
    try:
        with open(partial, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    fsync_folder(path.parent)


def remove_partials(folder: Path) -> int:
    """Delete the ``.partial`` leftovers of killed writers below ``folder``; returns how many."""
    leftovers = [p for p in Path(folder).rglob(f".*{PARTIAL}") if p.is_file()] if Path(folder).is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)


class ReplaceOnClose(io.FileIO):
    """A binary file written under a hidden name next to ``path`` and renamed onto ``path`` by ``close()``."""

    def __init__(self, path: str):
        folder, name = os.path.split(path)
        os.makedirs(folder or ".", exist_ok=True)
        self.destination = path
        self.partial = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}{PARTIAL}")
        super().__init__(self.partial, "wb")

    def close(self) -> None:
        if not self.closed:
            self.flush()
            os.fsync(self.fileno())
            super().close()
            os.replace(self.partial, self.destination)
            fsync_folder(os.path.dirname(self.destination) or ".")

    def __del__(self) -> None:
        # Dropped without close() (the copy failed half-way): the destination keeps its previous version.
        if not self.closed:
            io.FileIO.close(self)
            with contextlib.suppress(OSError):
                os.unlink(self.partial)


class AtomicWrites(FSSpecHandler):
    """pyarrow's fsspec bridge over the local disk, with output streams that replace their file on close."""

    def __init__(self):
        super().__init__(LocalFileSystem())

    def open_output_stream(self, path, metadata):
        return pyarrow.PythonFile(ReplaceOnClose(path), mode="w")

    def delete_dir(self, path):
        """Empty a trial's ``checkpoint_*`` folder instead of removing it; remove any other folder.

        Tune keeps ``num_to_keep`` checkpoints a trial: registering a new one deletes the oldest, and the saved
        experiment state stops naming it only at its next save, synced to the study folder asynchronously. A
        driver killed in between leaves a state that names the deleted checkpoint, and Tune refuses to restore a
        checkpoint whose path is gone: the trial failed for good (seen in the fault campaign under load). An
        empty folder passes Tune's check, and the trial, finding no state in it, retrains from its start
        (``tuner/trainable.py``): deterministic, and its logged steps are not logged again.
        """
        if Path(path).name.startswith(CHECKPOINT_PREFIX):
            empty_checkpoint(Path(path))
        else:
            super().delete_dir(path)

    def __reduce__(self):  # trials on Ray workers rebuild it from its class
        return AtomicWrites, ()


def atomic_filesystem() -> PyFileSystem:
    """Pass as ``storage_filesystem`` with an absolute ``storage_path`` (runs, restores, ``can_restore``)."""
    return PyFileSystem(AtomicWrites())
