"""Warcraft 12x12 shortest-path data (Vlastelica et al. 2020; paper Section 4.2, SPEC 5): load or generate.

Format (a folder): ``{train,val,test}_maps.npy`` (N, 96, 96, 3) uint8, ``{split}_vertex_weights.npy``
(N, 12, 12) float16 and ``{split}_shortest_paths.npy`` (N, 12, 12) uint8 0/1, with N = 10 000 / 1 000 /
1 000 in the real set. The real set is not on any package registry, so besides loading a user's folder
this module *generates* a set of the same format and character offline: spatially coherent regions of
five terrain types with the real set's costs, each cell drawn as an 8 x 8 texture tile that varies from
cell to cell (colour ranges overlap between terrains, so a model must read texture, not a colour), and
true shortest paths from the exact solver.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from losses import shortest_paths

ENV_VAR = "NEWTON_WARCRAFT_DIR"
SPLITS = ("train", "val", "test")
TERRAIN_COSTS = (0.8, 1.2, 5.3, 7.7, 9.2)
GRID, TILE = 12, 8
REAL_SIZES = {"train": 10_000, "val": 1_000, "test": 1_000}


def files(split: str) -> dict[str, str]:
    return {
        "maps": f"{split}_maps.npy",
        "weights": f"{split}_vertex_weights.npy",
        "paths": f"{split}_shortest_paths.npy",
    }


def load_warcraft(folder: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Read and check the three splits; a missing file or a wrong shape/dtype is a clear error."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Warcraft data folder {folder} does not exist (expected "
            f"{', '.join(f for s in SPLITS for f in files(s).values())})"
        )
    missing = [name for split in SPLITS for name in files(split).values() if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"Warcraft data folder {folder} lacks {', '.join(missing)}")
    data = {}
    for split in SPLITS:
        arrays = {}
        for key, name in files(split).items():
            path = folder / name
            try:
                arrays[key] = np.load(path, mmap_mode="r")
            except ValueError as error:
                raise ValueError(f"{path} is not a readable .npy file: {error}") from None
        _check_split(arrays, split, folder)
        data[split] = arrays
    return data


def _check_split(arrays: dict[str, np.ndarray], split: str, folder: Path) -> None:
    n = len(arrays["maps"])
    expected = {
        "maps": ((n, GRID * TILE, GRID * TILE, 3), np.uint8),
        "weights": ((n, GRID, GRID), None),
        "paths": ((n, GRID, GRID), None),
    }
    for key, (shape, dtype) in expected.items():
        array = arrays[key]
        if array.shape != shape or (dtype is not None and array.dtype != dtype):
            raise ValueError(
                f"{folder / files(split)[key]}: expected shape {shape}{f' {np.dtype(dtype)}' if dtype else ''}, "
                f"got {array.shape} {array.dtype}"
            )
    if not np.issubdtype(arrays["weights"].dtype, np.floating):
        raise ValueError(
            f"{folder / files(split)['weights']}: vertex weights must be floats, got {arrays['weights'].dtype}"
        )


def generate_warcraft(folder: str | Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write a generated data set in the real format into ``folder`` (deterministic in ``seed`` and ``sizes``)."""
    sizes = {**REAL_SIZES, **(sizes or {})}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    textures = _textures(rng)
    for split in SPLITS:
        terrain = _terrain(rng, sizes[split])
        weights = np.asarray(TERRAIN_COSTS, dtype=np.float16)[terrain]
        paths, _ = shortest_paths(torch.from_numpy(weights.astype(np.float64)))
        arrays = {"maps": _render(rng, terrain, textures), "weights": weights, "paths": paths.numpy().astype(np.uint8)}
        for key, name in files(split).items():
            tmp = folder / f".{name}.tmp.npy"
            np.save(tmp, arrays[key])
            os.replace(tmp, folder / name)  # no half-written file under the real name
    return folder


def cached_generated(sizes: dict[str, int] | None = None, seed: int = 0, cache: str | Path | None = None) -> Path:
    """The generated set for these sizes and seed, generated once into the cache (``~/.cache/newton-losses``).

    Safe under concurrency (trials starting together on one machine or on a shared folder): each process
    generates into a private temporary folder and renames the finished folder into place, an atomic step, so
    the cache folder either does not exist or is complete. A process that loses the race discards its copy
    (generation is deterministic, so both copies are the same).
    """
    sizes = {**REAL_SIZES, **(sizes or {})}
    # The last element is the format version: 2 since the exact solver, 3 since its canonical choice among
    # equally short paths (paths on tied costs changed each time).
    key = hashlib.sha1(json.dumps([sizes, seed, TERRAIN_COSTS, 3]).encode()).hexdigest()[:12]
    root = Path(cache or os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "newton-losses"
    folder = root / f"warcraft-generated-{key}"
    if folder.is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=root))
    try:
        generate_warcraft(private, sizes, seed)
        os.rename(private, folder)
    except OSError:
        if not folder.is_dir():  # not a lost race: a real error
            raise
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return folder


def _terrain(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 12, 12) terrain ids 0..4 as coherent regions: smoothed noise cut at random quantiles."""
    coarse = rng.normal(size=(n, 4, 4))
    field = np.kron(coarse, np.ones((3, 3)))  # 12 x 12 blocks ...
    field = field + 0.6 * rng.normal(size=(n, GRID, GRID))
    for _ in range(2):  # ... smoothed by a 3x3 box filter
        padded = np.pad(field, ((0, 0), (1, 1), (1, 1)), mode="edge")
        field = sum(padded[:, dy : dy + GRID, dx : dx + GRID] for dy in range(3) for dx in range(3)) / 9
    shares = rng.dirichlet(np.full(5, 2.0), size=n)  # each map has its own mix of terrains
    ranked = np.sort(field.reshape(n, -1), axis=1)
    at = np.minimum((np.cumsum(shares, axis=1)[:, :4] * GRID * GRID).astype(int), GRID * GRID - 1)
    cuts = np.take_along_axis(ranked, at, axis=1)  # (n, 4) per-map quantiles
    order = np.stack([rng.permutation(5) for _ in range(n)])  # which terrain sits at which field level
    levels = (field[..., None] > cuts[:, None, None, :]).sum(-1)
    return np.take_along_axis(order, levels.reshape(n, -1), axis=1).reshape(n, GRID, GRID)


def _textures(rng: np.random.Generator, variants: int = 6) -> np.ndarray:
    """(5, variants, 8, 8, 3) float texture tiles: per terrain a pattern (frequency, orientation) and a colour
    range that overlaps its neighbours'."""
    yy, xx = np.mgrid[0:TILE, 0:TILE] / TILE
    base = np.array([[70, 140, 60], [110, 150, 70], [120, 110, 90], [100, 100, 110], [90, 80, 70]], float)
    tiles = np.empty((5, variants, TILE, TILE, 3))
    for t in range(5):
        for v in range(variants):
            angle = rng.uniform(0, np.pi) if t % 2 else np.pi * t / 5
            freq = 1 + 1.5 * t
            pattern = np.sin(2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 2 * np.pi))
            colour = base[t] + rng.normal(0, 18, size=3)
            tiles[t, v] = colour + (12 + 6 * t) * pattern[..., None]
    return tiles


def _render(rng: np.random.Generator, terrain: np.ndarray, textures: np.ndarray) -> np.ndarray:
    n = len(terrain)
    variant = rng.integers(textures.shape[1], size=terrain.shape)
    tiles = textures[terrain, variant]  # (n, 12, 12, 8, 8, 3)
    tiles = tiles * rng.uniform(0.85, 1.15, size=(n, GRID, GRID, 1, 1, 1)) + rng.normal(0, 6, size=tiles.shape)
    image = tiles.transpose(0, 1, 3, 2, 4, 5).reshape(n, GRID * TILE, GRID * TILE, 3)
    return np.clip(image, 0, 255).astype(np.uint8)
