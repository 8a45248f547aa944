"""Explanations (gradient, gradient × input, SmoothGrad, integrated gradients) and adversarial examples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnscratch.attack import attack, fgsm, pgd
from nnscratch.cli import main
from nnscratch.errors import SpecError
from nnscratch.explain import explain
from nnscratch.network import Network

CONV = "1x6x6-conv3k3-relu-maxpool2-flatten-4"


@pytest.fixture
def net():
    return Network.from_spec(CONV, seed=0, dtype="float64")


@pytest.fixture
def X(rng):
    return rng.random((5, 36))


def logit_gradient(net, X, targets):
    return net.input_gradient(X, targets, of="logit")


def test_gradient_and_gradient_times_input_are_the_logits_input_gradient(net, X):
    targets = net.predict(X)
    np.testing.assert_allclose(explain(net, X, "gradient"), logit_gradient(net, X, targets), rtol=1e-12)
    np.testing.assert_allclose(explain(net, X, "gradxinput"), X * logit_gradient(net, X, targets), rtol=1e-12)
    chosen = np.array([3, 2, 1, 0, 3])
    np.testing.assert_allclose(explain(net, X, "gradient", target=chosen), logit_gradient(net, X, chosen))
    np.testing.assert_allclose(explain(net, X, "gradient", target=2), logit_gradient(net, X, np.full(5, 2)))
    assert explain(net, X.reshape(5, 1, 6, 6), "gradient").shape == (5, 1, 6, 6)  # the layout of X
    assert explain(net, X[0], "gradient").shape == (36,)


def test_smoothgrad_is_the_mean_gradient_over_noisy_copies(net, X):
    got = explain(net, X[:2], "smoothgrad", samples=4, noise=0.1, seed=3)
    noise = np.random.default_rng(3).normal(0.0, 0.1, (2, 4, 36))
    targets = net.predict(X[:2])
    expected = np.mean([logit_gradient(net, X[:2] + noise[:, s], targets) for s in range(4)], axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_array_equal(got, explain(net, X[:2], "smoothgrad", samples=4, noise=0.1, seed=3))


@pytest.mark.parametrize("steps", [1, 8])
def test_integrated_gradients_are_the_midpoint_rule_along_the_path(net, X, steps):
    targets = net.predict(X)
    got = explain(net, X, "integrated", steps=steps)
    points = [(s + 0.5) / steps * X for s in range(steps)]
    expected = X * np.mean([logit_gradient(net, p, targets) for p in points], axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)


def test_integrated_gradients_add_up_to_the_logits_change_and_report_the_gap(net, X):
    values, delta = explain(net, X, "integrated", steps=256, return_delta=True)
    targets = net.predict(X)
    rows = np.arange(5)
    change = net.all_logits(X)[rows, targets] - net.all_logits(np.zeros_like(X))[rows, targets]
    np.testing.assert_allclose(delta, values.sum(axis=1) - change, rtol=1e-9, atol=1e-12)
    assert np.all(np.abs(delta) <= 0.01 * np.abs(change) + 1e-9)  # completeness, to the quadrature's error
    base = np.full(36, 0.5)  # another baseline: the change is measured from it
    _, gap = explain(net, X, "integrated", baseline=base, steps=256, return_delta=True)
    assert np.all(np.abs(gap) < 0.05)


@pytest.mark.mnist
def test_the_shipped_readers_integrated_gradients_keep_completeness_within_one_percent_at_the_default_steps(mnist):
    from nnscratch.reader import load_reader

    reader = load_reader()
    X = mnist.X_test[:20]
    values, delta = explain(reader, X, "integrated", return_delta=True)
    targets, rows = reader.predict(X), np.arange(20)
    change = reader.all_logits(X)[rows, targets] - reader.all_logits(np.zeros_like(X))[rows, targets]
    assert np.all(np.abs(delta) <= 0.01 * np.abs(change)), (delta, change)
    np.testing.assert_allclose(values.sum(axis=1), change + delta, rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"method": "lime"}, SpecError, "unknown explanation method 'lime'"),
        ({"method": "integrated", "steps": 0}, ValueError, "steps must be a whole number"),
        ({"method": "smoothgrad", "samples": 1.5}, ValueError, "samples must be a whole number"),
        ({"method": "smoothgrad", "noise": -0.1}, ValueError, r"noise must be a standard deviation in \[0, 1\]"),
        ({"method": "gradient", "target": 7}, ValueError, "label"),
        ({"method": "gradient", "return_delta": True}, ValueError, "only integrated gradients have a completeness gap"),
    ],
)
def test_explain_refuses_what_it_cannot_do(net, X, kwargs, error, message):
    with pytest.raises(error, match=message):
        explain(net, X, **kwargs)
    with pytest.raises(ValueError, match="X must have shape"):
        explain(net, np.zeros((2, 35)))


# -- adversarial examples ----------------------------------------------------------------------------


def test_fgsm_moves_every_pixel_by_epsilon_in_the_direction_of_the_loss_gradient(net, X):
    y = net.predict(X)
    attacked = fgsm(net, X, y, 0.1)
    expected = np.clip(X + 0.1 * np.sign(net.input_gradient(X, y)), 0, 1)
    np.testing.assert_allclose(attacked, expected)
    assert np.all(np.abs(attacked - X) <= 0.1 + 1e-12) and attacked.min() >= 0 and attacked.max() <= 1
    assert loss(net, attacked, y) > loss(net, X, y)  # the loss went up
    np.testing.assert_array_equal(fgsm(net, X, y, 0.0), X)


def loss(net, X, y):
    P = net.predict_proba(X)
    return -np.log(P[np.arange(len(y)), y]).sum()


def test_pgd_stays_in_the_ball_and_pixels_and_beats_one_step(net, X):
    y = net.predict(X)
    attacked = pgd(net, X, y, 0.2, steps=10)
    assert np.all(np.abs(attacked - X) <= 0.2 + 1e-12) and attacked.min() >= 0 and attacked.max() <= 1
    assert loss(net, attacked, y) >= loss(net, fgsm(net, X, y, 0.2), y) * 0.99
    one = pgd(net, X, y, 0.2, steps=1, step_size=0.2)  # one step of size ε is FGSM
    np.testing.assert_allclose(one, fgsm(net, X, y, 0.2))
    started = pgd(net, X, y, 0.2, steps=2, random_start=True, rng=np.random.default_rng(0))
    assert np.all(np.abs(started - X) <= 0.2 + 1e-12)
    np.testing.assert_array_equal(
        started, pgd(net, X, y, 0.2, steps=2, random_start=True, rng=np.random.default_rng(0))
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda net, X, y: fgsm(net, X, y, 1.5), r"epsilon must be a number in \[0, 1\]"),
        (lambda net, X, y: fgsm(net, X, y, -0.1), r"epsilon must be a number in \[0, 1\]"),
        (lambda net, X, y: pgd(net, X, y, 0.1, steps=0), "steps must be a whole number from 1 to 1,000"),
        (lambda net, X, y: attack(net, X, y, 0.1, "deepfool"), "unknown attack 'deepfool'"),
    ],
)
def test_attacks_refuse_what_they_cannot_do(net, X, call, message):
    with pytest.raises((ValueError, SpecError), match=message):
        call(net, X, net.predict(X))


# -- the command line ------------------------------------------------------------------------------------


def test_explain_writes_the_digit_beside_its_map_and_prints_the_label(tmp_path, capsys):
    from tests.test_images import digit_image

    image = tmp_path / "seven.png"
    digit_image().save(image)
    out = tmp_path / "maps"
    assert main(["explain", str(image), "--output", str(out), "--steps", "16"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{image}: ") and "(integrated, completeness gap" in line
    assert (out / "seven-integrated.png").read_bytes().startswith(b"\x89PNG")
    assert main(["explain", str(image), "--method", "gradient", "--output", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert result["method"] == "gradient" and len(result["attribution"]) == 784 and "completeness_gap" not in result
    assert result["verdict"] in ("digit", "not sure", "not a digit")
    assert main(["explain", str(tmp_path / "missing.png"), str(image), "--output", str(out)]) == 1
    assert "missing.png" in capsys.readouterr().err


def test_attack_reports_accuracy_at_each_epsilon_beside_the_clean_one(tmp_path, rng, capsys):
    from tests.test_data import write_tiny_mnist

    write_tiny_mnist(tmp_path / "d", rng, n_train=20, n_test=30, side=28, classes=10)
    model = Network.from_spec("784-8:relu-10", seed=0).save(tmp_path / "m.npz")
    args = ["attack", str(model), "--data-dir", str(tmp_path / "d"), "--epsilon", "0,0.1", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    (only,) = result["models"]
    assert result["images"] == 30 and [row["epsilon"] for row in only["attacked"]] == [0.0, 0.1]
    assert only["attacked"][0]["accuracy"] == only["clean_accuracy"]  # ε = 0 changes nothing
    assert only["attacked"][1]["accuracy"] <= only["clean_accuracy"]
    plots = tmp_path / "p"
    assert main([*args[:-1], "--method", "pgd", "--steps", "3", "--images", "10", "--plots", str(plots)]) == 0
    assert "test accuracy under PGD (3 steps), 10 test images" in capsys.readouterr().out
    for name in ("attacked.png", "robustness.png"):
        assert (plots / name).read_bytes().startswith(b"\x89PNG")
    for bad in ("1.5", "x", "0.1,,0.2"):
        with pytest.raises(SystemExit):
            main(["attack", str(model), "--epsilon", bad])
    assert "expected numbers in [0, 1] separated by commas" in capsys.readouterr().err


def test_attack_compares_several_models_side_by_side(tmp_path, rng, capsys):
    from nnscratch.training import TrainConfig, train
    from tests.test_data import write_tiny_mnist

    write_tiny_mnist(tmp_path / "d", rng, n_train=60, n_test=30, side=28, classes=10)
    data = __import__("nnscratch").load_dataset(tmp_path / "d")
    paths = []
    for name, adversarial in (("plain", "none"), ("robust", "fgsm")):
        net = Network.from_spec("784-8:relu-10", seed=0)
        config = TrainConfig(
            epochs=2,
            batch_size=20,
            validation_size=0,
            adversarial=adversarial,
            epsilon=0.1 if adversarial != "none" else 0.0,
        )
        train(net, data.X_train, data.y_train, config)
        paths.append(str(net.save(tmp_path / f"{name}.npz")))
    args = ["attack", *paths, "--data-dir", str(tmp_path / "d"), "--epsilon", "0.05,0.1"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in result["models"]] == paths
    for entry, path in zip(result["models"], paths, strict=True):
        net = Network.load(path)
        attacked = attack(net, data.X_test, data.y_test, 0.1, "fgsm")
        assert entry["attacked"][1]["accuracy"] == pytest.approx(np.mean(net.predict(attacked) == data.y_test))
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "plain.npz" in table and "robust.npz" in table and "ε = 0.05" in table and "ε = 0.1" in table


# -- adversarial training ----------------------------------------------------------------------------------


def test_adversarial_training_attacks_the_second_half_of_each_batch_within_epsilon(rng):
    from nnscratch.training import TrainConfig, Trainer

    X, y = rng.random((64, 36)), rng.integers(0, 4, 64)
    net = Network.from_spec(CONV, seed=0)
    trainer = Trainer(
        net, X, y, TrainConfig(epochs=1, batch_size=16, validation_size=0, adversarial="fgsm", epsilon=0.2)
    )
    batch, labels = X[:16].astype(np.float32), y[:16]
    images = net.check_input(batch)  # channels-last, as the trainer holds them
    attacked = trainer._attacked(images, labels)
    np.testing.assert_array_equal(attacked[:8], images[:8])  # the first half stays clean
    moved = np.abs(attacked[8:] - images[8:])
    assert moved.max() <= 0.2 + 1e-6 and moved.max() > 0.1 and attacked.min() >= 0 and attacked.max() <= 1
    labels_with_none = labels.copy()
    labels_with_none[8:] = -1  # made-up non-digits are not attacked
    np.testing.assert_array_equal(trainer._attacked(images, labels_with_none), images)


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_adversarial_training_is_reproducible_and_resumes_bit_for_bit(rng, tmp_path, method):
    from nnscratch.training import TrainConfig, resume, train
    from tests.conftest import Interrupted, stop_after_epoch

    X, y = rng.random((96, 36)), rng.integers(0, 4, 96)
    config = TrainConfig(epochs=2, batch_size=32, validation_size=0, adversarial=method, epsilon=0.1)
    a, b = Network.from_spec(CONV, seed=0), Network.from_spec(CONV, seed=0)
    train(a, X, y, config)
    train(b, X, y, config)
    np.testing.assert_array_equal(a.params, b.params)
    clean = Network.from_spec(CONV, seed=0)
    train(clean, X, y, TrainConfig(epochs=2, batch_size=32, validation_size=0))
    assert not np.array_equal(clean.params, a.params)  # the attacked halves changed what was learnt
    stopped = Network.from_spec(CONV, seed=0)
    with pytest.raises(Interrupted):
        train(stopped, X, y, config, checkpoint_dir=tmp_path, callback=stop_after_epoch(1))
    resumed, _ = resume(tmp_path, X, y)
    np.testing.assert_array_equal(resumed.params, a.params)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"adversarial": "fgsm"}, "needs both a method"),
        ({"epsilon": 0.1}, "needs both a method"),
        ({"adversarial": "fgsm", "epsilon": 1.5}, r"epsilon must be a number in \[0, 1\]"),
        ({"adversarial": "cw", "epsilon": 0.1}, "unknown adversarial training 'cw'"),
    ],
)
def test_adversarial_training_settings_are_checked(settings, message):
    from nnscratch.training import TrainConfig

    with pytest.raises(SpecError, match=message):
        TrainConfig(**settings)
