"""Real MNIST: the networks reach their accuracy goals (full training set, full test set).

These train for real (seconds each) and are skipped when the MNIST files are not available.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.metrics import accuracy
from nnscratch.presets import PRESETS
from nnscratch.training import TrainConfig, train

pytestmark = pytest.mark.mnist


def train_preset(mnist, name, **overrides):
    preset = PRESETS[name]
    net = preset.network(mnist.n_features, mnist.n_classes, seed=0, init=overrides.pop("init", None))
    history = train(net, mnist.X_train, mnist.y_train, TrainConfig(**{**preset.training, **overrides, "seed": 0}))
    return net, history, accuracy(mnist.y_test, net.predict(mnist.X_test))


def test_data_is_the_real_mnist(mnist):
    assert mnist.X_train.shape == (60000, 784) and mnist.X_test.shape == (10000, 784)
    assert mnist.n_classes == 10 and np.bincount(mnist.y_train).sum() == 60000


@pytest.mark.timeout(300)
def test_seed_network_with_adam_beats_the_notebook(mnist):
    _, history, test_accuracy = train_preset(mnist, "seed")
    assert len(history) == 10
    assert test_accuracy >= 0.965


@pytest.mark.timeout(300)
def test_default_network_reaches_98_percent(mnist):
    _, _, test_accuracy = train_preset(mnist, "default")
    assert test_accuracy >= 0.98


@pytest.mark.timeout(300)
def test_full_batch_gradient_descent_still_learns(mnist):
    # The notebook's recipe, shortened: full-batch SGD from the ±0.3 uniform initialisation.
    _, history, test_accuracy = train_preset(
        mnist,
        "seed",
        init="uniform",
        batch_size=None,
        optimizer="sgd",
        learning_rate=0.1,
        epochs=30,
        schedule="constant",
    )
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert test_accuracy > 0.3


@pytest.mark.timeout(300)
def test_cnn_preset_passes_98_percent_in_one_epoch(mnist):
    # The cnn preset's network and recipe, its cosine schedule compressed into one epoch: 98.37% measured,
    # beyond what the default MLP reaches in ten.
    net, history, test_accuracy = train_preset(mnist, "cnn", epochs=1)
    assert len(history) == 1 and not net.is_mlp
    assert test_accuracy >= 0.98


# The presets' own goals, each a full training run; the figures they reached are in the README's results
# table (98.54% and 99.34% on the machine that measured them).  Another CPU rounds differently and lands
# a little elsewhere, so each goal keeps a margin below the measured figure.
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fast_preset_reaches_98_3_percent(mnist):
    _, _, test_accuracy = train_preset(mnist, "fast")
    assert test_accuracy >= 0.983


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_cnn_preset_reaches_99_1_percent(mnist):
    net, history, test_accuracy = train_preset(mnist, "cnn")
    assert len(history) == 12 and not net.is_mlp
    assert test_accuracy >= 0.991
