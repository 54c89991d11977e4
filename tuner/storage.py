"""The filesystem Tune writes a study's folder through: every file appears whole or not at all.

Tune saves its experiment state (trials, searcher, callbacks) to a private staging folder and copies it into the
study folder; the copy opens each destination file truncated and then fills it. A driver killed during a copy
(likely when the state is saved on every controller step) left an empty ``experiment_state-*.json``: Tune then
logged "Failed to restore the run state" and silently restarted the phase with new trial ids, which ``tuner
resume`` must never do. Through this filesystem each file is written beside its destination under a hidden
temporary name and renamed onto it when complete (``os.replace``: atomic on POSIX), so a kill leaves the previous
version. Trial checkpoints, written by the workers, go through it too.
"""
from __future__ import annotations

import contextlib
import io
import os
import uuid

import pyarrow
from fsspec.implementations.local import LocalFileSystem
from pyarrow.fs import FSSpecHandler, PyFileSystem


class ReplaceOnClose(io.FileIO):
    """A binary file written under a hidden name next to ``path`` and renamed onto ``path`` by ``close()``."""

    def __init__(self, path: str):
        folder, name = os.path.split(path)
        os.makedirs(folder or ".", exist_ok=True)
        self.destination = path
        self.partial = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.partial")
        super().__init__(self.partial, "wb")

    def close(self) -> None:
        if not self.closed:
            super().close()
            os.replace(self.partial, self.destination)

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

    def __reduce__(self):  # trials on Ray workers rebuild it from its class
        return AtomicWrites, ()


def atomic_filesystem() -> PyFileSystem:
    """Pass as ``storage_filesystem`` with an absolute ``storage_path`` (runs, restores, ``can_restore``)."""
    return PyFileSystem(AtomicWrites())
