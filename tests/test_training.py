"""The training loop: it learns, it is reproducible, it stops early, and it refuses to diverge silently."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnscratch.errors import DivergenceError, ModelFileError, SpecError
from nnscratch.network import Network
from nnscratch.training import Callback, History, TrainConfig, Trainer, evaluate, resume, train


def fresh(seed=0, dtype="float32"):
    return Network.from_spec("12-16:relu-4:softmax", seed=seed, dtype=dtype)


def test_learns_a_separable_problem(tiny_data):
    X, y = tiny_data
    net = fresh()
    history = train(net, X, y, TrainConfig(epochs=15, batch_size=32, learning_rate=1e-2, validation_size=80))
    assert len(history) == 15
    assert history["val_accuracy"][-1] > 0.95
    assert history["train_loss"][-1] < history["train_loss"][0] / 3
    assert all(r.seconds > 0 for r in history.epochs)


def test_same_seed_gives_same_weights(tiny_data):
    X, y = tiny_data
    config = TrainConfig(epochs=3, batch_size=16, seed=5, validation_size=50)
    a, b, c = fresh(), fresh(), fresh()
    train(a, X, y, config)
    train(b, X, y, config)
    train(c, X, y, TrainConfig(epochs=3, batch_size=16, seed=6, validation_size=50))
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "wsd"])
def test_every_optimizer_and_schedule_reduces_the_loss(tiny_data, optimizer, schedule):
    X, y = tiny_data
    net = fresh()
    before = net.loss(X, y)
    lr = 1e-2 if optimizer == "adam" else 0.3
    train(net, X, y, TrainConfig(epochs=5, batch_size=32, optimizer=optimizer, learning_rate=lr, schedule=schedule))
    assert net.loss(X, y) < 0.7 * before


def test_full_batch_takes_one_step_per_epoch(tiny_data):
    X, y = tiny_data
    steps = []

    class Count(Callback):
        def on_batch_end(self, epoch, batch, loss):
            steps.append((epoch, batch))

    train(fresh(), X, y, TrainConfig(epochs=4, batch_size=None, optimizer="sgd", learning_rate=0.5), callback=Count())
    assert steps == [(0, 0), (1, 0), (2, 0), (3, 0)]


def test_early_stopping_restores_the_best_weights(tiny_data):
    X, y = tiny_data
    snapshots = {}

    class Keep(Callback):
        def on_epoch_end(self, net, record):
            snapshots[record.epoch] = net.params.copy()

    net = fresh()
    # A learning rate this large makes the validation loss bounce, so patience runs out.
    config = TrainConfig(
        epochs=60, batch_size=16, optimizer="sgd", learning_rate=3.0, early_stopping=2, validation_size=100
    )
    history = train(net, X, y, config, callback=Keep())
    assert history.stopped_early and len(history) < 60
    best = int(np.nanargmin(history["val_loss"])) + 1
    assert history.best_epoch == best
    np.testing.assert_array_equal(net.params, snapshots[best])


def test_explicit_validation_set_and_none(tiny_data):
    X, y = tiny_data
    h = train(fresh(), X[:300], y[:300], TrainConfig(epochs=1), validation=(X[300:], y[300:]))
    assert not math.isnan(h["val_accuracy"][0])
    h = train(fresh(), X, y, TrainConfig(epochs=1, validation_size=0))
    assert math.isnan(h["val_loss"][0])


def test_divergence_names_epoch_and_batch_and_suggests_a_smaller_rate(tiny_data):
    X, y = tiny_data
    with pytest.raises(DivergenceError, match=r"epoch 1, batch \d+.*smaller than 1e\+20") as info:
        train(fresh(), X, y, TrainConfig(epochs=3, batch_size=32, optimizer="sgd", learning_rate=1e20))
    assert info.value.epoch == 1


def test_bad_configs_are_refused_with_the_fix():
    with pytest.raises(SpecError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(SpecError, match="batch size"):
        TrainConfig(batch_size=0)
    with pytest.raises(SpecError, match="learning rate"):
        TrainConfig(learning_rate=float("nan"))
    with pytest.raises(SpecError, match="early stopping needs a validation set"):
        TrainConfig(early_stopping=3, validation_size=0)


def test_history_round_trips_through_a_dict(tiny_data):
    X, y = tiny_data
    history = train(fresh(), X, y, TrainConfig(epochs=2))
    again = History.from_dict(history.to_dict())
    assert again.epochs == history.epochs and len(again) == 2


def test_evaluate_reports_loss_and_accuracy(tiny_data):
    X, y = tiny_data
    net = fresh()
    loss, acc = evaluate(net, X, y)
    assert loss == pytest.approx(net.loss(X, y), rel=1e-5)
    assert acc == pytest.approx(np.mean(net.predict(X) == y))


class InterruptAt(Callback):
    """Raises KeyboardInterrupt at (epoch, batch), as Ctrl-C would."""

    def __init__(self, epoch, batch):
        self.at = (epoch, batch)

    def on_batch_end(self, epoch, batch, loss):
        if (epoch, batch) == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("optimizer", ["adam", "nesterov"])
def test_resume_matches_uninterrupted_run(tiny_data, tmp_path, optimizer):
    X, y = tiny_data
    config = TrainConfig(
        epochs=5, batch_size=32, optimizer=optimizer, learning_rate=0.01, schedule="cosine", early_stopping=3, seed=4
    )
    reference = fresh()
    reference_history = train(reference, X, y, config)

    net = fresh()
    with pytest.raises(KeyboardInterrupt):
        train(net, X, y, config, checkpoint_dir=tmp_path, callback=InterruptAt(epoch=3, batch=5))
    resumed, history = resume(tmp_path, X, y)
    np.testing.assert_array_equal(resumed.params, reference.params)
    assert [r.val_loss for r in history.epochs] == [r.val_loss for r in reference_history.epochs]
    assert len(history) == 5


def test_divergence_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    X, y = tiny_data

    class Poison(Callback):
        def on_batch_end(self, epoch, batch, loss):
            if epoch == 2 and batch == 3:
                net.params[0] = np.nan

    net = fresh()
    snapshots = []

    class Both(Poison):
        def on_epoch_end(self, net, record):
            snapshots.append(net.params.copy())

    with pytest.raises(DivergenceError, match="epoch 3, batch 5"):
        train(net, X, y, TrainConfig(epochs=5, batch_size=32), checkpoint_dir=tmp_path, callback=Both())
    trainer = Trainer.from_checkpoint(tmp_path, X, y)
    assert trainer.state.epoch == 2
    np.testing.assert_array_equal(trainer.net.params, snapshots[-1])


def test_resume_needs_a_checkpoint(tmp_path, tiny_data):
    with pytest.raises(ModelFileError, match="no checkpoint"):
        resume(tmp_path, *tiny_data)
    (tmp_path / "checkpoint.npz").write_bytes(b"junk")
    with pytest.raises(ModelFileError):
        resume(tmp_path, *tiny_data)


def test_dropout_trains_reproducibly_and_leaves_prediction_alone(tiny_data):
    X, y = tiny_data
    config = TrainConfig(epochs=4, batch_size=32, learning_rate=1e-2, dropout=0.3, validation_size=80)
    a, b = fresh(), fresh()
    history = train(a, X, y, config)
    train(b, X, y, config)
    np.testing.assert_array_equal(a.params, b.params)
    assert history["val_accuracy"][-1] > 0.9
    # prediction is the whole network, no unit dropped and none scaled by 1/(1 - p): softmax(relu(X W0 + b0) W1 + b1)
    Z = np.maximum(X @ a.layers[0].W + a.layers[0].b, 0.0) @ a.layers[1].W + a.layers[1].b
    Z /= a.calibration.temperature  # fitted on the validation split when training ended
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(a.predict_proba(X), P / P.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)
    with pytest.raises(SpecError, match="dropout"):
        TrainConfig(dropout=1.0)


def test_inverted_dropout_keeps_the_expected_activation(rng):
    net = Network.from_spec("12-400:sigmoid-3:softmax", seed=0, dtype="float64")
    X = rng.random((50, 12))
    # The output layer sees (mask ⊙ A)/(1 - p); averaged over many units its input keeps its scale.
    captured = {}
    original = net.layers[1].forward

    def spy(A, **kwargs):
        captured["A"] = A.copy()
        return original(A, **kwargs)

    net.layers[1].forward = spy
    net.loss_and_flat_grad(X, rng.integers(0, 3, 50), np.empty_like(net.params), dropout=0.5, rng=rng)
    undropped = net.layers[0].forward(X)[0]
    dropped = captured["A"]
    assert np.mean(dropped == 0) == pytest.approx(0.5, abs=0.02)
    assert dropped.mean() == pytest.approx(undropped.mean(), rel=0.03)
