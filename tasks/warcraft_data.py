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
import inspect
import os
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from losses import shortest_paths

from . import data_cache

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


def generated_arrays(sizes: dict[str, int] | None = None, seed: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """The generated set's files as (file name, array), split by split (deterministic in ``seed`` and ``sizes``)."""
    sizes = {**REAL_SIZES, **(sizes or {})}
    rng = np.random.default_rng(seed)
    textures = _textures(rng)
    for split in SPLITS:
        terrain = _terrain(rng, sizes[split])
        weights = np.asarray(TERRAIN_COSTS, dtype=np.float16)[terrain]
        paths, _ = shortest_paths(torch.from_numpy(weights.astype(np.float64)))
        arrays = {"maps": _render(rng, terrain, textures), "weights": weights, "paths": paths.numpy().astype(np.uint8)}
        for key, name in files(split).items():
            yield name, arrays[key]


def generate_warcraft(folder: str | Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write a generated data set in the real format into ``folder`` (deterministic in ``seed`` and ``sizes``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in generated_arrays(sizes, seed):
        tmp = folder / f".{name}.tmp.npy"
        np.save(tmp, array)
        os.replace(tmp, folder / name)  # no half-written file under the real name
    return folder


def cached_generated(sizes: dict[str, int] | None = None, seed: int = 0, cache: str | Path | None = None) -> Path:
    """The generated set for these sizes and seed, generated once per node into the data cache.

    The cache (``tasks/data_cache.py``: ``$NEWTON_CACHE_DIR``, else ``~/.cache/newton-losses``; ``cache`` names
    another) is keyed by the sizes, the seed, the terrain costs, the format and the generator's code; trials
    that start together wait for one of them to generate it, and each checks the files before it memory-maps
    them.
    """
    sizes = {**REAL_SIZES, **(sizes or {})}
    # The format is 2 since the exact solver, 3 since its canonical choice among equally short paths (paths on
    # tied costs changed each time).
    identity = {
        "sizes": sizes,
        "seed": seed,
        "terrain_costs": TERRAIN_COSTS,
        "format": 3,
        "code": generator_code(),  # an edited generator or solver makes a new entry, never a stale one
    }
    return data_cache.cached("warcraft-generated", identity, lambda: generated_arrays(sizes, seed), cache)


def generator_code() -> str:
    """A hash of the code that makes a generated set: this module (terrain, textures, rendering) and the exact
    solver that labels the shortest paths."""
    digest = hashlib.sha256()
    for module in (__file__, inspect.getfile(shortest_paths)):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()[:16]


def cached_copy(folder: str | Path, cache: str | Path | None = None) -> Path:
    """A checked copy of a Warcraft folder (``data_dir``, often on storage shared by every node) in the node's data
    cache, made once per node and keyed by the source files' paths, sizes and mtimes (a changed file makes a new
    copy). Where the cache cannot be written, the source folder itself, with a warning."""
    data = load_warcraft(folder)  # the source's own errors first: missing files, wrong shapes
    source = Path(folder).expanduser().resolve()
    stats = {name: (source / name).stat() for split in SPLITS for name in files(split).values()}
    identity = {
        "source": str(source),
        "files": {name: [st.st_size, st.st_mtime_ns] for name, st in stats.items()},
        "format": 1,
    }

    def copy():
        for split in SPLITS:
            for key, name in files(split).items():
                yield name, np.ascontiguousarray(data[split][key])

    try:
        return data_cache.cached("warcraft-copy", identity, copy, cache)
    except OSError as error:
        warnings.warn(f"{error}; reading {source} directly", stacklevel=2)
        return source


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


def _render(rng: np.random.Generator, terrain: np.ndarray, textures: np.ndarray, chunk: int = 500) -> np.ndarray:
    n = len(terrain)
    variant = rng.integers(textures.shape[1], size=terrain.shape)
    scale = rng.uniform(0.85, 1.15, size=(n, GRID, GRID, 1, 1, 1))
    image = np.empty((n, GRID * TILE, GRID * TILE, 3), np.uint8)
    # In chunks of maps, so the float64 tiles take 110 MB, not 2.2 GB for 10 000 maps; the generator draws the
    # noise of consecutive chunks as one draw of the whole, so the maps are the same.
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        tiles = textures[terrain[part], variant[part]]  # (chunk, 12, 12, 8, 8, 3)
        tiles = tiles * scale[part] + rng.normal(0, 6, size=tiles.shape)
        pixels = tiles.transpose(0, 1, 3, 2, 4, 5).reshape(-1, GRID * TILE, GRID * TILE, 3)
        image[part] = np.clip(pixels, 0, 255).astype(np.uint8)
    return image
