"""The command line: train, evaluate and gradcheck as a user runs them, and every kind of bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nnscratch.cli import build_parser, command_names, main
from nnscratch.data import load_dataset
from nnscratch.network import Network
from tests.test_data import write_tiny_mnist


@pytest.fixture
def tiny_dir(tmp_path, rng):
    write_tiny_mnist(tmp_path / "data", rng, n_train=200, n_test=50)
    return tmp_path / "data"


def run_cli(*args, cwd=None):
    """Run ``nnscratch ARGS`` in a fresh interpreter: (exit code, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "nnscratch.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    return done.returncode, done.stdout, done.stderr


def test_every_command_has_help(capsys):
    for name in command_names():
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        assert "usage: nnscratch " + name in capsys.readouterr().out
    assert {"train", "evaluate", "gradcheck"} <= set(command_names())
    assert build_parser().prog == "nnscratch"


def test_train_saves_model_npz_in_the_current_directory(tiny_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--data-dir", str(tiny_dir), "--hidden", "8:tanh", "--epochs", "2", "--seed", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "test accuracy" in out and "saved model.npz" in out
    net = Network.load(tmp_path / "model.npz")
    assert net.spec == "16-8:tanh-3:softmax"
    assert net.metadata["config"]["epochs"] == 2 and len(net.metadata["history"]["epochs"]) == 2
    test = load_dataset(tiny_dir)  # the recorded accuracy is the saved model's on the 50 test images
    assert net.metadata["test_accuracy"] == pytest.approx(np.mean(net.predict(test.X_test) == test.y_test))


def test_train_options_reach_the_network_and_the_loop(tiny_dir, tmp_path, capsys):
    out = tmp_path / "my.npz"
    args = [
        "train",
        "--data-dir",
        str(tiny_dir),
        "--hidden",
        "12:relu,6:selu",
        "--optimizer",
        "nesterov",
        "--lr",
        "0.05",
        "--batch-size",
        "full",
        "--epochs",
        "3",
        "--schedule",
        "cosine",
        "--l2",
        "1e-4",
        "--validation-size",
        "20",
        "--init",
        "uniform",
        "--dtype",
        "float64",
        "--output",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    net = Network.load(out)
    config = net.metadata["config"]
    assert net.dtype == np.float64 and [layer.init for layer in net.layers] == ["uniform"] * 3
    assert config["batch_size"] is None and config["optimizer"] == "nesterov" and config["schedule"] == "cosine"
    assert config["learning_rate"] == 0.05 and config["l2"] == 1e-4 and config["validation_size"] == 20


def test_seed_preset_builds_the_original_stack(tiny_dir, tmp_path):
    out = tmp_path / "s.npz"
    assert main(["train", "--preset", "seed", "--data-dir", str(tiny_dir), "--epochs", "1", "-o", str(out), "-q"]) == 0
    assert Network.load(out).spec == "16-32:relu-32:sigmoid-64:selu-64:tanh-3:softmax"


def test_evaluate_prints_accuracy_per_class_and_confusion(tiny_dir, tmp_path, capsys):
    out = tmp_path / "m.npz"
    main(["train", "--data-dir", str(tiny_dir), "--hidden", "8:relu", "--epochs", "1", "-o", str(out), "-q"])
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data-dir", str(tiny_dir)]) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "precision" in text and "confusion matrix" in text
    assert main(["evaluate", str(out), "--data-dir", str(tiny_dir), "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert np.array(result["confusion_matrix"]).sum() == 50 and len(result["recall"]) == 3


def test_gradcheck_passes_for_the_seed_preset(capsys):
    assert main(["gradcheck", "--inputs", "30", "--samples", "4"]) == 0
    text = capsys.readouterr().out
    assert text.count("pass") >= 10 and "all 10 gradient arrays pass" in text


def test_gradcheck_fails_loudly_on_a_wrong_derivative(monkeypatch, capsys):
    from nnscratch.activations import Sigmoid

    monkeypatch.setattr(Sigmoid, "backward", lambda self, z, a, da: da * a)
    assert main(["gradcheck", "--inputs", "30", "--samples", "4"]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--hidden", "32:relu,3x", "--data-dir", "."], "cannot read layer '3x'"),
        (["train", "--hidden", "32:swish", "--data-dir", "."], "unknown activation 'swish'"),
        (["train", "--data-dir", "/nonexistent/dir"], "does not exist"),
        (["evaluate", "missing.npz", "--data-dir", "."], "not found"),
        (["train", "--epochs", "0"], "expected a positive integer"),
        (["train", "--batch-size", "lots"], "expected a positive integer"),
        (["train", "--optimizer", "rmsprop"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_without_traceback(args, message, tmp_path):
    code, out, err = run_cli(*args, cwd=tmp_path)
    assert code != 0
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.npz"))


def test_garbage_model_file_is_refused(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"\x00" * 100)
    code, _, err = run_cli("evaluate", "junk.npz", cwd=tmp_path)
    assert code == 1 and "not an nnscratch model file" in err and len(err.strip().splitlines()) == 1


def test_divergence_stops_with_advice_and_saves_nothing(tiny_dir, tmp_path):
    code, _, err = run_cli(
        "train", "--data-dir", str(tiny_dir), "--optimizer", "sgd", "--lr", "1e30", "-q", cwd=tmp_path
    )
    assert code == 1 and "diverged" in err and "smaller than 1e+30" in err and "Traceback" not in err
    assert "RuntimeWarning" not in err
    assert not (tmp_path / "model.npz").exists()


def test_output_into_a_missing_directory_fails_before_training(tiny_dir, tmp_path):
    code, _, err = run_cli("train", "--data-dir", str(tiny_dir), "-o", "no/such/dir/m.npz", cwd=tmp_path)
    assert code == 1 and "does not exist" in err


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_and_resume_finishes_bit_for_bit(tiny_dir, tmp_path, sig):
    common = ["--data-dir", str(tiny_dir), "--hidden", "16:tanh", "--epochs", "300", "--batch-size", "8", "-q"]
    assert main(["train", *common, "-o", str(tmp_path / "reference.npz")]) == 0

    checkpoints = tmp_path / "ckpt"
    cmd = [sys.executable, "-m", "nnscratch.cli", "train", *common, "--checkpoint-dir", str(checkpoints)]
    process = subprocess.Popen(cmd + ["-o", str(tmp_path / "partial.npz")], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (checkpoints / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted; the checkpoint of epoch" in err and "--resume" in err and "Traceback" not in err
    assert not (tmp_path / "partial.npz").exists()
    assert (
        main(
            [
                "train",
                "--resume",
                str(checkpoints),
                "--data-dir",
                str(tiny_dir),
                "-q",
                "-o",
                str(tmp_path / "resumed.npz"),
            ]
        )
        == 0
    )
    reference, resumed = Network.load(tmp_path / "reference.npz"), Network.load(tmp_path / "resumed.npz")
    np.testing.assert_array_equal(resumed.params, reference.params)


def test_train_and_evaluate_write_plots(tiny_dir, tmp_path, capsys):
    model = tmp_path / "m.npz"
    args = ["train", "--data-dir", str(tiny_dir), "--hidden", "8:relu", "--epochs", "2", "-o", str(model), "-q"]
    assert main([*args, "--plots", str(tmp_path / "train_plots")]) == 0
    assert len(list((tmp_path / "train_plots").glob("*.png"))) == 6
    assert main(["evaluate", str(model), "--data-dir", str(tiny_dir), "--plots", str(tmp_path / "eval_plots")]) == 0
    assert len(list((tmp_path / "eval_plots").glob("*.png"))) == 4
    assert "wrote 4 plots" in capsys.readouterr().out
