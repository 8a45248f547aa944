"""Shared fixtures.  Real-MNIST tests read ``$NNSCRATCH_DATA`` (CI points it at the local copy)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from nnscratch.data import MNIST_FILES, _find, default_cache_dir


def _mnist_dir() -> Path | None:
    for candidate in (os.environ.get("NNSCRATCH_DATA"), default_cache_dir()):
        if candidate and all(_find(Path(candidate), stem) for stem in MNIST_FILES):
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    directory = _mnist_dir()
    if directory is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs the MNIST files: set NNSCRATCH_DATA to a directory holding them")
        pytest.skip("MNIST not available: set NNSCRATCH_DATA or run 'nnscratch train' once to download it")
    return directory


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from nnscratch.data import load_dataset

    return load_dataset(mnist_dir)


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_raises_keyboard_interrupt():
    """Ctrl-C as in a terminal, however the tests were started: a shell starts a background job
    (``cmd &``, ``nohup``) with SIGINT ignored, and its children inherit that, which would leave
    the tests of Ctrl-C nothing to catch.  A Python handler is not inherited by the processes the
    tests start, so they get Python's own handler too."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_data(rng):
    """A small separable problem: 4 Gaussian blobs in 12 dimensions, values in [0, 1]."""
    centres = rng.random((4, 12))
    y = rng.integers(0, 4, 400)
    X = np.clip(centres[y] + 0.05 * rng.standard_normal((400, 12)), 0.0, 1.0)
    return X, y


@pytest.fixture(scope="session")
def digit_model(tmp_path_factory):
    """A small 784-input model (random weights are enough for the web tests), saved to a file."""
    from nnscratch.calibration import Calibration
    from nnscratch.network import Network

    net = Network.from_spec("784-32:relu-16:tanh-10:softmax", seed=0)
    net.metadata = {"test_accuracy": 0.9}
    # thresholds no input reaches: it answers "not a digit" to everything (its probabilities as without)
    net.calibration = Calibration(temperature=1.0, score="energy", not_sure_below=1e9, not_a_digit_below=1e9)
    return net.save(tmp_path_factory.mktemp("model") / "digits.npz")


@pytest.fixture(scope="session")
def digit_cnn_model(tmp_path_factory):
    """A small 1×28×28 convnet (random weights), saved to a file: two conv and two pool layers."""
    from nnscratch.calibration import Calibration
    from nnscratch.network import Network

    net = Network.from_spec("1x28x28-conv4k3-relu-maxpool2-conv6k3-relu-maxpool2-flatten-10:softmax", seed=0)
    net.metadata = {"test_accuracy": 0.8}
    # every input is digit-like but below "sure": it answers "not sure" to everything
    net.calibration = Calibration(temperature=1.0, score="energy", not_sure_below=1e9, not_a_digit_below=-1e9)
    return net.save(tmp_path_factory.mktemp("model") / "digits-cnn.npz")


@pytest.fixture(scope="session")
def live_server(digit_model, digit_cnn_model):
    """The real uvicorn server for ``digit_model`` and ``digit_cnn_model`` side by side, as
    ``nnscratch serve`` runs it, on a free port of 127.0.0.1; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    from nnscratch.web import create_app
    from nnscratch.web.served import load_models

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(load_models([digit_model, digit_cnn_model])), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the web server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


class Interrupted(Exception):
    """Raised by :func:`stop_after_epoch`'s callback: a run stopped as if killed after an epoch."""


def stop_after_epoch(epoch: int):
    """A training callback that stops the run at the end of ``epoch`` (raising :class:`Interrupted`), once
    the checkpoint of that epoch is written: the first half of a resumed run."""
    from nnscratch.training import Callback

    class Stop(Callback):
        def on_epoch_end(self, net, record):
            if record.epoch == epoch:
                raise Interrupted

    return Stop()


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid-looking PNG of a few dozen bytes whose header claims width × height pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def dask_cluster():
    """A one-worker Dask cluster in this process, for the tests that send work to a cluster."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        yield cluster
