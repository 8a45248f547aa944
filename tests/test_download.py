"""Downloading MNIST: verified by SHA-256, mirrors tried in order, nothing half-written on failure.

A local HTTP server plays the mirrors; no test reaches the internet.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import threading

import numpy as np
import pytest

from nnscratch.cli import main
from nnscratch.data import download_mnist, load_dataset
from nnscratch.errors import DownloadError


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www over HTTP on 127.0.0.1; yields the base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def publish(root, folder, name, content: bytes):
    (root / folder).mkdir(exist_ok=True)
    (root / folder / f"{name}.gz").write_bytes(gzip.compress(content))


FILES = {"small-file": hashlib.sha256(b"the right content").hexdigest()}


def test_download_verifies_and_places_the_file(server, tmp_path):
    root, url = server
    publish(root, "good", "small-file", b"the right content")
    dest = tmp_path / "cache"
    download_mnist(dest, mirrors=[f"{url}/good/"], files=FILES)
    assert [p.name for p in dest.iterdir()] == ["small-file.gz"]
    assert gzip.decompress((dest / "small-file.gz").read_bytes()) == b"the right content"


def test_a_corrupted_mirror_is_skipped_for_the_next(server, tmp_path):
    root, url = server
    publish(root, "bad", "small-file", b"tampered content")
    publish(root, "good", "small-file", b"the right content")
    logged = []
    download_mnist(
        tmp_path / "c", mirrors=[f"{url}/bad/", f"{url}/missing/", f"{url}/good/"], files=FILES, log=logged.append
    )
    assert len(logged) == 3
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["small-file.gz"]


def test_corrupted_or_truncated_downloads_leave_nothing_behind(server, tmp_path):
    root, url = server
    publish(root, "bad", "small-file", b"tampered content")
    (root / "trunc").mkdir()
    (root / "trunc" / "small-file.gz").write_bytes(gzip.compress(b"the right content")[:-6])
    dest = tmp_path / "c"
    with pytest.raises(DownloadError, match="could not download small-file.gz.*offline.*copy the four MNIST"):
        download_mnist(dest, mirrors=[f"{url}/bad/", f"{url}/trunc/"], files=FILES)
    assert list(dest.iterdir()) == []
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download_mnist(dest, mirrors=[f"{url}/bad/"], files=FILES)
    assert list(dest.iterdir()) == []


def test_unreachable_mirror_gives_a_one_line_error(tmp_path):
    with pytest.raises(DownloadError) as info:
        download_mnist(tmp_path / "c", mirrors=["http://127.0.0.1:9/"], files=FILES, timeout=2)
    assert "\n" not in str(info.value)


def test_existing_files_are_not_downloaded_again(server, tmp_path):
    root, url = server
    publish(root, "good", "small-file", b"the right content")
    dest = tmp_path / "c"
    dest.mkdir()
    existing = gzip.compress(b"anything")
    (dest / "small-file.gz").write_bytes(existing)
    logged = []
    assert download_mnist(dest, mirrors=[f"{url}/good/"], files=FILES, log=logged.append) == dest
    assert logged == []  # no mirror was even tried, though one was there to serve the file
    assert [p.name for p in dest.iterdir()] == ["small-file.gz"]
    assert (dest / "small-file.gz").read_bytes() == existing  # kept as it was, not replaced by the mirror's


@pytest.mark.timeout(120)
def test_first_run_downloads_real_mnist_into_the_cache_and_trains(server, tmp_path, mnist_dir, monkeypatch, capsys):
    root, url = server
    for path in mnist_dir.glob("*-ubyte.gz"):
        shutil.copy(path, root / path.name)
    monkeypatch.delenv("NNSCRATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("NNSCRATCH_MNIST_MIRRORS", f"{url}/")
    data = load_dataset()  # downloads, verifies the real SHA-256 sums, caches
    cache = tmp_path / "xdg" / "nnscratch" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in mnist_dir.glob("*-ubyte.gz"))
    assert data.X_train.shape == (60000, 784) and data.X_test.shape == (10000, 784)
    assert np.bincount(data.y_test).tolist()[:2] == [980, 1135]
    # The second run reads the cache: the mirror is gone and nothing breaks.
    monkeypatch.setenv("NNSCRATCH_MNIST_MIRRORS", "http://127.0.0.1:9/")
    out = tmp_path / "m.npz"
    assert main(["train", "--hidden", "16:relu", "--epochs", "1", "--quiet", "--output", str(out)]) == 0
    assert out.is_file() and "test accuracy" in capsys.readouterr().out
