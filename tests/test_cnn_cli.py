"""Convolutional networks from the command line: train --spec, evaluate, predict, serve and gradcheck."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from nnscratch.cli import main
from nnscratch.network import Network
from nnscratch.web import create_app
from tests.test_data import write_tiny_mnist
from tests.test_images import digit_image

SPEC = "1x8x8-conv4k3p1-bn-relu-maxpool2-flatten-dropout0.2-3:softmax"
DIGIT_CNN = "1x28x28-conv4k3-relu-maxpool2-conv6k3s2-relu-flatten-16:relu-10:softmax"


@pytest.fixture
def images_dir(tmp_path, rng):
    write_tiny_mnist(tmp_path / "data", rng, n_train=120, n_test=30, side=8)
    return tmp_path / "data"


def test_train_a_convnet_from_its_spec_then_evaluate_it(images_dir, tmp_path, capsys):
    model = tmp_path / "cnn.npz"
    args = ["train", "--spec", SPEC, "--data-dir", str(images_dir), "--epochs", "2", "--batch-size", "16"]
    assert main([*args, "-o", str(model)]) == 0
    out = capsys.readouterr().out
    assert f"network {SPEC}" in out and "saved" in out
    net = Network.load(model)
    assert net.spec == SPEC and net.state.size == 8  # batch norm's running mean and variance of 4 channels
    assert net.metadata["config"]["epochs"] == 2 and len(net.metadata["history"]["epochs"]) == 2
    assert main(["evaluate", str(model), "--data-dir", str(images_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["spec"] == SPEC and len(report["confusion_matrix"]) == 3
    assert report["test_accuracy"] == pytest.approx(net.metadata["test_accuracy"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--spec", "1x28x28-conv4k3-relu-3"], r"input 1x28x28 \(784 values\) does not match the data's 64 .* 1x8x8"),
        (["--spec", "1x8x8-conv4k3-relu-10"], "ends in 10 classes but the data has 3; end the spec in 3:softmax"),
        (["--spec", SPEC, "--hidden", "8:relu"], "either --spec .* or --hidden"),
        (["--preset", "cnn", "--hidden", "8:relu"], "the cnn preset is a convnet; write the whole network with --spec"),
        (["--preset", "cnn"], "needs square images"),
    ],
)
def test_a_spec_that_does_not_fit_the_data_is_one_line(images_dir, tmp_path, capsys, args, message):
    data = images_dir
    if args == ["--preset", "cnn"]:  # 10 values per image: not a square
        data = tmp_path / "odd"
        data.mkdir()
        rows = "\n".join(f"{k % 3}," + ",".join(["7"] * 10) for k in range(30))
        (data / "mnist_train.csv").write_text(rows)
        (data / "mnist_test.csv").write_text(rows)
    code = main(["train", *args, "--data-dir", str(data), "--epochs", "1", "-q", "-o", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith("nnscratch train: error: ")
    assert re.search(message, err[0]), err[0]
    assert not (tmp_path / "m.npz").exists()


def test_a_malformed_spec_is_refused_before_any_data_is_read(tmp_path, capsys):
    code = main(["train", "--spec", "1x28x28-conv32x3-10", "--data-dir", str(tmp_path / "nowhere"), "-q"])
    assert code == 1 and "unknown layer 'conv32x3'" in capsys.readouterr().err


def test_gradcheck_checks_a_convnet_spec(capsys):
    assert main(["gradcheck", "--spec", "1x7x7-conv3k3p1-bn-relu-maxpool2-flatten-5-bn-tanh-3", "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert "all 10 gradient arrays pass" in out and "conv3k3p1" in out and "gamma" in out


@pytest.fixture
def digit_cnn(tmp_path):
    net = Network.from_spec(DIGIT_CNN, seed=0)
    net.metadata = {"test_accuracy": 0.5}
    return net.save(tmp_path / "digits_cnn.npz")


def test_predict_reads_handwriting_with_a_convnet(digit_cnn, tmp_path, capsys):
    digit_image().save(tmp_path / "one.png")
    assert main(["predict", str(digit_cnn), str(tmp_path / "one.png"), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    net = Network.load(digit_cnn)
    from nnscratch.images import load_digit

    expected = net.predict_proba(load_digit(tmp_path / "one.png").reshape(1, -1))[0]
    np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-6)


def test_the_web_page_serves_a_convnet(digit_cnn):
    net = Network.load(digit_cnn)
    client = TestClient(create_app(net, model_name="digits_cnn.npz"))
    info = client.get("/api/model").json()
    assert info["spec"] == DIGIT_CNN and info["layers"] == [
        {"units": 16, "activation": "relu"},
        {"units": 10, "activation": "softmax"},
    ]
    pixels = np.zeros(784)
    pixels[300:320] = 1.0
    answer = client.post("/api/predict", json={"pixels": pixels.tolist()}).json()
    np.testing.assert_allclose(answer["probabilities"], net.predict_proba(pixels.reshape(1, -1))[0], rtol=1e-5)
    assert [len(a) for a in answer["activations"]] == [16]


# -- networks that cannot fit in memory ----------------------------------------------------------

from tests.test_network import UNAFFORDABLE, small_machine  # noqa: E402  (this section's own helpers)

UNAFFORDABLE_SPECS = [spec for spec, _ in UNAFFORDABLE]


@pytest.mark.parametrize("command", ["train", "gradcheck"])
@pytest.mark.parametrize("spec", UNAFFORDABLE_SPECS)
def test_a_network_that_cannot_fit_is_one_line_from_train_and_gradcheck(
    images_dir, tmp_path, capsys, monkeypatch, command, spec
):
    small_machine(monkeypatch)  # 16 GB, and no network buffers may be allocated
    args = (
        ["--data-dir", str(images_dir), "--epochs", "1", "-q", "-o", str(tmp_path / "m.npz")]
        if command == "train"
        else []
    )
    code = main([command, "--spec", spec, *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith(f"nnscratch {command}: error: ")
    assert "of memory; choose" in err[0] and "Traceback" not in err[0]


def test_a_spec_that_does_not_fit_the_data_is_refused_from_its_shapes_before_any_array(
    images_dir, tmp_path, capsys, monkeypatch
):
    small_machine(monkeypatch)  # 1x300x300-conv1k1-10 fits in memory: only the data's 8x8 images refuse it
    code = main(
        ["train", "--spec", "1x300x300-conv1k1-10", "--data-dir", str(images_dir), "-q", "-o", str(tmp_path / "m.npz")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "input 1x300x300 (90000 values) does not match the data's 64 values per image" in err[0]


@pytest.mark.parametrize("spec", ["784-999999999-10", "1x99999x99999-conv1k1-maxpool15-10"])
def test_the_command_line_refuses_unaffordable_networks_quickly_in_one_line(images_dir, tmp_path, spec):
    import subprocess
    import sys
    import time

    started = time.perf_counter()
    command = [sys.executable, "-m", "nnscratch.cli", "train", "--spec", spec, "--data-dir", str(images_dir), "-q"]
    result = subprocess.run([*command, "-o", str(tmp_path / "m.npz")], capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    # the memory it needs, or (on a machine with 160 GB to spare) the data it does not match
    assert re.search(r"of memory; choose|does not match the data", lines[0])
    assert time.perf_counter() - started < 30  # an interpreter's start; it used to take 20 s and 5 GB


def test_a_memory_error_in_a_command_is_one_line(monkeypatch, capsys):
    import nnscratch.commands.gradcheck

    def run(args):
        raise MemoryError("Unable to allocate 3.2 TiB for an array with shape (794999999215,) and data type float32")

    monkeypatch.setattr(nnscratch.commands.gradcheck, "run", run)
    assert main(["gradcheck"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "nnscratch gradcheck: error: out of memory: unable to allocate 3.2 TiB for an array with shape "
        "(794999999215,) and data type float32; try a smaller network or --batch-size"
    ]


def test_gradcheck_refuses_more_samples_than_memory_holds_before_drawing_them(monkeypatch, capsys):
    monkeypatch.setattr("nnscratch.layers.base.available_memory", lambda: 16 * 10**9)
    assert main(["gradcheck", "--spec", "1x8x8-conv2k3-maxpool2-3", "--samples", "100000000"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "training on batches of 100,000,000 needs about" in line and "choose fewer --samples" in line
