"""Warcraft 12x12 data: the real format's loader and the offline generator of the same format."""

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


def test_maps_do_not_depend_on_the_render_chunk():
    """The maps are rendered in chunks to bound memory; the noise of consecutive chunks is one draw of the whole,
    so any chunk size gives the same bytes."""
    from tasks.warcraft_data import _render, _terrain, _textures

    def render(chunk):
        rng = np.random.default_rng(4)
        textures = _textures(rng)
        return _render(rng, _terrain(rng, 7), textures, chunk=chunk)

    whole = render(1000)
    assert whole.shape == (7, 96, 96, 3) and whole.dtype == np.uint8
    for chunk in (1, 3):
        assert render(chunk).tobytes() == whole.tobytes()


def test_channel_stats_equal_those_of_a_float64_copy():
    """The byte-value counts give the float32 mean and std that torch gives on a float64 copy of the maps, bit for
    bit, over regimes: uniform bytes, clipped normals (saturated 0 and 255), one constant map (std 0), a few
    distinct values, and chunk boundaries inside the set."""
    rng = np.random.default_rng(0)
    sets = [
        rng.integers(0, 256, size=(7, 96, 96, 3)),
        np.clip(rng.normal(128, 90, size=(5, 96, 96, 3)), 0, 255),
        np.full((1, 96, 96, 3), 200),
        rng.choice([0, 17, 255], size=(3, 96, 96, 3)),
        *(np.clip(rng.normal(rng.uniform(0, 255), 25, size=(n, 96, 96, 3)), 0, 255) for n in range(1, 40, 6)),
    ]
    for maps in (s.astype(np.uint8) for s in sets):
        reference = torch.from_numpy(maps.astype(np.float64)).reshape(-1, 3)
        for chunk in (1, 4, 128):
            mean, std = channel_stats(maps, chunk=chunk)
            assert torch.equal(mean, reference.mean(0).float()) and torch.equal(std, reference.std(0).float())
    mean, std = channel_stats(torch.from_numpy(sets[0].astype(np.uint8)))
    assert torch.equal(std, torch.from_numpy(sets[0].astype(np.float64)).reshape(-1, 3).std(0).float())
