"""The command line: train, evaluate and gradcheck as a user runs them, and every kind of bad input."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nnscratch.cli import build_parser, command_names, main
from nnscratch.data import load_dataset
from nnscratch.network import Network
from nnscratch.training import Trainer
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
        "--l1",
        "1e-5",
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
    assert config["l1"] == 1e-5


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
    assert main(["evaluate", str(out), "--data-dir", str(tiny_dir), "--json", "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["confusion_matrix"] == result["confusion_matrix"]


@pytest.mark.timeout(120)
def test_train_calibrates_on_the_validation_split_and_evaluate_reports_the_calibration_error(tmp_path, rng, capsys):
    import json

    from nnscratch.calibration import expected_calibration_error
    from nnscratch.data import load_dataset
    from nnscratch.losses import softmax
    from tests.test_data import write_tiny_mnist

    write_tiny_mnist(tmp_path / "d", rng, n_train=400, n_test=100, side=28, classes=10)
    out = tmp_path / "m.npz"
    args = ["--data-dir", str(tmp_path / "d"), "--hidden", "16:relu", "--epochs", "2", "--validation-size", "100"]
    assert main(["train", *args, "--not-digits", "0.25", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "made-up non-digits ×0.25" in printed
    line = next(line for line in printed.splitlines() if line.startswith("calibrated on the validation split"))
    net = Network.load(out)
    report = net.metadata["history"]["calibration"]
    assert f"temperature {report['temperature']:.3f}" in line and "'not a digit' below" in line
    assert net.calibration.temperature == report["temperature"] and net.metadata["config"]["not_digits"] == 0.25
    assert main(["evaluate", str(out), "--data-dir", str(tmp_path / "d"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["calibration"]
    data = load_dataset(tmp_path / "d")
    Z = net.all_logits(data.X_test)
    assert result["ece_before"] == pytest.approx(expected_calibration_error(softmax(Z), data.y_test))
    assert result["ece_after"] == pytest.approx(expected_calibration_error(net.predict_proba(data.X_test), data.y_test))
    verdicts = net.verdicts(data.X_test)
    assert result["not_a_digit"] == pytest.approx(verdicts.count("not a digit") / 100)
    assert result["not_sure"] == pytest.approx(verdicts.count("not sure") / 100)
    assert main(["evaluate", str(out), "--data-dir", str(tmp_path / "d")]) == 0
    text = capsys.readouterr().out
    assert f"at temperature {net.calibration.temperature:.3f}" in text and "answered 'not sure' for" in text
    assert main(["evaluate", str(out), "--data-dir", str(tmp_path / "d"), "--plots", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "reliability.png").stat().st_size > 10_000
    capsys.readouterr()
    from nnscratch.tta import answers

    assert main(["evaluate", str(out), "--data-dir", str(tmp_path / "d"), "--json", "--tta", "3"]) == 0
    tta = json.loads(capsys.readouterr().out)["tta"]
    P, flags = answers(net, data.X_test, 3)
    assert tta["shifts"] == 3 and tta["test_accuracy"] == pytest.approx(np.mean(P.argmax(axis=1) == data.y_test))
    assert tta["not_a_digit"] == pytest.approx(flags.count("not a digit") / 100)
    assert main(["evaluate", str(out), "--data-dir", str(tmp_path / "d"), "--tta", "3"]) == 0
    assert "with test-time augmentation (3 shifts): test accuracy" in capsys.readouterr().out


def test_gradcheck_passes_for_the_seed_preset(capsys):
    assert main(["gradcheck", "--inputs", "30", "--samples", "4"]) == 0
    text = capsys.readouterr().out
    assert text.count("pass") >= 10 and "all 10 gradient arrays pass" in text
    header = next(line for line in text.splitlines() if "relative error" in line)
    assert [word for word in header.split() if word.isalpha()] == [
        "layer",
        "kind",
        "param",
        "shape",
        "checked",
        "relative",
        "error",
        "result",
    ]
    # numbers right-aligned, words left-aligned: "│     1 │ 32:relu    │ W     │ 30×32 │     960 │ ... │ pass   │"
    first = next(line for line in text.splitlines() if line.startswith("│") and "32:relu" in line)
    inner = [cell[1:-1] for cell in first.split("│")[1:-1]]  # each cell without its padding
    assert [inner[i][0] == " " for i in (0, 4, 5)] == [True] * 3  # layer, checked, relative error: right
    assert [inner[i][-1] == " " for i in (1, 2, 6)] == [True] * 3  # kind, param, result: left
    assert main(["gradcheck", "--inputs", "30", "--samples", "4", "--threads", "1"]) == 0
    assert "all 10 gradient arrays pass" in capsys.readouterr().out


def test_compare_reads_its_budget_and_rate_sweep_as_the_help_says():
    args = build_parser().parse_args(["compare"])
    assert (args.epochs, args.optimizer, args.schedule, args.lr, args.lrs) == (10, "adam", "wsd", 1e-3, None)
    assert (args.batch_size, args.seeds, args.jobs, args.widths, args.spec) == (128, 3, -1, None, None)
    assert build_parser().parse_args(["compare", "--lrs", "1e-3,3e-3"]).lrs == (1e-3, 3e-3)
    assert build_parser().parse_args(["compare", "--widths", "8,4"]).widths == (8, 4)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["compare", "--lrs", "1e-3,x"])


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
    assert len(list((tmp_path / "train_plots").glob("*.png"))) == 7
    assert main(["evaluate", str(model), "--data-dir", str(tiny_dir), "--plots", str(tmp_path / "eval_plots")]) == 0
    assert {path.name for path in (tmp_path / "eval_plots").glob("*.png")} == {
        "confusion_matrix.png",
        "confident_mistakes.png",
        "reliability.png",
        "first_layer_weights.png",
        "activation_histograms.png",
    }
    assert "wrote 5 plots" in capsys.readouterr().out


# -- output paths are checked before the work; saves survive signals ------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        (["--output", "runs"], "--output 'runs': is a directory; give a file name such as runs/model.npz"),
        (["--output", "runs/"], "--output 'runs/': names a directory; give a file name such as runs/model.npz"),
        (["--output", "new/"], "--output 'new/': names a directory; give a file name such as new/model.npz"),
        (["--output", ""], "--output '': the path is empty; give a file name such as model.npz"),
        (["--output", "pipe"], "--output 'pipe': is a FIFO (named pipe), not a regular file"),
        (["--plots", ""], "--plots is empty; give the name of a directory"),
        (["--plots", "notes.txt/plots"], "--plots 'notes.txt/plots': is inside 'notes.txt', which is a file"),
        (["--checkpoint-dir", ""], "--checkpoint-dir is empty"),
        (["--checkpoint-dir", "runs"], "--checkpoint-dir 'runs/checkpoint.npz': is a directory"),
    ],
)
def test_train_refuses_an_unwritable_output_before_any_work(tiny_dir, tmp_path, monkeypatch, capsys, options, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "checkpoint.npz").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("notes")
    os.mkfifo(tmp_path / "pipe")
    code = main(["train", "--data-dir", str(tiny_dir), "--hidden", "8:tanh", "--epochs", "1", *options])
    captured = capsys.readouterr()
    assert code == 1 and captured.err.startswith(f"nnscratch train: error: {message}")
    assert len(captured.err.strip().splitlines()) == 1  # not even "loading data...": nothing was done
    assert "epoch" not in captured.out and not [p for p in tmp_path.rglob("*.npz") if p.is_file()]


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "missing.npz", "runs"], "OUT.onnx 'runs': is a directory; give a file name such as runs/model.onn"),
        (
            ["predict", "missing.npz", "seven.png", "--show-preprocessed", "runs/"],
            "--show-preprocessed 'runs/': names a directory; give a file name such as runs/preprocessed.png",
        ),
        (["evaluate", "missing.npz", "--plots", ""], "--plots is empty"),
        (["compare", "--output", "runs", "--data-dir", "nowhere"], "--output 'runs/report.html': is a directory"),
        (["tune", "--output", "runs", "--data-dir", "nowhere"], "--output 'runs/best.json': is a directory"),
    ],
)
def test_every_command_checks_its_output_paths_first(tmp_path, monkeypatch, capsys, args, message):
    if args[0] == "tune":
        pytest.importorskip("optuna")
    monkeypatch.chdir(tmp_path)
    for blocker in ("report.html", "best.json"):  # directories where the command would write a file
        (tmp_path / "runs" / blocker).mkdir(parents=True)
    code = main(args)  # the model and the data are missing too: the output is checked before they are read
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"nnscratch {args[0]}: error: {message}") and len(err.splitlines()) == 1


def test_train_writes_through_a_symlinked_output_and_sweeps_its_stale_temporaries(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "model.npz").symlink_to("models/m.npz")
    stale = tmp_path / "models" / ".m.npz.x1y2z3_4.tmp"  # beside the file the link leads to
    stale.write_bytes(b"left by a run killed while saving")
    assert main(["train", "--data-dir", str(tiny_dir), "--hidden", "8:tanh", "--epochs", "1", "-q"]) == 0
    assert (tmp_path / "model.npz").is_symlink() and Network.load("model.npz").spec == "16-8:tanh-3:softmax"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["m.npz"]


SIGTERM_DURING_FIRST_SAVE = """
import os, signal, sys
import numpy as np
from nnscratch.cli import main

savez = np.savez

def savez_then_sigterm(f, **arrays):  # SIGTERM lands inside the first checkpoint's save
    np.savez = savez
    os.kill(os.getpid(), signal.SIGTERM)
    savez(f, **arrays)

np.savez = savez_then_sigterm
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_during_a_checkpoint_save_exits_130_with_the_checkpoint_complete(tiny_dir, tmp_path):
    checkpoints = tmp_path / "ckpt"
    checkpoints.mkdir()
    (checkpoints / ".checkpoint.npz.abcdefgh.tmp").write_bytes(b"left by an earlier run killed with SIGKILL")
    args = ["train", "--hidden", "8:tanh", "--epochs", "5", "--checkpoint-dir", str(checkpoints), "-q", "-o", "m.npz"]
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_DURING_FIRST_SAVE, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "NNSCRATCH_DATA": str(tiny_dir)},
        timeout=120,
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == (
        f"interrupted; the checkpoint of epoch 1 is in {checkpoints}: continue with "
        f"'nnscratch train --resume {checkpoints}'"
    )
    assert [p.name for p in checkpoints.iterdir()] == ["checkpoint.npz"]  # the stale temporary swept too
    assert not (tmp_path / "m.npz").exists()
    data = load_dataset(tiny_dir)
    assert Trainer.from_checkpoint(checkpoints, data.X_train, data.y_train).state.epoch == 1


# -- option validation: each bad value is refused in one line that names the option or the file -------------


def write_config(path, text: str | bytes) -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", "-1"], "argument --seed: expected a non-negative integer, got '-1'"),
        (["--epochs", "1e23"], "argument --epochs: expected a positive integer up to 1,000,000, got '1e23'"),
        (["--epochs", "1" + "0" * 23], "argument --epochs: expected a positive integer up to 1,000,000, got '1"),
        (["--epochs", "1000001"], "argument --epochs: expected a positive integer up to 1,000,000, got '1000001'"),
        (["--data-dir", "FILE"], "argument --data-dir: FILE is a file, not a directory; give a directory"),
        (["--checkpoint-dir", "FILE"], "argument --checkpoint-dir: FILE is a file, not a directory; give a directory"),
    ],
)
@pytest.mark.timeout(60)
def test_bad_option_values_are_refused_by_the_parser_naming_the_option(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("not a directory")
    (tmp_path / "empty").mkdir()  # were a bad value let through, the run would stop here, not train for ages
    with pytest.raises(SystemExit) as info:
        main(["train", "--data-dir", "empty", *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith(f"nnscratch train: error: {message}") and "Traceback" not in err
    assert not list(tmp_path.glob("*.npz"))


@pytest.mark.parametrize(
    "args, config, message",
    [
        (["--momentum", "0.5"], None, "--momentum applies only to --optimizer momentum or nesterov, and adam would"),
        (["--optimizer", "sgd", "--momentum", "0.95"], None, "--momentum applies only to --optimizer momentum or"),
        (["--optimizer", "adamw", "--momentum", "0.9"], None, "--momentum applies only to --optimizer momentum or"),
        ([], '{"optimizer": "adam", "momentum": 0.5}', "c.json: momentum applies only to --optimizer momentum or"),
        (["--optimizer", "sgd"], '{"momentum": 0.5}', "c.json: momentum applies only to --optimizer momentum or"),
        (["--hidden", "8:relu"], '{"spec": "784-bogus-10:softmax"}', "c.json: spec: unknown layer 'bogus'"),
        (["--spec", "16-3:softmax"], '{"hidden": "8:swish"}', "c.json: hidden: unknown activation 'swish'"),
        (["--epochs", "2"], '{"epochs": 100000000000000000000000}', "c.json: epochs: expected a positive integer up"),
        (["--seed", "1"], '{"seed": -1}', "c.json: seed: expected a non-negative integer, got '-1'"),
        ([], b'{"lr": "0.001", "note": "caf\xe9"}', "--config c.json is not UTF-8 text (byte 28 is 0xe9)"),
        (["--config", "missing.json"], None, "cannot read --config missing.json: No such file or directory"),
        ([], "[" * 100_000 + "]" * 100_000, "c.json nests its JSON too deeply to be a config; fix the file"),
        ([], '{"' + "x" * 100_000 + '": 1}', "c.json: unknown option 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…'; a"),
        ([], '{"optimizer": "' + "x" * 100_000 + '"}', "c.json: optimizer: expected one of sgd, momentum"),
        ([], '{"lr": [' + "1," * 50_000 + "1]}", "c.json: lr must be a number or a string, got '[1, 1, 1, 1, 1, 1, 1"),
    ],
    ids=lambda value: value[:40] if isinstance(value, str) else None,
)
@pytest.mark.timeout(60)
def test_contradictory_or_invalid_options_are_one_line_naming_the_option_or_file(
    args, config, message, tiny_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    extra = ["--config", "c.json"] if config is not None else []
    if config is not None:
        write_config(tmp_path / "c.json", config)
    code = main(["train", "--data-dir", str(tiny_dir), "-q", *args, *extra])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith(f"nnscratch train: error: {message}") and "\n" not in err
    assert len(err) < 400  # a huge key or value is quoted to 40 characters, not echoed whole
    assert not list(tmp_path.glob("*.npz"))


def test_momentum_from_a_default_or_with_a_momentum_optimiser_is_accepted(tmp_path):
    from nnscratch.commands.train import apply_config, make_recipe

    def config(*args):
        parsed = build_parser().parse_args(["train", *args])
        apply_config(parsed)
        return make_recipe(parsed).config

    assert config().optimizer == "adam" and config().momentum == 0.9  # the default μ, unused, is no error
    assert config("--optimizer", "nesterov", "--momentum", "0.5").momentum == 0.5
    assert config("--preset", "seed", "--optimizer", "momentum", "--momentum", "0.7").momentum == 0.7
    best = write_config(tmp_path / "best.json", '{"optimizer": "nesterov", "momentum": 0.8, "lr": 0.01}')
    assert config("--config", best).momentum == 0.8
    # the command line's optimiser overrides the config's, and with it the config's μ
    assert config("--config", best, "--optimizer", "adam").optimizer == "adam"
    assert config("--epochs", "1000000").epochs == 1_000_000


@pytest.mark.parametrize("plots", [False, True])
def test_ctrl_c_arriving_once_the_model_is_saved_says_it_was_saved(tiny_dir, tmp_path, monkeypatch, capsys, plots):
    # A Ctrl-C during the final save is held until the file is in place (nnscratch.io.atomic_write),
    # then delivered: the message must not say that nothing was saved.
    original = Network.save

    def save_then_interrupt(self, path):
        written = original(self, path)
        os.kill(os.getpid(), signal.SIGINT)  # as if Ctrl-C came at the last moment of the save
        return written

    monkeypatch.setattr(Network, "save", save_then_interrupt)
    output = tmp_path / "m.npz"
    args = ["train", "--data-dir", str(tiny_dir), "--hidden", "8:tanh", "--epochs", "1", "--output", str(output)]
    assert main(args + (["--plots", str(tmp_path / "plots")] if plots else [])) == 130
    err = capsys.readouterr().err.strip()
    expected = f"interrupted; the trained model was saved to {output}"
    assert err.splitlines()[-1] == expected + (", but not every plot was written" if plots else "")
    assert "nothing was saved" not in err and "Traceback" not in err
    assert Network.load(output).spec == "16-8:tanh-3:softmax"


def test_a_batch_too_large_for_memory_is_refused_before_training(tiny_dir, tmp_path, monkeypatch, capsys):
    import nnscratch.layers.base

    monkeypatch.setattr(nnscratch.layers.base, "available_memory", lambda: 30_000)  # 30 kB of memory
    args = ["train", "--data-dir", str(tiny_dir), "--hidden", "8:tanh", "--output", str(tmp_path / "m.npz")]
    assert main([*args, "--batch-size", "full"]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("nnscratch train: error: training on batches of 180 needs about 78.2 kB")
    assert line.endswith("choose a smaller --batch-size or a smaller network")
    assert not (tmp_path / "m.npz").exists()
    assert main([*args, "--batch-size", "16", "--epochs", "1"]) == 0


@pytest.mark.parametrize(
    ("reader", "accepted", "refused"),
    [
        ("positive_int", ["1", "7"], ["0", "-1", "1.5"]),
        ("non_negative_int", ["0", "7"], ["-1", "x"]),
        ("epoch_count", ["1", "1000000"], ["0", "1000001"]),
        ("port_number", ["1", "65535"], ["0", "65536"]),
        ("thread_count", ["1", "256"], ["0", "257", "100000"]),
        ("positive_float", ["1e-300", "3"], ["0", "-1", "inf", "nan"]),
        ("non_negative_float", ["0", "2.5"], ["-1e-9", "inf", "nan"]),
        ("probability", ["0", "0.999"], ["1", "-0.1", "nan"]),
    ],
)
def test_each_option_type_accepts_its_edges_and_refuses_what_is_past_them(reader, accepted, refused):
    import argparse

    from nnscratch.commands import common

    read = getattr(common, reader)
    for text in accepted:
        assert read(text) == type(read(text))(text)
    for text in refused:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            read(text)
    jobs = common.parallel_jobs("runs")
    assert (jobs("-1"), jobs("1"), jobs("4")) == (-1, 1, 4)
    for text in ("0", "-2"):
        with pytest.raises(argparse.ArgumentTypeError, match="a positive number of parallel runs or -1"):
            jobs(text)


def test_train_says_it_is_loading_the_data_unless_quiet(tiny_dir, tmp_path, capsys):
    args = ["train", "--data-dir", str(tiny_dir), "--epochs", "1", "-o", str(tmp_path / "m.npz")]
    assert main(args) == 0
    assert capsys.readouterr().err.startswith("loading data...")
    assert main([*args, "--quiet"]) == 0
    assert "loading data" not in capsys.readouterr().err


def test_a_command_leaves_the_sigterm_handler_as_it_found_it(tiny_dir, tmp_path):
    import signal

    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        args = ["train", "--data-dir", str(tiny_dir), "--epochs", "1", "-q", "-o", str(tmp_path / "m.npz")]
        assert main(args) == 0
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_train_reports_each_epoch_on_stderr_and_the_result_on_stdout(tiny_dir, tmp_path, capsys):
    assert main(["train", "--data-dir", str(tiny_dir), "--epochs", "2", "-o", str(tmp_path / "m.npz")]) == 0
    captured = capsys.readouterr()
    assert re.search(r"epoch +1/2 +loss", captured.err) and re.search(r"epoch +2/2 +loss", captured.err)
    assert "epoch " not in captured.out and "test accuracy" in captured.out and "saved" in captured.out
