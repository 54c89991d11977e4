"""``tuner data NAME DIR``: download one of the paper's data sets (``tasks/datasets.py``) into ``DIR``, verified,
and print the line that points the tasks at it.

Each file is fetched resumably (``tuner/download.py``) from the published sources, or from ``--mirror URL``, a
base URL holding the same file names; a mirror may also serve a ``SHA256SUMS`` manifest (``sha256sum``'s
format), whose digests then replace the pinned ones for the files it lists. A data set that ships as an archive
is unpacked and checked before its files move into place; a rerun skips what is already there and verified.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import NamedTuple, TextIO

from .download import fetch, mismatch, read_text
from .errors import DataError

MANIFEST = "SHA256SUMS"


class Source(NamedTuple):
    name: str
    urls: tuple[str, ...]
    digests: dict[str, str]
    size: int | None


def data_command(args) -> int:
    fetch_dataset(args.dataset, args.dir, args.mirror, args.keep_archive)
    return 0


def fetch_dataset(
    name: str,
    folder: str | Path,
    mirror: str | None = None,
    keep_archive: bool = False,
    out: TextIO | None = None,
    progress: TextIO | None = None,
) -> Path:
    """Download, verify and unpack data set ``name`` into ``folder``; print where it is and the export line.

    On a failure nothing unverified is left under a real name: a bad download is deleted, an interrupted one stays
    as ``NAME.part`` for the next run, and a folder this call created is removed again if it is empty."""
    from tasks.datasets import DATASETS, unpack, unpacked

    out = out or sys.stdout
    if name not in DATASETS:
        raise DataError(f"no data set {name!r} (there are: {', '.join(DATASETS)})")
    dataset = DATASETS[name]
    folder = Path(folder).expanduser().resolve()
    if unpacked(name, folder):
        print(f"{dataset.title} is already in {folder}", file=out)
        return _done(dataset, folder, out)
    sources, origin = _sources(dataset, mirror)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create {folder}: {error.strerror or error}") from None
    try:
        todo = [
            s for s in sources if not ((folder / s.name).is_file() and not mismatch(folder / s.name, s.digests, s.size))
        ]
        _check_room(dataset, folder, todo)
        print(
            f"{dataset.title}: {len(todo)} of {len(sources)} file(s) to download into {folder}; checksums: {origin}",
            file=out,
            flush=True,
        )
        for source in todo:
            used = fetch(source.urls, folder / source.name, source.digests, source.size, progress)
            print(f"{source.name}: verified ({', '.join(sorted(source.digests))}) from {used}", file=out, flush=True)
        try:
            readable = unpack(name, folder)
        except ValueError as error:
            raise DataError(
                f"{dataset.title}: the verified download does not unpack into the files the task reads: {error}"
            ) from None
        except OSError as error:
            raise DataError(f"cannot unpack {dataset.title} in {folder}: {error.strerror or error}") from None
        for archive in [s.name for s in sources if s.name not in readable and not keep_archive]:
            (folder / archive).unlink(missing_ok=True)  # unpacked and checked: the task never reads it
    except DataError:
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise
    return _done(dataset, folder, out)


def parse_manifest(text: str, where: str) -> dict[str, str]:
    """``sha256sum`` output: ``<64 hex digits>  <name>`` (or `` *<name>``) per line -> {name: digest}."""
    digests = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"\s*([0-9a-fA-F]{64}) [ *](.+?)\s*", line)
        if not match:
            raise DataError(f"{where} line {number} is not '<sha256>  <file name>': {line[:80]!r}")
        digests[match[2]] = match[1].lower()
    return digests


def _sources(dataset, mirror: str | None) -> tuple[list[Source], str]:
    if not mirror:
        return [
            Source(r.name, r.urls, r.digests, r.size) for r in dataset.files
        ], "the published ones pinned in tasks/datasets.py"
    base = mirror.rstrip("/") + "/"
    text = read_text(base + MANIFEST)
    listed = parse_manifest(text, base + MANIFEST) if text is not None else {}
    sources = [
        Source(r.name, (base + r.name,), {"sha256": listed[r.name]}, None)
        if r.name in listed
        else Source(r.name, (base + r.name,), r.digests, r.size)
        for r in dataset.files
    ]
    used = [r.name for r in dataset.files if r.name in listed]
    origin = (
        (
            f"the mirror's {MANIFEST} for {', '.join(used)}"
            + ("" if len(used) == len(sources) else ", the published pinned ones for the rest")
        )
        if used
        else "the published ones pinned in tasks/datasets.py"
    )
    return sources, origin


def _check_room(dataset, folder: Path, todo: list[Source]) -> None:
    """Refuse up front when the downloads (less what ``.part`` files already hold) and the unpacking cannot fit."""
    if any(s.size is None for s in todo):
        return
    parts = [folder / f"{s.name}.part" for s in todo]
    need = sum(s.size - (p.stat().st_size if p.is_file() else 0) for s, p in zip(todo, parts))
    need += dataset.unpacked_bytes
    free = shutil.disk_usage(folder).free
    if need > free:
        raise DataError(
            f"{folder} has {free / 1e6:.0f} MB free, but {dataset.title} needs about {need / 1e6:.0f} MB "
            f"more (downloads{' and unpacking' if dataset.unpacked_bytes else ''}): free some space or "
            f"choose another folder"
        )


def _done(dataset, folder: Path, out: TextIO) -> Path:
    print(
        f"{dataset.title} is ready in {folder}. Point the tasks at it (or set data_dir: {folder} in a study):", file=out
    )
    print(f"export {dataset.env_var}={shlex.quote(str(folder))}", file=out, flush=True)
    return folder
