"""The gradient of the answer with respect to the input, through every layer kind, against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.network import Network

SPECS = [
    "6-5:relu-4:sigmoid-5:tanh-4:selu-3:softmax",
    "6-5:leaky_relu-4:softmax-4:identity-3",  # a hidden softmax, through its Jacobian
    "6-5-bn-relu-dropout0.5-4-alphadropout0.3-selu-3",  # batch norm on running statistics, dropout off
    "1x7x7-conv3k3s2p1-bn-relu-maxpool2-flatten-4:tanh-3",  # stride and padding
    "1x8x8-conv2k3p1-tanh-maxpool2-conv3k2-sigmoid-flatten-3",
    "2x6x6-conv3k3-relu-maxpool3-flatten-3",  # two input channels, a window of 3
]


def loss_sum(net, X, y, of):
    """The function input_gradient differentiates, computed from the logits alone."""
    Z = net.all_logits(X)
    rows = np.arange(len(y))
    if of == "logit":
        return float(Z[rows, y].sum())
    shifted = Z - Z.max(axis=1, keepdims=True)
    return float(np.sum(np.log(np.exp(shifted).sum(axis=1)) - shifted[rows, y]))


def numeric_gradient(net, X, y, of, h=1e-6):
    out = np.zeros_like(X)
    for index in np.ndindex(X.shape):
        up, down = X.copy(), X.copy()
        up[index] += h
        down[index] -= h
        out[index] = (loss_sum(net, up, y, of) - loss_sum(net, down, y, of)) / (2 * h)
    return out


@pytest.mark.parametrize("of", ["loss", "logit"])
@pytest.mark.parametrize("spec", SPECS)
def test_the_input_gradient_matches_finite_differences_through_every_layer_kind(spec, of, rng):
    net = Network.from_spec(spec, seed=0, dtype="float64")
    for slot in net.state_layout.slots:  # running statistics that matter, and leave units alive
        low, high = (-0.2, 0.2) if slot.name == "running_mean" else (0.5, 1.5)
        slot.view(net.state)[:] = rng.uniform(low, high, slot.size)
    X, y = rng.random((3, net.n_in)), rng.integers(0, 3, 3)
    analytic = net.input_gradient(X, y, of=of)
    numeric = numeric_gradient(net, X, y, of)
    assert analytic.shape == X.shape and np.abs(numeric).max() > 1e-4  # a gradient that is there to check
    # central differences in float64 with h = 1e-6: error ~h² f''' + 1e-16 / h, far below 1e-6 of the scale
    np.testing.assert_allclose(analytic, numeric, atol=1e-6 * np.abs(numeric).max(), rtol=1e-5)


def test_each_row_is_its_own_examples_gradient_and_the_layout_is_the_callers(rng):
    net = Network.from_spec("1x5x5-conv2k3-relu-flatten-3", seed=0, dtype="float64")
    X, y = rng.random((4, 25)), rng.integers(0, 3, 4)
    together = net.input_gradient(X, y)
    for i in range(4):
        np.testing.assert_allclose(together[i], net.input_gradient(X[i], y[i : i + 1]), rtol=1e-12, atol=1e-15)
    images = X.reshape(4, 1, 5, 5)
    np.testing.assert_allclose(net.input_gradient(images, y), together.reshape(4, 1, 5, 5), rtol=1e-12)
    np.testing.assert_allclose(net.input_gradient(X.reshape(4, 5, 5), y), together.reshape(4, 5, 5), rtol=1e-12)
    two = Network.from_spec("2x3x3-conv2k2-flatten-3", seed=0, dtype="float64")
    flat = rng.random((2, 18))
    np.testing.assert_allclose(  # channels-first in, channels-first out
        two.input_gradient(flat.reshape(2, 2, 3, 3), [0, 1]), two.input_gradient(flat, [0, 1]).reshape(2, 2, 3, 3)
    )


def test_the_input_gradient_leaves_the_network_and_its_training_alone(rng):
    from nnscratch.training import TrainConfig, train

    net = Network.from_spec("1x6x6-conv2k3-bn-relu-maxpool2-flatten-3", seed=0)
    X, y = rng.random((40, 36), dtype=np.float32), rng.integers(0, 3, 40)
    params, state = net.params.copy(), net.state.copy()
    first = net.input_gradient(X, y)
    np.testing.assert_array_equal(net.params, params)
    np.testing.assert_array_equal(net.state, state)  # no running statistics moved
    np.testing.assert_array_equal(net.input_gradient(X, y), first)  # prediction mode: the same every time
    train(net, X, y, TrainConfig(epochs=1, batch_size=8, validation_size=0))
    again = net.input_gradient(X, y)
    assert again.dtype == np.float32 and not np.array_equal(again, first)


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((np.zeros((2, 6)), [0, 1]), ValueError, "of must be 'loss' or 'logit', got 'probability'"),
        ((np.zeros((2, 5)), [0, 1]), ValueError, "X must have shape"),
        ((np.zeros((2, 6)), [0, 3]), ValueError, r"labels must be integers in \[0, 3\)"),
        ((np.zeros((2, 6)), [0]), ValueError, r"y must have shape \(2,\) to match X, got \(1,\)"),
    ],
)
def test_bad_input_is_refused(args, error, message):
    net = Network.from_spec("6-4:relu-3", seed=0)
    of = "probability" if "of must" in message else "loss"
    with pytest.raises(error, match=message):
        net.input_gradient(*args, of=of)
