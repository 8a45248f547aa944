"""The speed benchmark's parts run and report sensible numbers (on tiny data: no timing is asserted)."""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import train_speed  # noqa: E402

TINY = "20-8:relu-6:sigmoid-3:softmax"


@pytest.fixture
def tiny(rng):
    return rng.random((300, 20), dtype=np.float32), rng.integers(0, 3, 300)


def test_nnscratch_epochs_are_timed(tiny):
    seconds = train_speed.nnscratch_epochs(TINY, *tiny, epochs=2)
    assert len(seconds) == 2 and all(s > 0 for s in seconds)


@pytest.mark.parametrize("peer", list(train_speed.PEERS))
def test_each_installed_peer_trains_the_same_shape(peer, tiny):
    module, fn = train_speed.PEERS[peer]
    pytest.importorskip(module)
    seconds = fn(TINY, *tiny, epochs=2)
    assert len(seconds) == 2 and all(s > 0 for s in seconds)


def test_gemm_bound_counts_forward_and_backward_flops():
    bound = train_speed.gemm_bound(TINY, 1280, repeat=2)
    # per batch: forward 20·8 + 8·6 + 6·3, dW the same, dX for the two upper layers 8·6 + 6·3; ×2 flops, ×128 rows
    macs = (20 * 8 + 8 * 6 + 6 * 3) * 2 + 8 * 6 + 6 * 3
    assert bound["gflop_per_epoch"] == pytest.approx(2 * 128 * macs * 10 / 1e9)
    assert bound["seconds_per_epoch"] > 0 and bound["gflops"] > 0


def test_missing_peer_is_reported_as_skipped(tmp_path, monkeypatch, rng):
    from tests.test_data import write_tiny_mnist

    write_tiny_mnist(tmp_path / "d", rng, n_train=256, n_test=64, side=28, classes=10)
    monkeypatch.setattr(train_speed, "NETWORKS", {"seed": "784-8:relu-10:softmax"})
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    out = tmp_path / "r.json"
    assert train_speed.main(["--data-dir", str(tmp_path / "d"), "--quick", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    seed = result["networks"]["seed"]
    assert seed["pytorch"] == {"skipped": "torch is not installed"}
    assert seed["ratios"]["nnscratch/gemm_bound"] > 0
    assert result["peak_memory_mb"] > 0 and result["machine"]["cpu_count"] >= 1
