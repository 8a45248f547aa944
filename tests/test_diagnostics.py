"""The diagnostics on constructed cases where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.diagnostics import (
    dead_fraction,
    gradient_norms,
    histograms,
    layer_statistics,
    saturated_fraction,
)
from nnscratch.network import Network


def test_relu_layer_with_large_negative_bias_is_all_dead(rng):
    net = Network.from_spec("20-16:relu-3:softmax", seed=0, dtype="float64")
    net.layers[0].b = np.full(16, -100.0)
    stats = layer_statistics(net, rng.random((200, 20)))
    assert stats[0]["dead"] == 1.0 and stats[0]["mean"] == 0.0
    assert gradient_norms(net, rng.random((50, 20)), rng.integers(0, 3, 50))[0] == 0.0  # nothing flows back


def test_healthy_relu_layer_is_not_dead(rng):
    net = Network.from_spec("20-16:relu-3:softmax", seed=0, dtype="float64")
    assert layer_statistics(net, rng.standard_normal((200, 20)))[0]["dead"] == 0.0


def test_dead_fraction_counts_units_dead_on_every_sample():
    A = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.5]])
    assert dead_fraction(A) == pytest.approx(1 / 3)  # only the first unit is zero for every sample


def test_sigmoid_fed_huge_inputs_is_saturated(rng):
    net = Network.from_spec("20-16:sigmoid-8:tanh-3:softmax", seed=0, dtype="float64")
    net.layers[0].W = net.layers[0].W * 1000.0
    net.layers[1].W = net.layers[1].W * 1000.0
    stats = layer_statistics(net, rng.random((200, 20)))
    assert stats[0]["saturated_units"] == 1.0 and stats[0]["saturated_activations"] > 0.99
    assert stats[1]["saturated_units"] == 1.0
    assert stats[0]["dead"] is None  # not a ReLU


def test_sigmoid_with_small_inputs_is_not_saturated(rng):
    net = Network.from_spec("20-16:sigmoid-3:softmax", seed=0, dtype="float64")
    assert layer_statistics(net, rng.random((200, 20)) * 0.1)[0]["saturated_units"] == 0.0


def test_saturation_thresholds_follow_the_derivative():
    # σ' = σ(1 - σ) < 0.0025 exactly when σ < 0.0025 or σ > 0.9975 (to first order)
    A = np.array([[0.001, 0.5, 0.999]] * 20)
    assert saturated_fraction(A, "sigmoid") == pytest.approx(2 / 3)
    assert saturated_fraction(np.array([[0.999, -0.999, 0.9]] * 20), "tanh") == pytest.approx(2 / 3)
    assert saturated_fraction(A, "relu") is None


def test_selu_layer_statistics_are_near_zero_mean_unit_variance(rng):
    # LeCun-initialised SELU keeps standardised inputs near mean 0, variance 1: self-normalisation.
    net = Network.from_spec("200-300:selu-300:selu-3:softmax", seed=0, dtype="float64")
    stats = layer_statistics(net, rng.standard_normal((2000, 200)))
    for layer in stats:
        assert abs(layer["mean"]) < 0.1 and abs(layer["std"] - 1.0) < 0.1


def test_histograms_count_every_activation(rng):
    net = Network.from_spec("20-16:tanh-8:relu-3:softmax", seed=0)
    result = histograms(net, rng.random((50, 20)), bins=10)
    assert [h["activation"] for h in result] == ["tanh", "relu"]
    assert sum(result[0]["counts"]) == 50 * 16 and len(result[0]["edges"]) == 11


def test_histograms_report_the_mean_and_std_of_each_layer(rng):
    net = Network.from_spec("20-16:tanh-8:relu-3:softmax", seed=0, dtype="float64")
    X = rng.random((50, 20))
    result = histograms(net, X)
    for layer, A in zip(result, net.layer_outputs(X)[:-1], strict=True):
        assert layer["mean"] == pytest.approx(A.mean()) and layer["std"] == pytest.approx(A.std())


def test_a_convnet_counts_each_channel_as_a_unit(rng):
    # Channel c of a feature map is one unit seen at every position: a channel whose ReLU output is 0
    # at every position of every image is dead, and the statistics cover all m·H·W·C values.
    net = Network.from_spec("1x6x6-conv3k3-relu-flatten-3", seed=0, dtype="float64")
    net.layers[0].b[...] = [-100.0, 0.0, 0.0]  # channel 0 can never be positive on inputs in [0, 1]
    net.layers[0].W[..., 0] = 0.0
    X = rng.random((20, 36))
    (stats,) = layer_statistics(net, X)
    assert stats["activation"] == "relu" and stats["dead"] == pytest.approx(1 / 3)
    (histogram,) = histograms(net, X)
    assert sum(histogram["counts"]) == 20 * 4 * 4 * 3
