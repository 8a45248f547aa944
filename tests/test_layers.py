"""Every layer kind: gradients against finite differences, hand-worked examples, and each one's own rules.

The generic check (``LAYER_CASES``) covers dX and every parameter of every layer kind in float64, on odd
sizes, with stride and padding; a new layer is tested by adding it to that list.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.activations import ACTIVATIONS, Activation
from nnscratch.errors import SpecError
from nnscratch.gradcheck import check_layer
from nnscratch.layers import (
    ActivationLayer,
    AlphaDropout,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
)

LAYER_CASES = [
    (lambda: Dense(4, "tanh"), (5,)),
    (lambda: Dense(3, "identity"), (7,)),
    (lambda: Conv2D(3, 3), (2, 7, 9)),
    (lambda: Conv2D(2, 3, stride=2, padding=1), (3, 7, 8)),
    (lambda: Conv2D(4, 2, stride=3, padding=2), (1, 5, 5)),
    (lambda: Conv2D(5, 1), (6, 3, 4)),  # 1×1: many channels, the window-view im2col path
    (lambda: Conv2D(2, 3, padding=1), (5, 4, 6)),
    (lambda: MaxPool2D(2), (3, 7, 9)),  # odd sizes: the last row and column are dropped
    (lambda: MaxPool2D(3), (2, 6, 7)),
    (lambda: BatchNorm(), (6,)),
    (lambda: BatchNorm(), (3, 5, 4)),
    (lambda: Dropout(0.4), (3, 4, 4)),
    (lambda: Dropout(0.5), (9,)),
    (lambda: AlphaDropout(0.3), (2, 3, 5)),
    (lambda: Flatten(), (2, 3, 5)),
    *[(lambda name=name: ActivationLayer(name), (3, 4, 5)) for name in ACTIVATIONS],
    *[(lambda name=name: ActivationLayer(name), (6,)) for name in ACTIVATIONS],
]


def channels_last(rng, shape, m=4):
    """Random inputs for a layer of input ``shape``: (m, n) or channels-last (m, H, W, C)."""
    if len(shape) == 3:
        C, H, W = shape
        return rng.standard_normal((m, H, W, C))
    return rng.standard_normal((m, *shape))


@pytest.mark.parametrize("make, shape", LAYER_CASES, ids=lambda v: repr(v()) if callable(v) else "x".join(map(str, v)))
def test_backward_matches_finite_differences(make, shape, rng):
    layer = make().materialize(shape, seed=0)
    results = check_layer(layer, channels_last(rng, shape))
    assert [r.name for r in results] == ["X", *layer.param_shapes()]
    assert all(r.passed for r in results), results


@pytest.mark.parametrize("make, shape", LAYER_CASES, ids=lambda v: repr(v()) if callable(v) else "x".join(map(str, v)))
def test_config_rebuilds_the_same_layer(make, shape):
    layer = make()
    again = type(layer).from_config(layer.config())
    assert again.config() == layer.config() and again.token == layer.token
    assert again.build(shape) == layer.build(shape)


def test_a_wrong_derivative_is_caught(rng, monkeypatch):
    layer = MaxPool2D(2).materialize((2, 4, 4))
    monkeypatch.setattr(MaxPool2D, "backward", lambda self, dY, cache, grads, **_: np.zeros(cache.input_shape))
    assert not check_layer(layer, channels_last(rng, (2, 4, 4)))[0].passed


# -- dense -------------------------------------------------------------------------------------------


def test_dense_hand_worked_example():
    # One sample x = [1, 2], W = [[1, -1], [0.5, 1]], b = [0, -1], ReLU.
    # Z = x W + b = [1*1 + 2*0.5 + 0, 1*(-1) + 2*1 - 1] = [2, 0];  A = relu(Z) = [2, 0].
    layer = Dense(2, "relu").materialize((2,))
    layer.W, layer.b = [[1.0, -1.0], [0.5, 1.0]], [0.0, -1.0]
    A, cache = layer.forward(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(A, [[2.0, 0.0]])
    # Upstream dA = [3, 4].  dZ = dA * [Z > 0] = [3, 0] (the unit at Z = 0 passes no gradient).
    # dW = xᵀ dZ = [[3, 0], [6, 0]];  db = [3, 0];  dX = dZ Wᵀ = [3*1 + 0*(-1), 3*0.5 + 0*1] = [3, 1.5].
    grads = layer.views(np.zeros(6))
    dX = layer.backward(np.array([[3.0, 4.0]]), cache, grads)
    np.testing.assert_array_equal(grads["W"], [[3.0, 0.0], [6.0, 0.0]])
    np.testing.assert_array_equal(grads["b"], [3.0, 0.0])
    np.testing.assert_array_equal(dX, [[3.0, 1.5]])


def test_first_layer_skips_dx(rng):
    layer = Dense(3, "tanh").materialize((4,))
    _, cache = layer.forward(rng.normal(size=(5, 4)))
    grads = layer.views(np.zeros(15))
    assert layer.backward(rng.normal(size=(5, 3)), cache, grads, need_dX=False) is None
    assert np.abs(grads["W"]).sum() > 0


def test_assigning_weights_copies_into_the_shared_buffer():
    layer = Dense(3, "relu").materialize((4,))
    layer.W = np.ones((4, 3))
    layer.b = np.full(3, 2.0)
    assert layer.flat[:12].sum() == 12 and layer.flat[12:].sum() == 6
    with pytest.raises(ValueError, match=r"W must have shape \(4, 3\)"):
        layer.W = np.ones((3, 4))


def test_dense_refuses_an_image_input():
    with pytest.raises(SpecError, match="'5:relu' cannot take the 1x4x4 input it meets: .*flatten"):
        Dense(5, "relu").build((1, 4, 4))


# -- convolution -------------------------------------------------------------------------------------


def reference_convolution(X, W, b, stride, padding):
    """The definition, one output value at a time: Y[n,y,x,f] = b[f] + Σ Xp[n, s·y+i, s·x+j, c] W[i,j,c,f]."""
    m, H, Wd, C = X.shape
    k, _, _, F = W.shape
    Xp = np.pad(X, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (Wd + 2 * padding - k) // stride + 1
    Y = np.empty((m, Ho, Wo, F))
    for n in range(m):
        for y in range(Ho):
            for x in range(Wo):
                patch = Xp[n, stride * y : stride * y + k, stride * x : stride * x + k, :]
                Y[n, y, x] = b + np.tensordot(patch, W, axes=3)
    return Y


@pytest.mark.parametrize(
    "filters, kernel, stride, padding, shape",
    [(3, 3, 1, 0, (2, 7, 9)), (2, 3, 2, 1, (3, 8, 7)), (4, 5, 3, 2, (1, 6, 6)), (6, 2, 1, 1, (5, 4, 4))],
)
def test_convolution_is_the_cross_correlation_of_its_definition(filters, kernel, stride, padding, shape, rng):
    layer = Conv2D(filters, kernel, stride, padding).materialize(shape, seed=1)
    layer.b[...] = rng.standard_normal(filters)
    X = channels_last(rng, shape, m=3)
    for training in (False, True):
        Y, _ = layer.forward(X, training=training)
        np.testing.assert_allclose(
            Y, reference_convolution(X, layer.W, layer.b, stride, padding), rtol=1e-10, atol=1e-12
        )
    assert Y.shape[1:] == (layer.output_shape[1], layer.output_shape[2], filters)


def test_convolution_hand_worked_example():
    # A 3×3 image [[1,2,3],[4,5,6],[7,8,9]], one 2×2 filter [[1,0],[0,-1]], bias 10:
    # each output is x[y,x] - x[y+1,x+1] + 10 = 1-5+10, 2-6+10, 4-8+10, 5-9+10 = [[6, 6], [6, 6]].
    layer = Conv2D(1, 2).materialize((1, 3, 3))
    layer.W[:, :, 0, 0] = [[1.0, 0.0], [0.0, -1.0]]
    layer.b[...] = 10.0
    X = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    Y, cache = layer.forward(X)
    np.testing.assert_array_equal(Y[0, :, :, 0], [[6.0, 6.0], [6.0, 6.0]])
    # With dY = 1 everywhere: db = 4 (four outputs); dW[i, j] = Σ of the pixels filter tap (i, j) read:
    # tap (0,0) read 1+2+4+5 = 12, (0,1) 2+3+5+6 = 16, (1,0) 4+5+7+8 = 24, (1,1) 5+6+8+9 = 28.
    # dX: each pixel gets Σ of the filter taps that read it: the corner (0,0) only tap (0,0) → 1; the
    # centre is read by all four taps → 1 + 0 + 0 - 1 = 0; the corner (2,2) only by tap (1,1) → -1.
    grads = layer.views(np.zeros(5))
    dX = layer.backward(np.ones((1, 2, 2, 1)), cache, grads)
    np.testing.assert_array_equal(grads["W"][:, :, 0, 0], [[12.0, 16.0], [24.0, 28.0]])
    np.testing.assert_array_equal(grads["b"], [4.0])
    np.testing.assert_array_equal(dX[0, :, :, 0], [[1.0, 1.0, 0.0], [1.0, 0.0, -1.0], [0.0, -1.0, -1.0]])


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (Conv2D(8, 3), (784,), "'conv8k3' cannot take the 784 input it meets: a convolution needs an image"),
        (Conv2D(8, 5), (1, 3, 3), "'conv8k5' cannot take the 1x3x3 input .* 5×5 kernel is larger than the 3×3"),
        (Conv2D(8, 6, padding=1), (1, 3, 3), "'conv8k6p1' .* the 6×6 kernel is larger than the 5×5 padded image"),
        (MaxPool2D(4), (64, 3, 3), "'maxpool4' cannot take the 64x3x3 input it meets: the 4×4 window is larger"),
        (MaxPool2D(2), (10,), "'maxpool2' cannot take the 10 input it meets: pooling needs an image"),
    ],
)
def test_layers_refuse_inputs_they_cannot_take(layer, shape, message):
    with pytest.raises(SpecError, match=message):
        layer.build(shape)


def test_padding_that_makes_a_kernel_fit_is_accepted():
    assert Conv2D(8, 5, padding=1).build((1, 3, 3)) == (8, 1, 1)


@pytest.mark.parametrize("args", [(0, 3), (8, 0), (8, 3, 0), (8, 3, 1, -1), (8.5, 3)])
def test_convolution_settings_are_checked(args):
    with pytest.raises(SpecError, match="must be an integer"):
        Conv2D(*args)


# -- pooling -----------------------------------------------------------------------------------------


def test_max_pooling_takes_window_maxima_and_drops_remainders():
    X = np.arange(5 * 5, dtype=float).reshape(1, 5, 5, 1)  # increasing: each window's max is its bottom right
    layer = MaxPool2D(2).materialize((1, 5, 5))
    Y, cache = layer.forward(X, training=True)
    np.testing.assert_array_equal(Y[0, :, :, 0], [[6.0, 8.0], [16.0, 18.0]])
    dX = layer.backward(np.ones((1, 2, 2, 1)), cache, {})
    expected = np.zeros((5, 5))
    expected[[1, 1, 3, 3], [1, 3, 1, 3]] = 1.0  # the maxima; the dropped row and column get nothing
    np.testing.assert_array_equal(dX[0, :, :, 0], expected)


def test_a_tied_window_sends_its_gradient_to_the_first_maximum_only():
    # A flat window (a blank background) has four maxima; the gradient must go to one, the first in
    # row-major order, as PyTorch does; sending it to all four would count it four times.
    X = np.zeros((1, 2, 2, 2))
    X[0, :, :, 1] = [[1.0, 3.0], [3.0, 3.0]]  # channel 1: the max 3 first appears at (0, 1)
    layer = MaxPool2D(2).materialize((2, 2, 2))
    Y, cache = layer.forward(X, training=True)
    dX = layer.backward(np.array([[[[5.0, 7.0]]]]), cache, {})
    np.testing.assert_array_equal(dX[0, :, :, 0], [[5.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(dX[0, :, :, 1], [[0.0, 7.0], [0.0, 0.0]])


# -- batch norm --------------------------------------------------------------------------------------


def test_batch_norm_normalises_each_channel_over_batch_and_positions(rng):
    layer = BatchNorm().materialize((3, 4, 5))
    X = channels_last(rng, (3, 4, 5), m=6) * [1.0, 5.0, 0.1] + [3.0, -2.0, 0.5]
    Y, _ = layer.forward(X, training=True)
    per_channel = Y.reshape(-1, 3)
    np.testing.assert_allclose(per_channel.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(per_channel.var(axis=0), [1.0 / (1.0 + 1e-5 / v) for v in X.reshape(-1, 3).var(0)])


def test_batch_norm_keeps_running_statistics_and_predicts_with_them(rng):
    layer = BatchNorm().materialize((4,))
    layer.params["gamma"][...] = [1.0, 2.0, 0.5, 1.0]
    layer.params["beta"][...] = [0.0, 1.0, -1.0, 3.0]
    X = rng.normal(2.0, 3.0, (50, 4))
    _, cache = layer.forward(X, training=True)
    layer.update_state(cache)
    # running ← 0.9 running + 0.1 batch, the variance unbiased (N - 1), as PyTorch keeps them
    np.testing.assert_allclose(layer.state["running_mean"], 0.1 * X.mean(axis=0))
    np.testing.assert_allclose(layer.state["running_var"], 0.9 + 0.1 * X.var(axis=0, ddof=1))
    Y, _ = layer.forward(X[:3], training=False)
    expected = (X[:3] - layer.state["running_mean"]) / np.sqrt(layer.state["running_var"] + 1e-5)
    np.testing.assert_allclose(Y, expected * layer.params["gamma"] + layer.params["beta"])
    # prediction is per sample: one row gives the same answer alone as in a batch
    np.testing.assert_allclose(layer.forward(X[1:2])[0], Y[1:2])


# -- dropout -----------------------------------------------------------------------------------------


def test_dropout_drops_while_training_and_is_the_identity_otherwise(rng):
    layer = Dropout(0.25).materialize((40, 50))
    X = np.ones((10, 40))
    Y, mask = layer.forward(X, training=True, rng=np.random.default_rng(0))
    assert np.mean(Y == 0) == pytest.approx(0.25, abs=0.02)
    assert set(np.unique(Y)) == {0.0, 1.0 / 0.75}
    assert layer.forward(X, training=False, rng=rng)[0] is X
    assert layer.forward(X, training=True, rng=None)[0] is X  # no generator: no dropout (gradient checks)
    dX = layer.backward(np.ones_like(X), mask, {})
    np.testing.assert_array_equal(dX, Y)


def test_dropout_masks_match_the_generator_whether_or_not_a_buffer_is_reused():
    from nnscratch.layers.dropout import dropout_mask

    a = dropout_mask((6, 7), 0.3, np.random.default_rng(5), np.dtype("float32"))
    b = dropout_mask((6, 7), 0.3, np.random.default_rng(5), np.dtype("float32"), out=np.empty((6, 7), np.float32))
    np.testing.assert_array_equal(a, b)


# -- buffers -----------------------------------------------------------------------------------------


def test_prediction_returns_fresh_arrays_and_training_reuses_its_buffers(rng):
    layer = Conv2D(2, 3).materialize((1, 5, 5))
    X = channels_last(rng, (1, 5, 5))
    first, second = layer.forward(X)[0], layer.forward(X)[0]
    assert not np.shares_memory(first, second)
    one, two = layer.forward(X, training=True)[0], layer.forward(X, training=True)[0]
    assert np.shares_memory(one, two)


def test_every_layer_kind_is_registered():
    from nnscratch.layers import LAYERS

    assert set(LAYERS.values()) == {type(make()) for make, _ in LAYER_CASES}
    assert all(issubclass(cls, Layer) for cls in LAYERS.values())


LAYER_IDS = [f"{make()!r}-{'x'.join(map(str, shape))}" for make, shape in LAYER_CASES]


@pytest.mark.parametrize("make, shape", LAYER_CASES, ids=LAYER_IDS)
def test_a_prediction_is_never_overwritten_by_the_next(make, shape, rng):
    layer = make().materialize(shape, seed=0)
    X1, X2 = channels_last(rng, shape), channels_last(rng, shape)
    Y1 = layer.forward(X1)[0]
    kept = Y1.copy()
    layer.forward(X2)
    layer.forward(X2, training=True, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(Y1, kept)


# and dense layers whose activation's derivative reads Z, not only A
THREAD_CASES = [*LAYER_CASES, (lambda: Dense(4, "relu"), (5,)), (lambda: Dense(4, "selu"), (5,))]


@pytest.mark.parametrize("make, shape", THREAD_CASES, ids=[*LAYER_IDS, "Dense(5, 4, relu)-5", "Dense(5, 4, selu)-5"])
def test_split_over_threads_every_layer_computes_what_one_thread_does(make, shape, monkeypatch):
    import nnscratch.parallel
    from nnscratch.parallel import thread_pool

    monkeypatch.setattr(nnscratch.parallel, "GRAIN", 1)  # every operation split, however small
    results = []
    for n in (1, 3):
        layer = make().materialize(shape, seed=0)
        layer.flat[...] = np.random.default_rng(1).uniform(0.5, 1.5, layer.flat.size)  # biases and shifts too
        layer.pool = thread_pool(n)
        X = channels_last(np.random.default_rng(2), shape, m=7)  # 7 rows: chunks of 2, 2 and 3
        Y, cache = layer.forward(X, training=True, rng=np.random.default_rng(3))
        Y = Y.copy()
        dY = np.random.default_rng(4).standard_normal(Y.shape)
        grad = np.zeros_like(layer.flat)
        dX = np.array(layer.backward(dY, cache, layer.views(grad)))
        results.append((Y, dX, grad, layer.forward(X)[0]))
    for one, three in zip(*results, strict=True):
        np.testing.assert_allclose(three, one, rtol=1e-10, atol=1e-12)


class Doubling(Activation):
    """a = 2z, an activation whose backward returns a new array instead of overwriting da (allowed)."""

    name = "doubling"
    default_init = "glorot"

    def forward(self, z, out=None):
        return np.multiply(z, 2.0, out=out)

    def backward(self, z, a, da):
        return 2.0 * da


@pytest.mark.parametrize(
    "make, shape", [(lambda: ActivationLayer(Doubling()), (3, 4, 2)), (lambda: Dense(3, Doubling()), (5,))]
)
def test_an_activation_that_does_not_work_in_place_still_backpropagates(make, shape, rng):
    layer = make().materialize(shape, seed=0)
    results = check_layer(layer, channels_last(rng, shape))
    assert all(r.passed for r in results), results


def test_a_one_unit_dense_layer_is_allowed():
    layer = Dense(1, "sigmoid").materialize((3,))
    assert layer.W.shape == (3, 1) and layer.forward(np.ones((2, 3)))[0].shape == (2, 1)


def test_convolution_refuses_a_kernel_too_wide_or_too_tall_for_the_padded_image():
    assert Conv2D(8, 5, padding=1).build((1, 3, 9)) == (8, 1, 7)  # 3 + 2 = 5 rows: just enough
    for shape in ((1, 9, 2), (1, 2, 9)):  # 2 + 2 = 4 < 5 in one direction only
        with pytest.raises(SpecError, match="kernel is larger than"):
            Conv2D(8, 5, padding=1).build(shape)


@pytest.mark.parametrize("init, std", [("he", np.sqrt(2 / (4 * 9))), ("glorot", np.sqrt(2 / (4 * 9 + 64 * 9)))])
def test_convolution_weights_are_drawn_from_fan_in_c_k_k_and_fan_out_f_k_k(init, std):
    # He: N(0, 2/fan_in), fan_in = C·k·k = 36; Glorot: U(±sqrt(6/(fan_in + fan_out))), fan_out = F·k·k = 576,
    # whose standard deviation is sqrt(2/(fan_in + fan_out))
    layer = Conv2D(64, 3, init=init).materialize((4, 8, 8), seed=0)
    assert layer.W.std() == pytest.approx(std, rel=0.03)
    assert np.all(layer.b == 0)
    if init == "glorot":
        assert np.abs(layer.W).max() <= np.sqrt(3) * std


def test_batch_norm_running_statistics_are_moving_averages_from_two_rows_on(rng):
    layer = BatchNorm().materialize((3,))
    first, second = rng.normal(1.0, 2.0, (2, 3)), rng.normal(-4.0, 0.5, (5, 3))  # two rows: the smallest batch
    for X in (first, second):
        layer.update_state(layer.forward(X, training=True)[1])
    # from (0, 1): mean 0.9·(0.9·0 + 0.1·m1) + 0.1·m2, variance likewise with the unbiased batch variances
    np.testing.assert_allclose(layer.state["running_mean"], 0.09 * first.mean(0) + 0.1 * second.mean(0))
    expected_var = 0.81 + 0.09 * first.var(0, ddof=1) + 0.1 * second.var(0, ddof=1)
    np.testing.assert_allclose(layer.state["running_var"], expected_var)


def test_scratch_buffers_stay_few_however_many_batch_sizes_a_layer_meets(rng):
    layer = Dense(4, "relu").materialize((3,))
    for m in range(1, 60):
        layer.forward(rng.random((m, 3)), training=True)
    assert len(layer.__dict__["_scratch"]) <= 33  # dropped and started again past 32, not one set per size


def test_pool_windows_from_1_to_15_are_accepted_and_must_fit_both_sides():
    assert MaxPool2D(1).build((2, 3, 4)) == (2, 3, 4) and MaxPool2D(15).build((1, 15, 30)) == (1, 1, 2)
    for size in (0, 16, True, 2.0):
        with pytest.raises(SpecError, match="max-pool window must be an integer from 1 to 15"):
            MaxPool2D(size)
    for shape in ((1, 8, 3), (1, 3, 8)):  # too narrow, or too short, for a 4×4 window
        with pytest.raises(SpecError, match="the 4×4 window is larger"):
            MaxPool2D(4).build(shape)


def test_dropout_rates_from_0_up_to_but_not_1_are_accepted():
    assert Dropout(0.0).rate == 0.0 and Dropout(0.999).rate == 0.999
    for rate in (1.0, -0.1, True, "0.5"):
        with pytest.raises(SpecError, match=r"dropout rate must be a probability in \[0, 1\)"):
            Dropout(rate)


@pytest.mark.parametrize("kind", [Dropout, AlphaDropout])
def test_a_zero_rate_dropout_layer_is_the_identity_and_draws_nothing(kind, rng):
    layer = kind(0.0).materialize((5,))
    X = rng.standard_normal((4, 5))
    generator = np.random.default_rng(0)
    Y, cache = layer.forward(X, training=True, rng=generator)
    np.testing.assert_array_equal(Y, X)
    assert generator.random() == np.random.default_rng(0).random()  # the stream is where it was
    np.testing.assert_array_equal(layer.backward(np.ones_like(X), cache, {}), np.ones_like(X))


def test_alpha_dropout_sets_dropped_units_to_selus_floor_then_restores_mean_and_variance(rng):
    from nnscratch.activations import get_activation
    from nnscratch.layers.dropout import SELU_SATURATION

    floor = get_activation("selu").forward(np.array([[-1000.0]]))[0, 0]  # α' = lim SELU(z), z → -∞
    assert SELU_SATURATION == pytest.approx(floor, rel=1e-12) and floor < -1.75
    p = 0.3
    a = ((1 - p) * (1 + p * floor**2)) ** -0.5
    b = -a * p * floor
    layer = AlphaDropout(p).materialize((50,))
    X = rng.standard_normal((400, 50))
    Y, factor = layer.forward(X, training=True, rng=np.random.default_rng(1))
    dropped = factor == 0
    assert dropped.mean() == pytest.approx(p, abs=0.01)
    np.testing.assert_allclose(Y[dropped], a * floor + b, rtol=1e-12)  # Y = a (X M + α' (1 - M)) + b
    np.testing.assert_allclose(Y[~dropped], a * X[~dropped] + b, rtol=1e-12)
    assert abs(Y.mean()) < 0.02 and Y.var() == pytest.approx(1.0, abs=0.03)  # N(0, 1) in, about N(0, 1) out
    assert layer.forward(X)[0] is X  # predicting: the identity
