"""What the training loop does batch by batch: which rows it trains on, in what order, at what rate,
and what a resumed run keeps of early stopping.

A spy on the network records every batch the loop trains on; a recording optimiser records every rate
the schedule gave it.  Rows are told apart by their values (random floats: no two rows are equal).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict

import numpy as np
import pytest

from nnscratch.errors import DivergenceError, ModelFileError, SpecError
from nnscratch.io import load_npz, save_npz
from nnscratch.network import Network
from nnscratch.optimizers import SGD
from nnscratch.schedules import Schedule
from nnscratch.training import Callback, History, TrainConfig, Trainer, TrainState, evaluate, image_side, resume, train
from tests.conftest import Interrupted, stop_after_epoch


def fresh(spec="12-16:relu-4:softmax", seed=0):
    return Network.from_spec(spec, seed=seed, dtype="float64")


class RecordingSGD(SGD):
    """Plain SGD that keeps every learning rate it was asked to step with."""

    def __init__(self):
        self.rates = []

    def step(self, params, grad, lr):
        self.rates.append(lr)
        super().step(params, grad, lr)


def trained_rows(trainer, X):
    """Run ``trainer``; return the row indices of X in every batch, one list of arrays per epoch."""
    index = {row.tobytes(): i for i, row in enumerate(X)}
    net, epochs = trainer.net, []
    real = net.loss_and_flat_grad

    def spy(xb, yb, grad, **kwargs):
        epochs[-1].append(np.array([index[row.tobytes()] for row in xb]))
        np.testing.assert_array_equal(yb, trainer.y[epochs[-1][-1]])  # each row keeps its own label
        return real(xb, yb, grad, **kwargs)

    class NewEpoch(Callback):
        def on_train_begin(self, n_epochs, n_batches):
            epochs.append([])

        def on_epoch_end(self, net, record):
            epochs.append([])

    net.loss_and_flat_grad = spy
    trainer.run(NewEpoch())
    return epochs[:-1]


def val_rows(trainer, X):
    index = {row.tobytes(): i for i, row in enumerate(X)}
    return np.array([index[row.tobytes()] for row in trainer.X_val])


def test_the_schedule_sees_the_fraction_of_the_epoch_each_batch_reached(tiny_data):
    X, y = tiny_data
    # 320 training rows in batches of 80: four steps per epoch, at epochs 0, 0.25, 0.5, 0.75, 1, 1.25, ...
    config = TrainConfig(
        epochs=3, batch_size=80, optimizer="sgd", learning_rate=0.5, schedule="cosine", validation_size=80
    )
    optimizer = RecordingSGD()
    history = Trainer(fresh(), X, y, config, state=TrainState(optimizer=optimizer)).run(Callback())
    cosine = Schedule("cosine", epochs=3)
    expected = [cosine.rate(0.5, epoch + batch / 4) for epoch in range(3) for batch in range(4)]
    assert optimizer.rates == pytest.approx(expected, rel=1e-12)
    assert len(set(optimizer.rates)) == 12  # the rate changes within an epoch, not only between epochs
    assert history["learning_rate"] == pytest.approx(expected[3::4], rel=1e-12)  # each epoch's last rate


def test_a_step_schedule_changes_the_rate_in_the_middle_of_an_epoch(tiny_data):
    X, y = tiny_data
    config = TrainConfig(
        epochs=2, batch_size=80, optimizer="sgd", learning_rate=0.4, schedule="step", step_every=0.5, validation_size=80
    )
    optimizer = RecordingSGD()
    Trainer(fresh(), X, y, config, state=TrainState(optimizer=optimizer)).run(Callback())
    # every half epoch the rate is multiplied by the default gamma 0.1
    assert optimizer.rates == pytest.approx([0.4, 0.4, 0.04, 0.04, 0.004, 0.004, 0.0004, 0.0004], rel=1e-12)


@pytest.mark.parametrize("batch_size", [32, 7, None], ids=["32", "7-with-a-short-last-batch", "full"])
def test_every_training_row_is_trained_on_once_per_epoch_and_no_validation_row_ever(tiny_data, batch_size):
    X, y = tiny_data
    config = TrainConfig(epochs=3, batch_size=batch_size, learning_rate=1e-2, validation_size=60, seed=3)
    trainer = Trainer(fresh(), X, y, config)
    epochs = trained_rows(trainer, X)
    held_out = val_rows(trainer, X)
    assert held_out.size == 60 and np.unique(held_out).size == 60
    assert len(epochs) == 3
    for batches in epochs:
        rows = np.concatenate(batches)
        assert rows.size == 340  # no row twice, none left out
        assert set(rows) == set(range(400)) - set(held_out)  # disjoint from validation, together all 400
        assert [b.size for b in batches[:-1]] == [batches[0].size] * (len(batches) - 1)
    if batch_size == 7:
        assert [b.size for b in epochs[0]] == [7] * 48 + [4]  # 340 = 48·7 + 4


def test_the_validation_split_is_random_and_seeded(tiny_data):
    X, y = tiny_data
    config = TrainConfig(epochs=1, validation_size=50, seed=1)
    first = val_rows(Trainer(fresh(), X, y, config), X)
    again = val_rows(Trainer(fresh(), X, y, config), X)
    other = val_rows(Trainer(fresh(), X, y, TrainConfig(epochs=1, validation_size=50, seed=2)), X)
    np.testing.assert_array_equal(first, again)
    assert set(first) != set(other)
    assert set(first) != set(range(50)) and set(first) != set(range(350, 400))  # not just the first or last rows


def test_the_default_validation_size_is_a_tenth_up_to_5000(tiny_data):
    X, y = tiny_data
    assert Trainer(fresh(), X, y, TrainConfig(epochs=1)).X_val.shape == (40, 12)
    assert TrainConfig().validation_count(60_000) == 5000 and TrainConfig().validation_count(49_999) == 4999
    assert TrainConfig(validation_size=0).validation_count(400) == 0


def test_an_explicit_validation_set_leaves_every_row_for_training(tiny_data):
    X, y = tiny_data
    trainer = Trainer(fresh(), X[:300], y[:300], TrainConfig(epochs=2, batch_size=64), validation=(X[300:], y[300:]))
    for batches in trained_rows(trainer, X):
        assert sorted(np.concatenate(batches)) == list(range(300))
    np.testing.assert_array_equal(trainer.X_val, X[300:])


def test_each_epoch_takes_the_batches_in_a_fresh_random_order(tiny_data):
    X, y = tiny_data
    config = TrainConfig(epochs=3, batch_size=32, learning_rate=1e-2, validation_size=80)
    orders = [np.concatenate(batches) for batches in trained_rows(Trainer(fresh(), X, y, config), X)]
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    assert not np.array_equal(orders[0], np.sort(orders[0]))  # shuffled, not in the data's order
    assert [sorted(order) for order in orders[1:]] == [sorted(orders[0])] * 2  # the same rows each time


def test_shuffle_false_takes_the_batches_in_the_data_order_every_epoch(tiny_data):
    X, y = tiny_data
    config = TrainConfig(epochs=2, batch_size=32, learning_rate=1e-2, validation_size=80, shuffle=False)
    orders = [np.concatenate(batches) for batches in trained_rows(Trainer(fresh(), X, y, config), X)]
    np.testing.assert_array_equal(orders[0], np.sort(orders[0]))
    np.testing.assert_array_equal(orders[1], orders[0])


def test_the_record_of_an_epoch_is_its_mean_training_loss_and_accuracy(tiny_data):
    X, y = tiny_data
    losses, sizes = [], []
    net = fresh()
    real = net.loss_and_flat_grad

    def spy(xb, yb, grad, **kwargs):
        loss, Z = real(xb, yb, grad, **kwargs)
        losses.append(loss)
        sizes.append((yb.size, int(np.count_nonzero(Z.argmax(axis=1) == yb))))
        return loss, Z

    net.loss_and_flat_grad = spy
    history = train(net, X, y, TrainConfig(epochs=1, batch_size=48, learning_rate=1e-2, validation_size=40))
    counts = np.array(sizes)
    assert counts[:, 0].tolist() == [48] * 7 + [24]  # 360 rows: the short last batch weighs less
    assert history["train_loss"][0] == pytest.approx(np.dot(losses, counts[:, 0]) / 360, rel=1e-12)
    assert history["train_accuracy"][0] == pytest.approx(counts[:, 1].sum() / 360)


class InterruptAt(Callback):
    """Raises KeyboardInterrupt when the given epoch (from 0) begins its first batch, as Ctrl-C would."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_end(self, epoch, batch, loss):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_resume_after_the_best_epoch_still_restores_the_best_weights_and_statistics(tiny_data, tmp_path):
    X, y = tiny_data
    # A validation set with wrong labels: the better the network learns, the worse its validation loss,
    # so the best epoch is the first and early stopping must restore it, batch norm's statistics included.
    validation = (X[:100], (y[:100] + 1) % 4)
    config = TrainConfig(epochs=10, batch_size=32, learning_rate=1e-2, early_stopping=3, seed=2)
    snapshots = {}

    class Keep(Callback):
        def on_epoch_end(self, net, record):
            snapshots[record.epoch] = (net.params.copy(), net.state.copy())

    reference = fresh("12-16-bn-relu-4:softmax")
    reference_history = train(reference, X, y, config, validation=validation, callback=Keep())
    assert reference_history.best_epoch == 1 and reference_history.stopped_early and len(reference_history) == 4
    np.testing.assert_array_equal(reference.params, snapshots[1][0])  # the first epoch's weights, restored
    np.testing.assert_array_equal(reference.state, snapshots[1][1])  # and its running statistics
    assert not np.array_equal(snapshots[1][1], snapshots[4][1])

    net = fresh("12-16-bn-relu-4:softmax")
    with pytest.raises(KeyboardInterrupt):  # stopped in the third epoch: the best weights are two epochs old
        train(net, X, y, config, validation=validation, checkpoint_dir=tmp_path, callback=InterruptAt(2))
    resumed, history = resume(tmp_path, X, y, validation=validation)
    assert history.best_epoch == 1 and history.stopped_early and len(history) == 4
    np.testing.assert_array_equal(resumed.params, reference.params)
    np.testing.assert_array_equal(resumed.state, reference.state)
    assert history.to_dict() == reference_history.to_dict() | {"epochs": history.to_dict()["epochs"]}
    assert [r.val_loss for r in history.epochs] == [r.val_loss for r in reference_history.epochs]


def test_resume_of_a_finished_run_changes_nothing(tiny_data, tmp_path):
    X, y = tiny_data
    config = TrainConfig(epochs=2, batch_size=64, learning_rate=1e-2, early_stopping=5)
    net = fresh()
    history = train(net, X, y, config, checkpoint_dir=tmp_path)
    resumed, again = resume(tmp_path, X, y)
    np.testing.assert_array_equal(resumed.params, net.params)
    assert len(again) == 2 and again.to_dict()["epochs"] == history.to_dict()["epochs"]


def test_without_validation_every_row_is_trained_on(tiny_data):
    X, y = tiny_data
    trainer = Trainer(fresh(), X, y, TrainConfig(epochs=1, batch_size=50, validation_size=0))
    [batches] = trained_rows(trainer, X)
    assert sorted(np.concatenate(batches)) == list(range(400)) and trainer.X_val is None


def test_callbacks_hear_the_epochs_and_batches_in_order(tiny_data):
    X, y = tiny_data
    heard = []

    class Listen(Callback):
        def on_train_begin(self, n_epochs, n_batches):
            heard.append(("begin", n_epochs, n_batches))

        def on_batch_end(self, epoch, batch, loss):
            heard.append(("batch", epoch, batch))

        def on_epoch_end(self, net, record):
            heard.append(("epoch", record.epoch))

    # 340 training rows in batches of 100: three full batches and one of 40
    train(fresh(), X, y, TrainConfig(epochs=2, batch_size=100, validation_size=60), callback=Listen())
    batches = [[("batch", e, b) for b in range(4)] + [("epoch", e + 1)] for e in range(2)]
    assert heard == [("begin", 2, 4), *batches[0], *batches[1]]


def test_epoch_seconds_are_durations_within_the_run(tiny_data):
    X, y = tiny_data
    start = time.perf_counter()
    history = train(fresh(), X, y, TrainConfig(epochs=3, batch_size=64))
    elapsed = time.perf_counter() - start
    assert all(r.seconds > 0 for r in history.epochs) and history.seconds <= elapsed


def test_an_epoch_that_only_equals_the_best_is_no_improvement(tiny_data):
    X, y = tiny_data
    # a rate so small that float32 weights do not move: every epoch's validation loss is the same
    config = TrainConfig(epochs=6, batch_size=64, optimizer="sgd", learning_rate=1e-30, early_stopping=2)
    history = train(Network.from_spec("12-8:tanh-4", seed=0), X, y, config)
    assert len(set(history["val_loss"])) == 1
    assert history.best_epoch == 1 and history.stopped_early and len(history) == 3


@pytest.mark.parametrize(
    "losses, stop, best",
    [
        # patience 3: epoch 3 improves inside the first window, so the count starts again there and runs
        # out after epoch 6 (three epochs after 3), not after epoch 4 (three after 1) or 5 (a count not reset)
        ([1.0, 1.1, 0.9, 1.2, 1.3, 1.4, 0.1, 0.1], 6, 3),
        # two improvements, each the last epoch of a window about to run out
        ([1.0, 1.1, 1.2, 0.9, 1.0, 1.0, 0.8, 2.0, 2.0, 2.0, 0.1], 10, 7),
    ],
    ids=["improves-mid-window", "improves-at-the-last-moment-twice"],
)
def test_patience_starts_again_after_an_improvement_in_the_middle_of_a_window(
    tiny_data, monkeypatch, losses, stop, best
):
    X, y = tiny_data
    scripted = iter(losses)
    # the validation loss of each epoch, as scripted; the accuracy is not what early stopping reads
    monkeypatch.setattr("nnscratch.training._evaluate", lambda net, X_val, y_val: (next(scripted), 0.5))
    snapshots = {}

    class Keep(Callback):
        def on_epoch_end(self, net, record):
            snapshots[record.epoch] = (net.params.copy(), net.state.copy())

    net = fresh("12-16-bn-relu-4:softmax")
    config = TrainConfig(epochs=len(losses), batch_size=64, learning_rate=1e-2, early_stopping=3)
    history = train(net, X, y, config, callback=Keep())
    assert len(history) == stop and history.stopped_early
    assert history["val_loss"] == losses[:stop] and history.best_epoch == best
    np.testing.assert_array_equal(net.params, snapshots[best][0])  # the best epoch's weights, restored
    np.testing.assert_array_equal(net.state, snapshots[best][1])  # with its batch-norm statistics
    assert not np.array_equal(snapshots[best][0], snapshots[stop][0])  # the last epoch's differ


def test_weights_that_turn_non_finite_on_an_epochs_last_step_stop_training(tiny_data):
    X, y = tiny_data
    net = fresh()

    class PoisonLastStep(Callback):
        def on_batch_end(self, epoch, batch, loss):
            if batch == 3:  # the epoch's last step: its loss was still finite
                net.params[5] = np.inf

    with pytest.raises(DivergenceError, match="diverged in epoch 1: the weights are no longer finite") as info:
        train(net, X, y, TrainConfig(epochs=3, batch_size=80, validation_size=80), callback=PoisonLastStep())
    assert info.value.epoch == 1


# -- the config --------------------------------------------------------------------------------------


def test_the_default_config_is_the_documented_recipe():
    assert asdict(TrainConfig()) == {
        "epochs": 10,
        "batch_size": 128,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "momentum": 0.9,
        "schedule": "constant",
        "step_every": 10.0,
        "step_gamma": 0.1,
        "l2": 0.0,
        "l1": 0.0,
        "weight_decay": 0.0,
        "dropout": 0.0,
        "augment": "none",
        "augment_strength": 1.0,
        "validation_size": None,
        "early_stopping": None,
        "seed": 0,
        "shuffle": True,
        "not_digits": 0.0,
        "calibrate": True,
        "ema": 0.0,
        "adversarial": "none",
        "epsilon": 0.0,
    }


def test_the_smallest_valid_settings_are_accepted():
    config = TrainConfig(epochs=1, batch_size=1, early_stopping=1, validation_size=1, learning_rate=1e-12)
    assert (config.epochs, config.batch_size, config.early_stopping) == (1, 1, 1)
    assert TrainConfig(optimizer="adamw", weight_decay=0.01).weight_decay == 0.01


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"learning_rate": 0.0}, "learning rate must be a positive number"),
        ({"learning_rate": -1.0}, "learning rate must be a positive number"),
        ({"learning_rate": float("inf")}, "learning rate must be a positive number"),
        ({"l2": -0.1}, "l2 must be a number >= 0"),
        ({"l1": -0.1}, "l1 must be a number >= 0"),
        ({"l1": float("nan")}, "l1 must be a number >= 0"),
        ({"optimizer": "adamw", "weight_decay": float("inf")}, "weight_decay must be a number >= 0"),
        ({"weight_decay": 0.01}, "weight decay is AdamW's decoupled decay"),
        ({"augment": "swirl"}, "swirl"),
        ({"schedule": "step", "step_every": 0.0}, "every > 0"),
        ({"batch_size": 2.5}, "batch size must be a positive integer"),
        ({"early_stopping": 0}, "early-stopping patience must be >= 1"),
        ({"validation_size": -1}, "validation size must be >= 0"),
        ({"shuffle": 1}, "shuffle must be True or False"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(settings, message):
    with pytest.raises(SpecError, match=message):
        TrainConfig(**settings)


def test_history_from_an_older_dict_has_no_best_epoch_and_did_not_stop_early():
    history = History.from_dict({"epochs": []})
    assert history.best_epoch is None and history.stopped_early is False and len(history) == 0


# -- checkpoints -------------------------------------------------------------------------------------


def test_a_checkpoint_directory_is_created_with_its_parents_and_remembers_its_epoch(tiny_data, tmp_path):
    X, y = tiny_data
    directory = tmp_path / "runs" / "first"
    trainer = Trainer(fresh(), X, y, TrainConfig(epochs=2, batch_size=64), checkpoint_dir=directory)
    trainer.run(Callback())
    assert trainer.saved_epoch == 2
    header, _ = load_npz(directory / "checkpoint.npz")
    assert header["format"] == "nnscratch-checkpoint" and header["version"] == 2 and header["epoch"] == 2
    assert Trainer.from_checkpoint(directory, X, y).saved_epoch == 2


def test_a_version_1_checkpoint_still_resumes_and_another_format_is_refused(tiny_data, tmp_path):
    X, y = tiny_data
    net = fresh()
    train(net, X, y, TrainConfig(epochs=2, batch_size=64), checkpoint_dir=tmp_path)
    header, arrays = load_npz(tmp_path / "checkpoint.npz")
    arrays.pop("state")  # version 1 had no state buffer (an MLP has no state anyway)
    save_npz(tmp_path / "checkpoint.npz", arrays, {**header, "version": 1})
    np.testing.assert_array_equal(Trainer.from_checkpoint(tmp_path, X, y).net.params, net.params)
    for changed in ({"version": 3}, {"format": "nnscratch-model"}):
        save_npz(tmp_path / "checkpoint.npz", arrays, {**header, **changed})
        with pytest.raises(ModelFileError, match="not an nnscratch checkpoint this version can read"):
            Trainer.from_checkpoint(tmp_path, X, y)


def test_augmentation_reads_the_image_sides_of_the_input():
    assert image_side(Network.from_spec("1x4x6-flatten-3")) == (4, 6)
    assert image_side(Network.from_spec("784-3")) == (28, 28)
    for spec in ("3x4x4-flatten-3", "20-3", "2x4x4-flatten-3"):
        with pytest.raises(SpecError, match="augmentation transforms single-channel images"):
            image_side(Network.from_spec(spec))


def test_stale_checkpoint_temporaries_are_removed_when_a_run_starts_and_when_it_resumes(tiny_data, tmp_path):
    X, y = tiny_data
    config = TrainConfig(epochs=2, batch_size=64)
    stale, kept = ".checkpoint.npz.q7w_e2rt.tmp", ["notes.tmp", ".checkpoint.npz.keep.tmp"]
    for name in [stale, *kept]:
        (tmp_path / name).write_bytes(b"left by a run killed with SIGKILL in the middle of a save")
    Trainer(fresh(), X, y, config, checkpoint_dir=tmp_path)  # starting sweeps them, before any epoch
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    with pytest.raises(KeyboardInterrupt):
        train(fresh(), X, y, config, checkpoint_dir=tmp_path, callback=InterruptAt(1))
    (tmp_path / stale).write_bytes(b"left again")
    Trainer.from_checkpoint(tmp_path, X, y)  # and so does resuming
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["checkpoint.npz", *kept])


def test_sigterm_during_a_checkpoint_save_arrives_after_the_checkpoint_is_complete(tiny_data, tmp_path, monkeypatch):
    X, y = tiny_data
    savez = np.savez

    def savez_then_sigterm(f, **arrays):  # the signal lands in the middle of the first checkpoint's save
        os.kill(os.getpid(), signal.SIGTERM)
        monkeypatch.setattr(np, "savez", savez)
        savez(f, **arrays)

    def interrupt(signum, frame):  # as 'nnscratch train' handles SIGTERM
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_then_sigterm)
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        trainer = Trainer(fresh(), X, y, TrainConfig(epochs=3, batch_size=64), checkpoint_dir=tmp_path)
        with pytest.raises(KeyboardInterrupt):
            trainer.run(Callback())
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert trainer.saved_epoch == 1  # set before the deferred signal was delivered
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]  # no temporary file
    resumed = Trainer.from_checkpoint(tmp_path, X, y)
    assert resumed.state.epoch == 1
    np.testing.assert_array_equal(resumed.net.params, trainer.net.params)


# -- damaged and tampered checkpoints are refused, naming the field ------------------------------------


@pytest.fixture(scope="module")
def cli_checkpoint(tmp_path_factory):
    """A real checkpoint written by ``nnscratch train`` (Adam, 2 epochs) on tiny MNIST-shaped data, with
    the data's directory: (checkpoint bytes, data directory)."""
    from nnscratch.cli import main
    from tests.test_data import write_tiny_mnist

    root = tmp_path_factory.mktemp("checkpoint")
    write_tiny_mnist(root / "data", np.random.default_rng(0), n_train=120, n_test=30)
    args = ["train", "--data-dir", str(root / "data"), "--hidden", "8:relu", "--epochs", "3", "--batch-size", "32"]
    assert main([*args, "--checkpoint-dir", str(root / "run"), "-o", str(root / "model.npz"), "-q"]) == 0
    return (root / "run" / "checkpoint.npz").read_bytes(), root / "data"


@pytest.fixture
def checkpoint(cli_checkpoint, tmp_path):
    """A fresh copy of the checkpoint in ``tmp_path/run``, to damage: (run directory, X, y, data directory)."""
    from nnscratch.data import load_dataset

    content, data_dir = cli_checkpoint
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.npz").write_bytes(content)
    data = load_dataset(data_dir)
    return tmp_path / "run", data.X_train, data.y_train, data_dir


def tamper(directory, header=None, arrays=None):
    path = directory / "checkpoint.npz"
    saved_header, saved_arrays = load_npz(path)
    if header:
        header(saved_header)
    if arrays:
        arrays(saved_arrays)
    save_npz(path, saved_arrays, saved_header)


def set_in(*keys, value):
    """A header change that sets header[keys[0]][keys[1]]... to ``value``."""

    def change(header):
        for key in keys[:-1]:
            header = header[key]
        header[keys[-1]] = value

    return change


def pcg_state(header, **changes):
    return {**header["rng"], **changes}


TAMPERED = {
    "params-int32": (
        dict(arrays=lambda a: a.update(params=(a["params"] * 100).astype(np.int32))),
        "array params holds int32 values, not the network's float32",
    ),
    "params-nan": (
        dict(arrays=lambda a: a["params"].__setitem__(0, np.nan)),
        "the parameters hold non-finite values",
    ),
    "params-of-another-size": (
        dict(arrays=lambda a: a.update(params=np.zeros(7, np.float32))),
        r"array params has shape \(7,\) but the architecture needs",
    ),
    "an-array-nobody-reads": (
        dict(arrays=lambda a: a.update(extra=np.zeros(3, np.float32))),
        "holds an array 'extra' that its header does not describe",
    ),
    "epoch-negative": (dict(header=set_in("epoch", value=-1)), "epoch must be a whole number from 0 to the run's 3"),
    "epoch-999": (dict(header=set_in("epoch", value=999)), "epoch must be a whole number from 0 to the run's 3 epochs"),
    "epoch-2.7": (dict(header=set_in("epoch", value=2.7)), "epoch must be a whole number .*, got 2.7"),
    "epoch-true": (dict(header=set_in("epoch", value=True)), "epoch must be a whole number .*, got True"),
    "adam-state-empty": (
        dict(
            header=set_in("optimizer", value={}),
            arrays=lambda a: [a.pop(k) for k in ("optimizer.M", "optimizer.V")],
        ),
        "is missing optimizer.M, optimizer.V after 3 epochs of adam",
    ),
    "adam-second-moment-missing": (dict(arrays=lambda a: a.pop("optimizer.V")), "is missing optimizer.V"),
    "adam-step-negative": (
        dict(header=set_in("optimizer", "t", value=-4)),
        "adam's step count t must be an integer >= 0, got -4",
    ),
    "adam-step-missing": (dict(header=set_in("optimizer", value={})), "adam's step count t must be an integer"),
    "adam-negative-second-moment": (
        dict(arrays=lambda a: a["optimizer.V"].__setitem__(0, -1.0)),
        "adam's second moment V has negative values",
    ),
    "adam-moment-infinite": (
        dict(arrays=lambda a: a["optimizer.M"].__setitem__(0, np.inf)),
        "adam's state M holds NaN or infinite values",
    ),
    "momentum-5": (
        dict(header=set_in("config", "momentum", value=5.0)),
        r"its config is invalid: momentum must be a number in \[0, 1\), got 5.0",
    ),
    "config-unknown-field": (dict(header=set_in("config", "colour", value="red")), "its config is invalid"),
    "rng-of-another-kind": (
        dict(header=lambda h: h.update(rng={**h["rng"], "bit_generator": "MT19937"})),
        "rng is not the state of a PCG64 generator",
    ),
    "rng-state-negative": (
        dict(header=lambda h: h.update(rng={**h["rng"], "state": {"state": -1, "inc": 1}})),
        "rng is not the state of a PCG64 generator",
    ),
    "rng-state-a-float": (
        dict(header=lambda h: h.update(rng={**h["rng"], "state": {"state": 1.5, "inc": 1}})),
        "rng is not the state of a PCG64 generator",
    ),
    "rng-a-string": (dict(header=set_in("rng", value="seed 0")), "rng is not the state of a PCG64 generator"),
    "waited-negative": (dict(header=set_in("waited", value=-1)), "waited must be a whole number"),
    "best-loss-nan": (dict(header=set_in("best_loss", value=float("nan"))), "best_loss must be a finite number"),
    "history-of-another-length": (
        dict(header=lambda h: h["history"]["epochs"].pop()),
        "its history records 2 epochs but epoch is 3",
    ),
    "network-not-a-mapping": (dict(header=set_in("network", value=[])), "is not an nnscratch model file"),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_tampered_checkpoint_is_refused_by_resume_with_one_line_naming_the_field(checkpoint, case):
    directory, X, y, _ = checkpoint
    resume(directory, X, y, callback=None)  # intact, it resumes (a finished run: nothing to do)
    change, message = TAMPERED[case]
    tamper(directory, **change)
    raised = pytest.raises(ModelFileError, resume, directory, X, y)
    assert raised.match(message)
    assert "\n" not in str(raised.value) and str(directory / "checkpoint.npz") in str(raised.value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["params-int32", "epoch-999", "adam-state-empty", "momentum-5", "rng-state-negative"])
def test_train_resume_from_a_tampered_checkpoint_exits_1_with_one_line(checkpoint, tmp_path, capsys, case):
    from nnscratch.cli import main

    directory, _, _, data_dir = checkpoint
    change, message = TAMPERED[case]
    tamper(directory, **change)
    code = main(["train", "--resume", str(directory), "--data-dir", str(data_dir), "-o", str(tmp_path / "m.npz"), "-q"])
    lines = capsys.readouterr().err.strip().splitlines()
    refusal = pytest.raises(ModelFileError, Trainer.from_checkpoint, directory, [], [])  # before the data is read
    assert refusal.match(message)
    assert code == 1 and lines == [f"nnscratch train: error: {refusal.value}"]
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.timeout(60)
def test_a_zip_bomb_in_a_checkpoint_is_refused_from_its_npy_header(checkpoint):
    import time
    import tracemalloc

    from tests.test_hardening import add_bomb

    directory, X, y, _ = checkpoint
    add_bomb(directory / "checkpoint.npz", "optimizer.M")  # 200 MiB of zeros, deflated to ~200 kB
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ModelFileError, match=r"array optimizer.M has shape \(52428800,\) but the architecture"):
            Trainer.from_checkpoint(directory, X, y)
    finally:
        seconds, (_, peak) = time.perf_counter() - started, tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 2 * 2**20 and seconds < 0.5, (peak, seconds)


def test_a_momentum_checkpoint_without_its_velocity_is_refused(tiny_data, tmp_path):
    X, y = tiny_data
    train(fresh(), X, y, TrainConfig(epochs=1, batch_size=64, optimizer="momentum"), checkpoint_dir=tmp_path)
    assert "optimizer.velocity" in load_npz(tmp_path / "checkpoint.npz")[1]
    tamper(tmp_path, arrays=lambda a: a.pop("optimizer.velocity"))
    with pytest.raises(ModelFileError, match="is missing optimizer.velocity after 1 epochs of momentum"):
        Trainer.from_checkpoint(tmp_path, X, y)


@pytest.mark.timeout(60)
def test_resuming_on_other_data_says_the_data_does_not_fit_not_that_the_checkpoint_is_corrupted(
    checkpoint, tmp_path, capsys
):
    from nnscratch.cli import main
    from nnscratch.errors import DataError
    from tests.test_data import write_tiny_mnist

    directory, X, y, _ = checkpoint
    write_tiny_mnist(tmp_path / "other", np.random.default_rng(1), side=5)  # 25 pixels, not 16
    with pytest.raises(DataError, match="the data does not fit the checkpoint in .*the same --data-dir") as raised:
        resume(directory, X[:, :9], y)
    assert "corrupt" not in str(raised.value) and "\n" not in str(raised.value)
    code = main(["train", "--resume", str(directory), "--data-dir", str(tmp_path / "other"), "-o", str(tmp_path / "m")])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and line.startswith("nnscratch train: error: the data does not fit the checkpoint")
    assert "corrupt" not in line and "--data-dir" in line
    resume(directory, X, y)  # the checkpoint itself is as good as before


def test_resuming_on_other_data_of_the_same_shape_is_refused_too(checkpoint):
    from nnscratch.errors import DataError

    directory, X, y, _ = checkpoint
    other_images, other_labels = X.copy(), y.copy()
    other_images[0, 0] += 0.5  # one pixel
    other_labels[[0, 1]] = other_labels[[1, 0]]  # two labels swapped
    for X_other, y_other in ((other_images, y), (X, other_labels)):
        with pytest.raises(DataError, match="is not the data the checkpoint in .* was trained on") as raised:
            resume(directory, X_other, y_other)
        assert "corrupt" not in str(raised.value) and "--data-dir" in str(raised.value)
    resume(directory, X, y)  # the data it was trained on still resumes


def test_a_checkpoint_asking_for_more_epochs_than_anyone_could_run_is_refused(tiny_data, tmp_path):
    X, y = tiny_data
    train(fresh(), X, y, TrainConfig(epochs=1, batch_size=64), checkpoint_dir=tmp_path)
    tamper(tmp_path, header=lambda h: h["config"].update(epochs=10**30))
    with pytest.raises(ModelFileError, match="epochs must be a positive integer up to 1,000,000, got a number above"):
        Trainer.from_checkpoint(tmp_path, X, y)


@pytest.mark.parametrize("momentum", [1.0, 5.0, -0.1, float("nan"), "0.9"])
def test_momentum_outside_0_to_1_is_refused_by_the_config(momentum):
    with pytest.raises(SpecError, match=r"momentum must be a number in \[0, 1\)"):
        TrainConfig(momentum=momentum)


def test_run_more_continues_a_run_as_if_it_had_asked_for_those_epochs_at_once(rng):
    X, y = rng.random((90, 12)), rng.integers(0, 4, 90)
    config = TrainConfig(epochs=3, batch_size=16, learning_rate=0.05, validation_size=10)
    whole = fresh()
    Trainer(whole, X, y, config).run(Callback())
    stepped = fresh()
    trainer = Trainer(stepped, X, y, TrainConfig(epochs=1, batch_size=16, learning_rate=0.05, validation_size=10))
    trainer.run(Callback())
    history = trainer.run_more(2)
    assert len(history) == 3 and trainer.state.epoch == 3 and trainer.config.epochs == 3
    np.testing.assert_array_equal(stepped.params, whole.params)  # one run, one machine: bit for bit
    # a new rate for the epochs to come, as scikit-learn's adaptive rate sets it
    trainer.run_more(1, learning_rate=0.01)
    assert trainer.history.epochs[-1].learning_rate == 0.01 and len(trainer.history) == 4
    with pytest.raises(SpecError, match="epochs must be a positive integer, got 0"):
        trainer.run_more(0)
    with pytest.raises(SpecError, match="epochs must be a positive integer up to 1,000,000, got 1000001"):
        TrainConfig(epochs=1_000_001)


# -- the average of the weights (--ema) ----------------------------------------------------------------


def test_the_weight_average_follows_its_formula_and_the_trained_network_is_the_average(tiny_data):
    from nnscratch.training import Average

    X, y = tiny_data
    config = TrainConfig(epochs=2, batch_size=64, validation_size=80, ema=0.9, calibrate=False)
    net = fresh()
    start = net.params.copy()
    trainer = Trainer(net, X, y, config)
    steps, expected = [], start.copy()
    real_update = Average.update

    def record(self, network, decay):
        d = min(decay, (1 + self.steps) / (10 + self.steps))
        steps.append(network.params.copy())
        expected[...] = d * expected + (1 - d) * network.params
        real_update(self, network, decay)

    Average.update = record
    try:
        trainer.run(Callback())
    finally:
        Average.update = real_update
    assert len(steps) == trainer.state.average.steps == 2 * 5  # 320 images in batches of 64, two epochs
    np.testing.assert_allclose(net.params, expected, rtol=1e-5, atol=1e-7)  # the network holds the average
    np.testing.assert_array_equal(trainer.state.own[0], steps[-1])  # and the state keeps its own weights
    # validation measured the average: the last epoch's figure is the returned network's
    loss, _ = evaluate(net, trainer.X_val, trainer.y_val)
    assert trainer.history.epochs[-1].val_loss == pytest.approx(loss, rel=1e-6)
    trainer.run_more(1)  # going on trains its own weights, not the average
    assert trainer.state.average.steps == 15


def test_a_run_with_a_weight_average_resumes_bit_for_bit(tiny_data, tmp_path):
    X, y = tiny_data
    config = TrainConfig(epochs=3, batch_size=64, validation_size=80, ema=0.95)
    whole = fresh()
    train(whole, X, y, config)
    stopped = fresh()
    with pytest.raises(Interrupted):
        train(stopped, X, y, config, checkpoint_dir=tmp_path, callback=stop_after_epoch(1))
    resumed, _ = resume(tmp_path, X, y)
    np.testing.assert_array_equal(resumed.params, whole.params)
    tamper(tmp_path, arrays=lambda a: a.pop("ema_params"))
    with pytest.raises(ModelFileError, match="the weight average of --ema 0.95 is missing"):
        Trainer.from_checkpoint(tmp_path, X, y)
    with pytest.raises(SpecError, match=r"weight average's decay must be a number in \[0, 1\)"):
        TrainConfig(ema=1.0)
