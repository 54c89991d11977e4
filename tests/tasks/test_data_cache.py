"""The per-node data cache (``tasks/data_cache.py``) with the Warcraft sets: built once by processes that start
together, checked on every use (a truncated or altered file is rebuilt), keyed by what determines the content, and
memory-mapped by the trials without a copy."""

import hashlib
import json
import logging
import multiprocessing
import os

import numpy as np
import pytest

from tasks import data_cache, shortest_path
from tasks.warcraft_data import SPLITS, cached_copy, cached_generated, files, generate_warcraft, generated_arrays

pytestmark = pytest.mark.xdist_group("test_data_cache")

SIZES = {"train": 60, "val": 10, "test": 10}
BUILT = "built in"  # what the cache logs once per build


def fingerprints(arrays) -> dict[str, tuple]:
    """name -> (shape, dtype, SHA-256 of the bytes) of (name, array) pairs."""
    return {
        name: (tuple(a.shape), str(a.dtype), hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest())
        for name, a in arrays
    }


def cached_arrays(folder) -> list[tuple[str, np.ndarray]]:
    return [(name, np.load(folder / name, mmap_mode="r")) for s in SPLITS for name in files(s).values()]


def _trial(root: str, barrier, results) -> None:
    """One trial of several that start at once on a node with an empty cache: waits for all, then asks for the set."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("tasks.data_cache")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    barrier.wait()  # every process has imported torch and the generator
    folder = cached_generated(SIZES, seed=11, cache=root)
    results.put((os.getpid(), sum(BUILT in m for m in messages), str(folder), fingerprints(cached_arrays(folder))))


def test_trials_that_start_together_build_the_set_once(tmp_path):
    """Four processes ask for the same set at the same moment: one builds it (one "built in" among them all, by
    the pid the manifest names), the others wait for it, and all read the same bytes as the uncached generator's."""
    context = multiprocessing.get_context("forkserver")  # fresh processes, forked from one that imported torch once
    context.set_forkserver_preload([__name__])
    barrier, results = context.Barrier(4), context.Queue()
    trials = [context.Process(target=_trial, args=(str(tmp_path), barrier, results)) for _ in range(4)]
    for trial in trials:
        trial.start()
    answers = [results.get(timeout=120) for _ in trials]
    for trial in trials:
        trial.join(timeout=30)
        assert trial.exitcode == 0
    assert sum(builds for _, builds, _, _ in answers) == 1
    (folder,) = {folder for _, _, folder, _ in answers}
    assert sorted(p for p in tmp_path.iterdir()) == [tmp_path / os.path.basename(folder)]  # one entry, no leftovers
    manifest = json.loads((tmp_path / os.path.basename(folder) / data_cache.MANIFEST).read_text())
    assert manifest["built"]["pid"] in {pid for pid, builds, _, _ in answers if builds == 1}
    reference = fingerprints(generated_arrays(SIZES, seed=11))
    assert all(prints == reference for _, _, _, prints in answers) and len(reference) == 9
    assert not [p for p in tmp_path.rglob(f"*{data_cache.PARTIAL}")]


def builds(caplog) -> int:
    return sum(BUILT in r.getMessage() for r in caplog.records if r.name == "tasks.data_cache")


def test_a_truncated_or_altered_file_is_rebuilt_not_used(tmp_path, caplog):
    """Each defect is found by the check every reader makes and the entry is rebuilt to the same bytes: a file
    cut short, one byte changed at the same size (the CRC-32), the manifest missing beside a killed builder's
    hidden leftover."""
    caplog.set_level(logging.INFO, logger="tasks.data_cache")
    folder = cached_generated(SIZES, seed=5, cache=tmp_path)
    good = {p.name: p.read_bytes() for p in folder.glob("*.npy")}
    assert builds(caplog) == 1 and data_cache.problem(folder, _identity(folder)) is None

    maps = folder / "train_maps.npy"
    os.truncate(maps, maps.stat().st_size // 2)
    assert "truncated" in data_cache.problem(folder, _identity(folder))
    assert cached_generated(SIZES, seed=5, cache=tmp_path) == folder and builds(caplog) == 2
    assert "train_maps.npy has" in caplog.text and "truncated" in caplog.text

    weights = folder / "val_vertex_weights.npy"
    altered = bytearray(weights.read_bytes())
    altered[-1] ^= 0xFF
    weights.write_bytes(bytes(altered))
    assert cached_generated(SIZES, seed=5, cache=tmp_path) == folder and builds(caplog) == 3
    assert "val_vertex_weights.npy does not match its checksum" in caplog.text

    (folder / data_cache.MANIFEST).unlink()
    (folder / f".test_maps.npy.0123456789ab{data_cache.PARTIAL}").write_bytes(b"half")
    assert cached_generated(SIZES, seed=5, cache=tmp_path) == folder and builds(caplog) == 4
    assert {p.name: p.read_bytes() for p in folder.glob("*.npy")} == good
    assert sorted(p.name for p in folder.iterdir()) == sorted([*good, data_cache.MANIFEST, ".lock"])

    assert cached_generated(SIZES, seed=5, cache=tmp_path) == folder and builds(caplog) == 4  # intact: used


def _identity(folder):
    return json.loads((folder / data_cache.MANIFEST).read_text())["identity"]


def test_a_build_that_fails_midway_leaves_no_usable_entry(tmp_path):
    """A builder that fails after its first file (a full disk) leaves files but no manifest: the entry reads as not
    built, and the next call builds it whole."""
    first = np.arange(12, dtype=np.int16).reshape(3, 4)

    def failing():
        yield "a.npy", first
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        data_cache.cached("toy", {"n": 3}, failing, tmp_path)
    (folder,) = [p for p in tmp_path.iterdir()]
    assert data_cache.problem(folder, {"n": 3}) == "not built yet" and (folder / "a.npy").is_file()
    second = np.ones(5)
    assert data_cache.cached("toy", {"n": 3}, lambda: [("a.npy", first), ("b.npy", second)], tmp_path) == folder
    assert np.array_equal(np.load(folder / "a.npy"), first) and np.array_equal(np.load(folder / "b.npy"), second)
    assert not [p for p in folder.iterdir() if p.name.endswith(data_cache.PARTIAL)]


def test_what_determines_the_content_keys_the_entry(tmp_path, caplog):
    """Another seed or other sizes make another entry with other content; the same ones reuse the entry."""
    caplog.set_level(logging.INFO, logger="tasks.data_cache")
    a = cached_generated(SIZES, seed=1, cache=tmp_path)
    b = cached_generated(SIZES, seed=2, cache=tmp_path)
    c = cached_generated({**SIZES, "val": 12}, seed=1, cache=tmp_path)
    assert len({a, b, c}) == 3 and builds(caplog) == 3
    assert (a / "train_maps.npy").read_bytes() != (b / "train_maps.npy").read_bytes()
    assert np.load(c / "val_maps.npy").shape[0] == 12
    assert cached_generated(dict(SIZES), seed=1, cache=tmp_path) == a and builds(caplog) == 3


def test_the_cache_folder_comes_from_the_environment(tmp_path, monkeypatch):
    """$NEWTON_CACHE_DIR, else $XDG_CACHE_HOME/newton-losses, else ~/.cache/newton-losses; a folder that cannot
    be written is an error naming the variable."""
    for name in (data_cache.ENV_VAR, "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_cache.cache_root() == tmp_path / "home" / ".cache" / "newton-losses"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_cache.cache_root() == tmp_path / "xdg" / "newton-losses"
    monkeypatch.setenv(data_cache.ENV_VAR, str(tmp_path / "chosen"))
    assert data_cache.cache_root() == tmp_path / "chosen"
    folder = cached_generated(SIZES, seed=7)
    assert folder.parent == tmp_path / "chosen" and folder.name.startswith("warcraft-generated-")
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()

    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(data_cache.ENV_VAR, str(tmp_path / "a-file"))
    with pytest.raises(OSError, match=f"cannot write the data cache .*a-file.*set {data_cache.ENV_VAR}"):
        cached_generated(SIZES, seed=7)


def test_a_real_folder_is_copied_once_per_source_version(tmp_path, caplog):
    """A data_dir is copied into the cache once, byte for byte; a source file with a new mtime makes a new copy;
    where the cache cannot be written, the source is read directly, with a warning."""
    caplog.set_level(logging.INFO, logger="tasks.data_cache")
    source = generate_warcraft(tmp_path / "real", SIZES, seed=3)
    copy = cached_copy(source, cache=tmp_path / "cache")
    assert copy.parent == tmp_path / "cache" and copy.name.startswith("warcraft-copy-")
    assert all((copy / p.name).read_bytes() == p.read_bytes() for p in source.glob("*.npy"))
    assert cached_copy(source, cache=tmp_path / "cache") == copy and builds(caplog) == 1
    stat = (source / "test_shortest_paths.npy").stat()
    os.utime(source / "test_shortest_paths.npy", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cached_copy(source, cache=tmp_path / "cache") != copy and builds(caplog) == 2
    (tmp_path / "a-file").write_text("")
    with pytest.warns(UserWarning, match="cannot write the data cache.*reading .*real directly"):
        assert cached_copy(source, cache=tmp_path / "a-file") == source.resolve()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cached_copy(tmp_path / "nothing", cache=tmp_path / "cache")


def test_a_trial_maps_the_cached_maps_without_a_copy(tmp_path, monkeypatch):
    """The task's data are memory maps of the cache's files, and its training tensor shares their memory."""
    monkeypatch.setenv(data_cache.ENV_VAR, str(tmp_path))
    monkeypatch.delenv("NEWTON_WARCRAFT_DIR", raising=False)
    cfg = shortest_path.resolve_config(
        {"train_size": 60, "eval_size": 10, "data_seed": 5}, shortest_path.DEFAULTS, "shortest_path"
    )
    maps = shortest_path._load(cfg)["train"]["maps"]
    assert isinstance(maps, np.memmap) and not maps.flags.writeable
    assert os.path.dirname(maps.filename) == str(cached_generated({"train": 60, "val": 10, "test": 10}, seed=5))
    tensor = shortest_path._shared(maps)
    assert tensor.data_ptr() == maps.ctypes.data and tensor.shape == (60, 96, 96, 3)
