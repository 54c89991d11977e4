"""``tuner data``: downloads from a local HTTP server this test starts (files it makes, with a SHA256SUMS
manifest), through the real command; resuming a ``.part`` with HTTP Range; a bad checksum, no network and a full
disk as one line each, nothing unverified left under a real name."""

import contextlib
import errno
import functools
import hashlib
import os
import shutil
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tasks.datasets import DATASETS
from tasks.mnist_digits import load_digits, write_idx
from tasks.warcraft_data import generate_warcraft, load_warcraft
from tuner import cli, download
from tuner.errors import DataError

from .helpers import free_port

MNIST_NAMES = [remote.name for remote in DATASETS["mnist"].files]


class RangeHandler(SimpleHTTPRequestHandler):
    """A static file server that honours ``Range: bytes=N-`` (unless the server says not to) and logs requests."""

    def send_head(self):
        path = Path(self.translate_path(self.path))
        self.server.log.append((self.path.lstrip("/"), self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404)
            return None
        size, start = path.stat().st_size, 0
        wanted = self.headers.get("Range")
        if wanted and self.server.ranges:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= size:
                self.send_error(416)
                return None
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        body = open(path, "rb")  # noqa: SIM115 (the handler's copyfile reads and closes it)
        body.seek(start)
        return body

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(folder: Path, ranges: bool = True):
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(folder)))
    server.log, server.ranges = [], ranges
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def manifest(folder: Path, names, wrong=()) -> None:
    lines = [
        f"{'0' * 64 if name in wrong else hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}"
        for name in names
    ]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


@pytest.fixture
def mnist_mirror(tmp_path):
    """A mirror holding small MNIST-format files (random pixels; the train images ~200 kB so a download takes
    several chunks) and their manifest."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("t10k", 40)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    manifest(folder, MNIST_NAMES)
    return folder


def run(capsys, *args):
    code = cli.main(["data", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_mnist_downloads_verifies_and_prints_the_export_line(mnist_mirror, tmp_path, capsys):
    target = tmp_path / "data" / "mnist"
    with serving(mnist_mirror) as (_, url):
        code, out, err = run(capsys, "mnist", target, "--mirror", url)
    assert code == 0, err
    assert out.splitlines()[-1] == f"export NEWTON_MNIST_DIR={target}"
    assert "the mirror's SHA256SUMS" in out
    assert sorted(p.name for p in target.iterdir()) == sorted(MNIST_NAMES)
    for name in MNIST_NAMES:
        assert (target / name).read_bytes() == (mnist_mirror / name).read_bytes()
    digits = load_digits(str(target))
    assert digits.source == f"mnist-idx:{target}" and len(digits.test[0]) == 40
    assert "100%" in err  # the progress bar (one line per 10 % when stderr is not a terminal)


def test_a_rerun_skips_verified_files(mnist_mirror, tmp_path, capsys):
    target = tmp_path / "mnist"
    with serving(mnist_mirror) as (server, url):
        assert run(capsys, "mnist", target, "--mirror", url)[0] == 0
        server.log.clear()
        code, out, _ = run(capsys, "mnist", target, "--mirror", url)
    assert code == 0 and "0 of 4 file(s) to download" in out
    assert [name for name, _ in server.log] == ["SHA256SUMS"]


@pytest.mark.parametrize("ranges", [True, False], ids=["server-resumes", "server-ignores-range"])
def test_a_partial_download_is_resumed(mnist_mirror, tmp_path, capsys, ranges):
    """A ``.part`` holding the first half: a Range request fetches the rest; a server that ignores Range sends the
    whole file again, which replaces the part. Either way the result is the published file."""
    name = "train-images-idx3-ubyte.gz"
    whole = (mnist_mirror / name).read_bytes()
    target = tmp_path / "mnist"
    target.mkdir()
    (target / f"{name}.part").write_bytes(whole[: len(whole) // 2])
    with serving(mnist_mirror, ranges=ranges) as (server, url):
        code, _, err = run(capsys, "mnist", target, "--mirror", url)
    assert code == 0, err
    assert (name, f"bytes={len(whole) // 2}-") in server.log
    assert (f"{name}: resuming after" in err) == ranges
    assert (target / name).read_bytes() == whole and not (target / f"{name}.part").exists()


def test_a_bad_checksum_is_one_line_and_leaves_nothing(mnist_mirror, tmp_path, capsys):
    manifest(mnist_mirror, MNIST_NAMES, wrong=[MNIST_NAMES[0]])
    target = tmp_path / "mnist"
    with serving(mnist_mirror) as (_, url):
        code, out, err = run(capsys, "mnist", target, "--mirror", url)
    assert code == 2
    line = [line for line in err.splitlines() if line.startswith("tuner:")]
    assert len(line) == 1 and err.endswith(line[0] + "\n")
    assert line[0].startswith(f"tuner: error: {MNIST_NAMES[0]} from {url}{MNIST_NAMES[0]} failed verification (sha256 ")
    assert "the download was deleted" in line[0]
    assert not target.exists()  # the folder the command made, empty again, is gone
    assert "export" not in out


def test_a_later_bad_file_keeps_only_verified_files(mnist_mirror, tmp_path, capsys):
    manifest(mnist_mirror, MNIST_NAMES, wrong=[MNIST_NAMES[2]])
    target = tmp_path / "mnist"
    with serving(mnist_mirror) as (_, url):
        assert run(capsys, "mnist", target, "--mirror", url)[0] == 2
    assert sorted(p.name for p in target.iterdir()) == sorted(MNIST_NAMES[:2])
    assert all(
        download.mismatch(target / n, {"sha256": hashlib.sha256((mnist_mirror / n).read_bytes()).hexdigest()}) is None
        for n in MNIST_NAMES[:2]
    )


def test_no_network_is_one_line(tmp_path, capsys):
    dead = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    code, _, err = run(capsys, "mnist", tmp_path / "mnist", "--mirror", dead)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"tuner: error: cannot read {dead}SHA256SUMS: connection refused")
    assert not (tmp_path / "mnist").exists()
    with pytest.raises(DataError) as caught:
        download.fetch([dead + "x.gz"], tmp_path / "x.gz", {"sha256": "0" * 64})
    assert f"cannot download x.gz ({dead}x.gz: connection refused)" in str(caught.value)
    assert not list(tmp_path.iterdir())


def test_a_full_disk_is_one_line_and_the_part_resumes(mnist_mirror, tmp_path, capsys, monkeypatch):
    """The real HTTP download, with the write failing with ENOSPC once 100 kB are on disk; freed, a rerun resumes."""
    name = "train-images-idx3-ubyte.gz"
    whole = (mnist_mirror / name).read_bytes()
    limit = 100_000
    real_append = download._append

    def append(out, chunk):
        room = limit - out.tell()
        if len(chunk) > room:
            real_append(out, chunk[: max(room, 0)])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_append(out, chunk)

    monkeypatch.setattr(download, "CHUNK", 16_384)
    monkeypatch.setattr(download, "_append", append)
    target = tmp_path / "mnist"
    with serving(mnist_mirror) as (server, url):
        code, _, err = run(capsys, "mnist", target, "--mirror", url)
        assert code == 2
        line = err.splitlines()[-1]
        assert line == (
            f"tuner: error: no space left on the device of {target} while writing {name}.part (0.1 MB "
            f"written): free some space and run the command again, it resumes from there"
        )
        assert (target / f"{name}.part").stat().st_size == limit and not (target / name).exists()
        monkeypatch.setattr(download, "_append", real_append)
        server.log.clear()
        assert run(capsys, "mnist", target, "--mirror", url)[0] == 0
    assert (name, f"bytes={limit}-") in server.log
    assert (target / name).read_bytes() == whole


def test_too_little_room_is_refused_before_downloading(tmp_path, capsys, monkeypatch):
    """A mirror without a manifest: the pinned sizes apply, so the command knows the 11 MB will not fit."""
    empty = tmp_path / "mirror"
    empty.mkdir()
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, used=10**9, free=1_000_000))
    with serving(empty) as (server, url):
        code, _, err = run(capsys, "mnist", tmp_path / "mnist", "--mirror", url)
    assert code == 2 and err.startswith(
        f"tuner: error: {tmp_path / 'mnist'} has 1 MB free, but MNIST needs about 12 MB"
    )
    assert [name for name, _ in server.log] == ["SHA256SUMS"]


def test_unknown_data_set(tmp_path, capsys):
    code, _, err = run(capsys, "imagenet", tmp_path)
    assert code == 2 and err == "tuner: error: no data set 'imagenet' (there are: mnist, warcraft)\n"


def warcraft_archive(folder: Path, drop: str | None = None) -> Path:
    """warcraft_maps.tar.gz as the authors pack it: warcraft_shortest_path_oneskin/{12x12,18x18}/..., the 12x12
    folder a small generated set; a decoy 18x18 folder holds files of the same names that must not be taken."""
    src = folder / "src" / "warcraft_shortest_path_oneskin"
    generate_warcraft(src / "12x12", {"train": 12, "val": 4, "test": 4}, seed=1)
    (src / "18x18").mkdir()
    for file in (src / "12x12").iterdir():
        np.save(src / "18x18" / file.name, np.zeros(3))
    if drop:
        (src / "12x12" / drop).unlink()
    mirror = folder / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "warcraft_maps.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="warcraft_shortest_path_oneskin")
    manifest(mirror, ["warcraft_maps.tar.gz"])
    return mirror


def test_warcraft_unpacks_the_12x12_folder_where_the_task_reads_it(tmp_path, capsys):
    mirror = warcraft_archive(tmp_path)
    target = tmp_path / "warcraft"
    with serving(mirror) as (server, url):
        code, out, err = run(capsys, "warcraft", target, "--mirror", url)
        assert code == 0, err
        assert out.splitlines()[-1] == f"export NEWTON_WARCRAFT_DIR={target}"
        data = load_warcraft(target)
        assert [len(data[s]["maps"]) for s in ("train", "val", "test")] == [12, 4, 4]
        expected = load_warcraft(tmp_path / "src" / "warcraft_shortest_path_oneskin" / "12x12")
        assert np.array_equal(data["val"]["weights"], expected["val"]["weights"])
        assert sorted(p.name for p in target.iterdir()) == sorted(
            f"{s}_{k}.npy" for s in ("train", "val", "test") for k in ("maps", "vertex_weights", "shortest_paths")
        )
        server.log.clear()
        code, out, _ = run(capsys, "warcraft", target, "--mirror", url)
    assert code == 0 and f"is already in {target}" in out and server.log == []


def test_an_archive_without_the_12x12_files_leaves_none_of_them(tmp_path, capsys):
    mirror = warcraft_archive(tmp_path, drop="val_shortest_paths.npy")
    target = tmp_path / "warcraft"
    with serving(mirror) as (_, url):
        code, _, err = run(capsys, "warcraft", target, "--mirror", url)
    assert code == 2 and err.endswith("has no 12x12/val_shortest_paths.npy\n")
    assert [line for line in err.splitlines() if line.startswith("tuner:")] == err.splitlines()[-1:]
    assert [p.name for p in target.iterdir()] == ["warcraft_maps.tar.gz"]  # verified: a rerun need not fetch it
