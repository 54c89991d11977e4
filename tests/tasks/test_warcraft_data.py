"""Warcraft 12x12 data: the real format's loader and the offline generator of the same format."""

from pathlib import Path

import numpy as np
import pytest
import torch

from losses import shortest_paths
from tasks.warcraft_data import TERRAIN_COSTS, cached_generated, generate_warcraft, load_warcraft
from tasks.warcraft_model import CombResnet18, channel_stats

pytestmark = pytest.mark.xdist_group("test_warcraft_data")  # one worker runs the module: its module-scoped fixture once

SIZES = {"train": 60, "val": 10, "test": 10}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return generate_warcraft(tmp_path_factory.mktemp("warcraft"), SIZES, seed=3)


def test_generated_set_has_the_real_format(generated):
    data = load_warcraft(generated)
    for split, n in SIZES.items():
        maps, weights, paths = data[split]["maps"], data[split]["weights"], data[split]["paths"]
        assert maps.shape == (n, 96, 96, 3) and maps.dtype == np.uint8
        assert weights.shape == (n, 12, 12) and weights.dtype == np.float16
        assert paths.shape == (n, 12, 12) and paths.dtype == np.uint8 and set(np.unique(paths)) == {0, 1}
        assert set(np.unique(weights.astype(np.float32)).round(2)) == set(np.float32(TERRAIN_COSTS).round(2))


def test_paths_are_the_exact_shortest_paths_of_the_weights(generated):
    data = load_warcraft(generated)["train"]
    costs = torch.from_numpy(data["weights"].astype(np.float64))
    _, optimum = shortest_paths(costs)
    path_costs = (torch.from_numpy(data["paths"].astype(np.float64)) * costs).sum((1, 2))
    torch.testing.assert_close(path_costs, optimum)
    assert data["paths"][:, 0, 0].all() and data["paths"][:, -1, -1].all()


def test_terrain_forms_coherent_regions(generated):
    """Neighbouring cells share a terrain far more often than the 1/5 of independent cells."""
    weights = load_warcraft(generated)["train"]["weights"]
    same = np.mean(
        np.concatenate(
            [(weights[:, 1:, :] == weights[:, :-1, :]).ravel(), (weights[:, :, 1:] == weights[:, :, :-1]).ravel()]
        )
    )
    assert same > 0.45


def test_terrain_is_not_a_colour(generated):
    """Cell mean colours of different terrains overlap: the nearest-mean-colour classifier is far from perfect."""
    data = load_warcraft(generated)["train"]
    cells = data["maps"].reshape(-1, 12, 8, 12, 8, 3).mean((2, 4)).reshape(-1, 3)
    weights = data["weights"].astype(np.float32).reshape(-1, 1)
    labels = np.abs(weights - np.float32(TERRAIN_COSTS)).argmin(1)
    centres = np.stack([cells[labels == t].mean(0) for t in range(5)])
    predicted = np.argmin(((cells[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert 0.3 < (predicted == labels).mean() < 0.9


def test_generation_is_deterministic_and_cached(tmp_path):
    a = generate_warcraft(tmp_path / "a", SIZES, seed=5)
    b = generate_warcraft(tmp_path / "b", SIZES, seed=5)
    for name in ("train_maps.npy", "test_vertex_weights.npy", "val_shortest_paths.npy"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    folder = cached_generated(SIZES, seed=5, cache=tmp_path / "cache")
    assert (folder / "train_maps.npy").read_bytes() == (a / "train_maps.npy").read_bytes()
    stamp = (folder / "train_maps.npy").stat().st_mtime_ns
    assert cached_generated(SIZES, seed=5, cache=tmp_path / "cache") == folder
    assert (folder / "train_maps.npy").stat().st_mtime_ns == stamp  # generated once


def test_loader_errors_name_the_file(generated, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_warcraft(tmp_path / "nothing")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in generated.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    np.save(broken / "val_vertex_weights.npy", np.zeros((10, 11, 12), np.float16))
    with pytest.raises(ValueError, match=r"val_vertex_weights.npy: expected shape \(10, 12, 12\)"):
        load_warcraft(broken)
    np.save(broken / "val_maps.npy", np.zeros((10, 96, 96, 3), np.float32))
    with pytest.raises(ValueError, match=r"val_maps.npy: expected shape \(10, 96, 96, 3\) uint8"):
        load_warcraft(broken)
    (broken / "test_shortest_paths.npy").unlink()
    (broken / "train_maps.npy").unlink()
    with pytest.raises(FileNotFoundError, match="lacks train_maps.npy, test_shortest_paths.npy"):
        load_warcraft(broken)


def test_comb_resnet18_shapes_and_parameter_count(generated):
    """ResNet18's conv1 (9 408) + bn1 (128) + layer1 (2 x (2 x 36 864 + 2 x 128)) = 157 504 parameters."""
    maps = load_warcraft(generated)["train"]["maps"]
    model = CombResnet18(*channel_stats(maps))
    assert sum(p.numel() for p in model.parameters()) == 157_504
    out = model(torch.from_numpy(np.array(maps[:4])))
    assert out.shape == (4, 12, 12) and torch.isfinite(out).all()


def _generate_in_a_race(cache: str, start_at: float) -> dict[str, str]:
    """One of several processes that ask for the same generated set at the same moment."""
    import hashlib
    import time

    time.sleep(max(0.0, start_at - time.time()))
    folder = cached_generated(SIZES, seed=11, cache=cache)
    data = load_warcraft(folder)  # reads every file: a half-written one would fail here or differ below
    return {
        f"{split}/{key}": hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()
        for split, arrays in data.items()
        for key, array in arrays.items()
    }


def test_concurrent_trials_share_one_complete_cache(tmp_path):
    """Six processes with an empty cache, all at once: none crashes, all read the same complete set, and no
    temporary folder is left behind."""
    import multiprocessing
    import time

    context = multiprocessing.get_context("spawn")
    with context.Pool(6) as pool:
        start_at = time.time() + 8  # after every worker has imported torch
        results = pool.starmap(_generate_in_a_race, [(str(tmp_path), start_at)] * 6)
    assert all(r == results[0] for r in results) and len(results[0]) == 9
    entries = sorted(p.name for p in (tmp_path / "newton-losses").iterdir())
    assert len(entries) == 1 and entries[0].startswith("warcraft-generated-")
    reference = generate_warcraft(tmp_path / "direct", SIZES, seed=11)
    assert _generate_in_a_race(str(tmp_path / "newton-losses" / ".."), 0) == results[0]
    assert (reference / "train_maps.npy").read_bytes() == (
        tmp_path / "newton-losses" / entries[0] / "train_maps.npy"
    ).read_bytes()


def test_the_cache_folder_never_holds_a_partial_set(tmp_path, monkeypatch):
    """Generation writes elsewhere and the cache folder appears complete in one step; a generation that fails
    midway leaves neither the cache folder nor a temporary one."""
    import tasks.warcraft_data as module

    real = module.generate_warcraft
    seen = []

    def watched(folder, sizes, seed):
        seen.append(Path(folder))
        assert not list((tmp_path / "newton-losses").glob("warcraft-generated-*")), "cache folder visible too early"
        return real(folder, sizes, seed)

    monkeypatch.setattr(module, "generate_warcraft", watched)
    folder = cached_generated(SIZES, seed=2, cache=tmp_path)
    assert seen and seen[0] != folder and seen[0].parent == folder.parent and not seen[0].exists()
    load_warcraft(folder)

    def failing(folder, sizes, seed):
        (Path(folder) / "train_maps.npy").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module, "generate_warcraft", failing)
    with pytest.raises(OSError, match="No space left"):
        cached_generated(SIZES, seed=3, cache=tmp_path)
    assert sorted(p.name for p in (tmp_path / "newton-losses").iterdir()) == [folder.name]
