"""The training recipe: one place decides the network and the training that train, --config and tune use."""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.errors import SpecError
from nnscratch.network import Network
from nnscratch.presets import PRESETS
from nnscratch.recipe import OPTIONS, Recipe
from nnscratch.training import TrainConfig


def test_a_preset_fills_every_training_option_not_given():
    recipe = Recipe.of({"preset": "cnn", "epochs": 2})
    expected = {**PRESETS["cnn"].training, "epochs": 2}
    assert recipe.config == TrainConfig(**expected)
    assert Recipe.of({}).config == TrainConfig(**PRESETS["default"].training) and Recipe.of({}).preset == "default"
    # None is a given batch size: the full batch
    assert Recipe.of({"batch_size": None}).config.batch_size is None


def test_options_by_their_command_line_names_set_the_same_fields():
    options = {
        "hidden": "7:tanh",
        "init": "glorot",
        "dtype": "float64",
        "seed": 5,
        "optimizer": "nesterov",
        "lr": 0.02,
        "momentum": 0.5,
        "schedule": "cosine",
        "epochs": 3,
        "batch-size": 16,
        "l2": 1e-4,
        "l1": 1e-5,
        "dropout": 0.1,
        "augment": "shift",
        "augment-strength": 0.5,
        "not-digits": 0.25,
        "ema": 0.99,
        "adversarial": "fgsm",
        "epsilon": 0.1,
        "validation-size": 4,
        "early-stopping": 2,
    }
    assert set(options) | {"preset", "spec", "weight-decay"} == set(OPTIONS)  # a new option fails here
    recipe = Recipe.from_options(options)
    assert (recipe.hidden, recipe.init, recipe.dtype, recipe.seed) == ("7:tanh", "glorot", "float64", 5)
    config = recipe.config
    assert (config.optimizer, config.learning_rate, config.momentum, config.schedule) == (
        "nesterov",
        0.02,
        0.5,
        "cosine",
    )
    assert (config.epochs, config.batch_size, config.l2, config.l1, config.dropout) == (3, 16, 1e-4, 1e-5, 0.1)
    assert (config.augment, config.augment_strength, config.not_digits, config.ema) == ("shift", 0.5, 0.25, 0.99)
    assert (config.adversarial, config.epsilon) == ("fgsm", 0.1)
    assert (config.validation_size, config.early_stopping, config.seed) == (4, 2, 5)
    with pytest.raises(SpecError, match="unknown options 'learning-rate'"):
        Recipe.from_options({"learning-rate": 0.1})


def test_the_network_is_the_one_its_spec_builds_with_the_same_seed_dtype_and_init():
    recipe = Recipe.of({"hidden": "8:selu,6:tanh", "seed": 3, "dtype": "float64", "init": "uniform"})
    assert recipe.network_spec(12, 4) == "12-8:selu-6:tanh-4:softmax"
    net = recipe.network(12, 4)
    same = Network.from_spec("12-8:selu-6:tanh-4:softmax", seed=3, dtype="float64", init="uniform")
    assert net.spec == same.spec and net.dtype == np.float64
    np.testing.assert_array_equal(net.params, same.params)  # one machine, one run: bit for bit
    # a whole spec is parsed once, when the recipe is made, and each network is built from a copy of it
    recipe = Recipe.of({"spec": "1x4x4-conv2k3-relu-3:softmax", "seed": 1})
    first, second = recipe.network(16, 3), recipe.network(16, 3)
    assert first.layers[0] is not second.layers[0]
    np.testing.assert_array_equal(first.params, second.params)
    # a convolutional preset reads a square number of values as one channel
    assert Recipe.of({"preset": "cnn"}).network_spec(64, 3).startswith("1x8x8-conv16k3")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"spec": "16-4:relu-3", "hidden": "4:relu"}, "either --spec .* or --hidden .*, not both"),
        ({"preset": "cnn", "hidden": "4:relu"}, "the cnn preset is a convnet"),
        ({"spec": "16-4:swish-3"}, "unknown activation 'swish'"),
        ({"hidden": "4:relu,x"}, "cannot read layer 'x'"),
        ({"preset": "huge"}, "unknown preset 'huge'; choose one of: seed, default"),
        ({"dtype": "float16"}, "dtype must be float32 or float64"),
        ({"optimizer": "adagrad"}, "unknown optimiser 'adagrad'; choose one of: sgd"),
        ({"colour": "red"}, "unknown recipe options: colour"),
    ],
)
def test_a_recipe_that_cannot_work_is_refused_when_it_is_made(given, message):
    with pytest.raises(SpecError, match=message):
        Recipe.of(given)


def test_a_network_that_does_not_fit_the_data_is_refused_before_any_array_exists():
    recipe = Recipe.of({"spec": "1x4x4-conv2k3-relu-3:softmax"})
    with pytest.raises(SpecError, match=r"input 1x4x4 \(16 values\) does not match the data's 25 .* or 1x5x5"):
        recipe.network(25, 3)
    with pytest.raises(SpecError, match="ends in 3 classes but the data has 4; end the spec in 4:softmax"):
        recipe.network(16, 4)
    with pytest.raises(SpecError, match="needs square images, but the data has 15 values"):
        Recipe.of({"preset": "cnn"}).network(15, 3)
