"""The speed benchmark's parts run and report sensible numbers (on tiny data: no timing is asserted)."""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from nnscratch.network import Network

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import records  # noqa: E402
import train_speed  # noqa: E402
import winograd_trade  # noqa: E402

TINY = "20-8:relu-6:sigmoid-3:softmax"
TINY_CNN = "1x6x6-conv3k3-relu-maxpool2-flatten-3:softmax"


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


def test_the_torch_model_has_the_same_layers_and_parameter_count():
    pytest.importorskip("torch")
    for spec in (TINY, TINY_CNN, train_speed.NETWORKS["keras"], train_speed.NETWORKS["cnn"]):
        model, _ = train_speed.torch_model(spec)
        # batch norm's running statistics are buffers in PyTorch and state in nnscratch: neither counts
        assert sum(p.numel() for p in model.parameters()) == Network.from_spec(spec).n_params, spec


def test_a_convnet_trains_beside_pytorch(rng):
    X, y = rng.random((200, 36), dtype=np.float32), rng.integers(0, 3, 200)
    assert len(train_speed.nnscratch_epochs(TINY_CNN, X, y, epochs=1)) == 1
    pytest.importorskip("torch")
    assert len(train_speed.torch_epochs(TINY_CNN, X, y, epochs=1)) == 1


def test_gemm_bound_counts_a_convolution_as_its_im2col_products():
    bound = train_speed.gemm_bound(TINY_CNN, 128, repeat=1)
    # conv: 128·4·4 rows of 3·3·1 columns by 3 filters, forward and dW (no dX: the first layer);
    # dense 12 → 3: forward, dW and dX
    macs = 2 * (128 * 16 * 9 * 3) + 3 * (128 * 12 * 3)
    assert bound["gflop_per_epoch"] == pytest.approx(2 * macs / 1e9)


def test_each_thread_count_is_measured_with_the_speedup_over_one(tmp_path, monkeypatch, rng):
    from tests.test_data import write_tiny_mnist

    write_tiny_mnist(tmp_path / "d", rng, n_train=256, n_test=64, side=28, classes=10)
    monkeypatch.setattr(train_speed, "NETWORKS", {"seed": "784-8:relu-10:softmax"})
    monkeypatch.setattr(train_speed, "PEERS", {})
    out = tmp_path / "r.json"
    assert (
        train_speed.main(["--data-dir", str(tmp_path / "d"), "--quick", "--threads", "2,1", "--output", str(out)]) == 0
    )
    seed = json.loads(out.read_text())["networks"]["seed"]
    assert list(seed["threads"]) == ["1", "2"]
    one, two = (seed["threads"][t]["nnscratch"]["median_seconds_per_epoch"] for t in ("1", "2"))
    assert seed["speedup_over_1_thread"]["2"]["nnscratch"] == pytest.approx(one / two)
    # the same network as `nnscratch train` runs it, in a process of its own: one measured epoch
    command = seed["threads"]["2"]["nnscratch train"]
    assert len(command["epochs"]) == 1 and command["median_seconds_per_epoch"] == command["epochs"][0] > 0


def test_the_profile_splits_an_epoch_into_its_layers_the_loss_the_optimiser_and_the_rest(tmp_path, monkeypatch, rng):
    from tests.test_data import write_tiny_mnist

    write_tiny_mnist(tmp_path / "d", rng, n_train=256, n_test=64, side=28, classes=10)
    monkeypatch.setattr(train_speed, "NETWORKS", {"cnn": "1x28x28-conv2k3-bn-relu-maxpool2-dropout0.5-10:softmax"})
    out = tmp_path / "p.json"
    args = ["--data-dir", str(tmp_path / "d"), "--profile", "--networks", "cnn", "--threads", "1", "--output", str(out)]
    assert train_speed.main([*args, "--profile-batches", "2"]) == 0
    (profile,) = json.loads(out.read_text())["profile"]
    parts = [row["part"] for row in profile["rows"]]
    assert parts == [
        " 1 conv2k3",
        " 2 bn",
        " 3 relu",
        " 4 maxpool2",
        " 5 dropout0.5",
        " 6 flatten",
        " 7 10:identity",
        "loss (softmax cross-entropy)",
        "optimiser step",
        "the rest of the loop",
    ]
    assert profile["batches"] == 2 and profile["threads"] == 1
    rows = profile["rows"]
    assert all(row["forward"] > 0 for row in rows[:4]) and all(row["backward"] > 0 for row in rows[:4])
    assert sum(row["forward"] + row["backward"] for row in rows) == pytest.approx(profile["epoch_seconds"])


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
    (seed,) = result["networks"]["seed"]["threads"].values()
    assert seed["pytorch"] == {"skipped": "torch is not installed"}
    assert seed["ratios"]["nnscratch/gemm_bound"] > 0
    assert result["peak_memory_mb"]["mlps"] > 0 and result["machine"]["cpu_count"] >= 1


@pytest.mark.parametrize("side", [8, 9])  # an even output, and an odd one padded to whole tiles
def test_winograd_computes_the_convolution_and_its_gradients(side):
    row = winograd_trade.measure(C=3, side=side, F=4, repeat=1, m=5)
    differences = row["relative_difference"]
    assert set(differences) == {"Y", "dX", "dW", "db"}
    assert all(d < 1e-5 for d in differences.values()), differences  # float32 rounding of sums of ≤ 16·3 terms
    assert row["multiplications_saved"] == pytest.approx(2.25 if side % 2 == 0 else 9 * 49 / (16 * 16))
    assert all(ms > 0 for ms in row["winograd_ms"].values()) and all(ms > 0 for ms in row["im2col_ms"].values())


def test_winograd_trade_writes_its_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(winograd_trade, "LAYERS", {"small": (2, 6, 3)})
    out = tmp_path / "w.json"
    assert winograd_trade.main(["--repeat", "1", "--batch", "4", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["threads"] == 1 and set(result["layers"]) == {"small"}
    assert "small: im2col forward" in capsys.readouterr().out


def _record_model(path: Path, preset: str, seed: int, accuracy: float) -> None:
    net = Network.from_spec(TINY, seed=seed)
    net.metadata = {"preset": preset, "config": {"seed": seed, "epochs": 3}, "test_accuracy": accuracy, "seconds": 60.0}
    net.save(path)


def test_records_trains_each_missing_seed_with_the_cli_and_summarises_the_seeds(tmp_path, monkeypatch):
    _record_model(tmp_path / "cnn-best-s0.npz", "cnn-best", 0, 0.9955)  # already there: read, not trained
    _record_model(tmp_path / "cnn-best-s1.npz", "mlp-best", 1, 0.9)  # another preset's: trained again
    commands = []

    def fake_run(command, check):
        commands.append(command)
        seed = int(command[command.index("--seed") + 1])
        _record_model(Path(command[command.index("--output") + 1]), "cnn-best", seed, 0.9960 + seed / 10_000)

    monkeypatch.setattr(records, "machine_info", lambda: {"cpu_count": 2})  # it may call subprocess.run itself
    monkeypatch.setattr(records.subprocess, "run", fake_run)
    output = tmp_path / "records.json"
    assert records.main(["--presets", "cnn-best", "--runs", str(tmp_path), "--output", str(output)]) == 0
    assert [c[:6] for c in commands] == [
        ["nnscratch", "train", "--preset", "cnn-best", "--seed", "1"],
        ["nnscratch", "train", "--preset", "cnn-best", "--seed", "2"],
    ]
    result = json.loads(output.read_text())
    summary = result["summary"]["cnn-best"]
    assert summary["test_accuracy"] == pytest.approx([0.9955, 0.9961, 0.9962])
    assert summary["seed_0"] == pytest.approx(0.9955)
    assert summary["mean"] == pytest.approx((0.9955 + 0.9961 + 0.9962) / 3)
    assert summary["std"] == pytest.approx(np.std([0.9955, 0.9961, 0.9962], ddof=1))
    assert result["runs"][1]["command"] == "nnscratch train --preset cnn-best --seed 1"


def test_records_stops_with_a_message_when_the_cli_wrote_no_model(tmp_path, monkeypatch):
    monkeypatch.setattr(records.subprocess, "run", lambda command, check: None)
    with pytest.raises(SystemExit, match="is not the model `nnscratch train --preset mlp-best --seed 0"):
        records.main(["--presets", "mlp-best", "--seeds", "0", "--runs", str(tmp_path)])
