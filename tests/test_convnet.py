"""Convolutional networks on the general layer stack: specs, inputs, files, modes, checkpoints, gradients.

Each test builds a small convnet (odd sizes, stride, padding) and checks one promise of the engine.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.errors import SpecError
from nnscratch.gradcheck import check_gradients
from nnscratch.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D
from nnscratch.network import Network, parse_spec
from nnscratch.training import TrainConfig, Trainer, resume, train
from tests.conftest import Interrupted, stop_after_epoch

KERAS = "1x28x28-conv32k3-relu-maxpool2-conv64k3-relu-maxpool2-flatten-dropout0.5-10:softmax"
SMALL = "1x9x9-conv4k3p1-bn-relu-maxpool2-conv6k2s2-relu-flatten-dropout0.3-12-bn-tanh-3"


def images(rng, m=40, side=9, classes=3):
    X = rng.random((m, side * side), dtype=np.float32)
    y = np.arange(m) % classes
    X[np.arange(m), y * 7] += 2.0  # a learnable signal: one bright pixel per class
    return X, y


# -- specs --------------------------------------------------------------------------------------------


def test_the_keras_convnet_builds_with_the_expected_shapes():
    net = Network.from_spec(KERAS, seed=0)
    assert net.spec == KERAS and net.input_shape == (1, 28, 28) and not net.is_mlp
    shapes = [layer.output_shape for layer in net.layers]
    assert shapes == [
        (32, 26, 26),
        (32, 26, 26),
        (32, 13, 13),
        (64, 11, 11),
        (64, 11, 11),
        (64, 5, 5),
        (1600,),
        (1600,),
        (10,),
    ]
    # 3·3·1·32 + 32 + 3·3·32·64 + 64 + 1600·10 + 10, the same count as Keras reports
    assert net.n_params == 34_826


def test_flatten_is_implied_before_the_first_dense_layer_on_an_image():
    _, layers = parse_spec("1x8x8-conv4k3-relu-16-3")
    assert [type(layer) for layer in layers][-3:] == [Flatten, Dense, Dense]
    assert Network.from_spec("1x8x8-conv4k3-relu-16-3").spec == "1x8x8-conv4k3-relu-flatten-16:relu-3:softmax"


def test_a_bare_dense_layer_before_batch_norm_is_linear():
    net = Network.from_spec("784-256-bn-relu-10:softmax", seed=0)
    assert [layer.token for layer in net.layers] == ["256:identity", "bn", "relu", "10:identity"]
    assert net.spec == "784-256-bn-relu-10:softmax"
    assert net.layers[0].init == "he"  # it feeds a ReLU (through batch norm)
    assert Network.from_spec("784-128-10").layers[0].activation.name == "relu"  # as it always was


@pytest.mark.parametrize(
    "spec",
    [
        KERAS,
        SMALL,
        "2x7x5-conv3k3s2p2-selu-maxpool2-flatten-4",
        "784-64-bn-leaky_relu-dropout0.1-10:softmax",
        "3x6x6-conv4k1-softmax-flatten-2",
        "1x5x5-flatten-5:sigmoid-2",
    ],
)
def test_specs_print_back_to_themselves(spec):
    net = Network.from_spec(spec)
    assert Network.from_spec(net.spec).spec == net.spec


@pytest.mark.parametrize(
    "spec, message",
    [
        ("784-conv32k3-relu-10", "'conv32k3' cannot take the 784 input it meets: a convolution needs an image"),
        ("1x5x5-conv8k3-relu-maxpool4-10", "'maxpool4' cannot take the 8x3x3 input it meets: the 4×4 window"),
        ("1x4x4-conv8k7p1-10", "'conv8k7p1' cannot take the 1x4x4 input .* 7×7 kernel is larger than the 6×6"),
        ("1x28x28-conv32x3-10", "unknown layer 'conv32x3'"),
        ("1x28x28-lstm64-10", "unknown layer 'lstm64'"),
        ("1x28x28-conv8k3-relu", "must end in its dense output layer.* ends in 'relu'"),
        ("1x28x28-dropout1.5-10", "dropout rate must be a probability"),
        ("28x28-10", "cannot read network spec"),
        ("0x28x28-10", "input size must be positive"),
    ],
)
def test_specs_that_do_not_fit_are_refused_naming_the_token_and_shape(spec, message):
    with pytest.raises(SpecError, match=message):
        Network.from_spec(spec)


# -- inputs -------------------------------------------------------------------------------------------


def test_flat_rows_channels_first_and_single_channel_images_give_the_same_answers(rng):
    net = Network.from_spec("1x6x7-conv3k3-relu-flatten-4", seed=0)
    X = rng.random((5, 42), dtype=np.float32)
    P = net.predict_proba(X)
    np.testing.assert_array_equal(net.predict_proba(X.reshape(5, 1, 6, 7)), P)
    np.testing.assert_array_equal(net.predict_proba(X.reshape(5, 6, 7)), P)
    with pytest.raises(ValueError, match=r"X must have shape \(m, 42\), \(m, 1, 6, 7\), \(m, 6, 7\)"):
        net.predict(X.reshape(5, 7, 6))


def test_flat_rows_of_several_channels_are_read_channel_by_channel(rng):
    # Flat rows are C·H·W in channel-major order, as PyTorch flattens NCHW: channel 1 is the second block.
    net = Network((2, 3, 3), [Conv2D(1, 1), Flatten(), Dense(2)], seed=0, dtype="float64")
    net.layers[0].W[0, 0, :, 0] = [0.0, 1.0]  # a 1×1 filter that passes channel 1 only
    net.layers[0].b[...] = 0.0
    X = rng.random((4, 2, 3, 3))
    hidden = net.layer_outputs(X.reshape(4, -1))[0]
    assert hidden.shape == (4, 1, 3, 3)
    np.testing.assert_array_equal(hidden[:, 0], X[:, 1])


def test_prediction_chunks_do_not_change_the_answers(rng):
    net = Network.from_spec(SMALL, seed=0)
    X, _ = images(rng, m=23)
    # equal up to float32 rounding: the matrix products sum in a different order for other batch sizes
    np.testing.assert_allclose(net.predict_proba(X, batch_size=4), net.predict_proba(X), rtol=1e-5)


# -- parameters, state and modes ------------------------------------------------------------------------


def test_params_are_one_live_buffer_and_gradient_matches_its_layout(rng):
    net = Network.from_spec(SMALL, seed=0, dtype="float64")
    X, y = images(rng, m=8)
    slot = next(s for s in net.layout.slots if s.layer == 4 and s.name == "W")  # the second convolution
    assert np.shares_memory(net.layers[4].W, net.params)
    before = net.predict_proba(X)
    net.params[slot.offset] += 1.0  # writing into the flat buffer changes the network
    assert net.layers[4].W.reshape(-1)[0] == net.params[slot.offset]
    assert not np.array_equal(net.predict_proba(X), before)
    loss, g = net.gradient(X, y)
    assert g.shape == net.params.shape and np.isfinite(loss)
    _, grads = net.loss_and_grads(X, y)
    assert [tuple(a.shape for a in pair) for pair in grads] == [
        ((3, 3, 1, 4), (4,)),
        ((4,), (4,)),
        ((2, 2, 4, 6), (6,)),
        ((24, 12), (12,)),
        ((12,), (12,)),
        ((12, 3), (3,)),
    ]


def test_running_statistics_are_state_the_optimiser_never_sees(rng):
    net = Network.from_spec(SMALL, seed=0)
    X, y = images(rng)
    assert net.state.size == 2 * (4 + 12) and net.n_params == net.params.size
    state_before, params_before = net.state.copy(), net.params.copy()
    net.gradient(X, y)  # analysis only: nothing changes
    np.testing.assert_array_equal(net.state, state_before)
    train(net, X, y, TrainConfig(epochs=2, batch_size=8, validation_size=0))
    assert not np.array_equal(net.state, state_before) and not np.array_equal(net.params, params_before)
    bn = net.layers[1]
    assert isinstance(bn, BatchNorm) and np.all(bn.state["running_var"] > 0)


def test_prediction_is_deterministic_and_per_sample_while_training_uses_the_batch(rng):
    net = Network.from_spec(SMALL, seed=0)
    X, y = images(rng)
    train(net, X, y, TrainConfig(epochs=1, batch_size=8, validation_size=0))
    P = net.predict_proba(X)
    np.testing.assert_array_equal(net.predict_proba(X), P)  # dropout off, running statistics
    np.testing.assert_allclose(net.predict_proba(X[:1]), P[:1], rtol=1e-6)  # alone or in a batch, the same
    assert net.loss(X, y, training=True) != pytest.approx(net.loss(X, y))  # batch statistics while training


def test_save_and_load_keep_weights_state_and_answers(tmp_path, rng):
    net = Network.from_spec(SMALL, seed=1)
    X, y = images(rng)
    train(net, X, y, TrainConfig(epochs=1, batch_size=8, validation_size=0))
    net.metadata = {"test_accuracy": 0.5}
    loaded = Network.load(net.save(tmp_path / "cnn.npz"))
    assert loaded.spec == net.spec and loaded.metadata == net.metadata
    np.testing.assert_array_equal(loaded.params, net.params)
    np.testing.assert_array_equal(loaded.state, net.state)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    np.testing.assert_array_equal(net.copy().predict_proba(X), net.predict_proba(X))


@pytest.mark.parametrize("name", ["format1_mixed", "format1_uniform64"])
def test_format_1_files_load_and_predict_exactly_as_before(name):
    # Files written by nnscratch 0.1.0, with the probabilities it computed for fixed inputs.
    from pathlib import Path

    data = Path(__file__).parent / "data"
    net = Network.load(data / f"{name}.npz")
    assert net.is_mlp and net.metadata["note"].endswith("model format 1")
    inputs, recorded = np.load(data / "format1_inputs.npy"), np.load(data / f"{name}_proba.npy")
    P = net.predict_proba(inputs)
    assert P.dtype == recorded.dtype == net.dtype
    # The recorded probabilities were computed on another CPU, whose BLAS may sum each layer's products
    # in another order.  Every sum here has at most 12 terms, so reordering it moves it by at most
    # 12 units in the last place of its terms (Higham's gamma_12); the activations carry that forward
    # without amplifying it (each is at most about 1.05-Lipschitz), so six layers deep the probabilities
    # differ by at most about 6 * 12 = 72 ulps: 128 machine epsilons leaves room, in float32 and float64.
    np.testing.assert_allclose(P, recorded, rtol=0, atol=128 * np.finfo(net.dtype).eps)
    np.testing.assert_array_equal(P.argmax(axis=1), recorded.argmax(axis=1))


# -- checkpoints -----------------------------------------------------------------------------------------


def test_resume_with_batch_norm_and_dropout_matches_an_uninterrupted_run_bit_for_bit(tmp_path, rng):
    X, y = images(rng, m=60)
    config = TrainConfig(epochs=4, batch_size=16, validation_size=12, early_stopping=3, seed=3)
    whole = Network.from_spec(SMALL, seed=2)
    train(whole, X, y, config)

    with pytest.raises(Interrupted):
        train(Network.from_spec(SMALL, seed=2), X, y, config, checkpoint_dir=tmp_path, callback=stop_after_epoch(2))
    resumed, history = resume(tmp_path, X, y)
    assert len(history) == 4
    np.testing.assert_array_equal(resumed.params, whole.params)
    np.testing.assert_array_equal(resumed.state, whole.state)


def test_early_stopping_restores_the_best_running_statistics_too(rng):
    X, y = images(rng, m=60)
    net = Network.from_spec(SMALL, seed=0)
    snapshots = {}
    from nnscratch.training import Callback

    class Keep(Callback):
        def on_epoch_end(self, net, record):
            snapshots[record.epoch] = (net.params.copy(), net.state.copy())

    trainer = Trainer(
        net, X, y, TrainConfig(epochs=6, batch_size=8, validation_size=12, early_stopping=2, learning_rate=0.05)
    )
    history = trainer.run(Keep())
    params, state = snapshots[history.best_epoch]
    np.testing.assert_array_equal(net.params, params)
    np.testing.assert_array_equal(net.state, state)


# -- gradients, one network per layer kind ------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "1x7x9-conv3k3-tanh-flatten-3",  # convolution, odd sizes
        "2x7x8-conv3k3s2p1-sigmoid-flatten-3",  # stride and padding
        "1x9x7-conv4k2-relu-maxpool2-flatten-3",  # max pooling, remainders dropped (and the ReLU reordering)
        "1x8x8-conv3k3-leaky_relu-maxpool3-flatten-3",  # a 3×3 window
        "1x7x7-conv4k3p1-bn-selu-flatten-3",  # batch norm per channel
        "13-9-bn-tanh-3",  # batch norm per unit
        "1x6x6-conv3k3-relu-flatten-dropout0.4-5:selu-3",  # a dropout layer, masks fixed by the seed
        "2x5x5-conv4k2-softmax-flatten-3",  # softmax across channels as a hidden activation
    ],
)
def test_every_parameter_of_every_layer_kind_passes_the_gradient_check(spec, rng):
    net = Network.from_spec(spec, seed=0, dtype="float64")
    X = rng.random((5, net.n_in))
    y = rng.integers(0, net.n_classes, 5)
    results = check_gradients(net, X, y, l2=0.01)
    assert sum(r.checked for r in results) == net.n_params
    assert all(r.passed for r in results), [r for r in results if not r.passed]


def test_a_wrong_convolution_gradient_is_caught(rng, monkeypatch):
    original = Conv2D.backward

    def off_by_two(self, dY, cache, grads, *, need_dX=True):
        dX = original(self, dY, cache, grads, need_dX=need_dX)
        grads["W"] *= 2.0
        return dX

    monkeypatch.setattr(Conv2D, "backward", off_by_two)
    net = Network.from_spec("1x6x6-conv2k3-tanh-flatten-3", seed=0, dtype="float64")
    results = check_gradients(net, rng.random((4, 36)), rng.integers(0, 3, 4))
    assert not results[0].passed and results[1].passed  # W is wrong, b is not


def test_relu_before_max_pooling_runs_after_it_with_exactly_the_same_results(rng):
    # The network pools first and applies the ReLU to the pooled values; the answers, the loss and
    # every gradient are bit for bit those of the written order, blank (tied) backgrounds included.
    spec = "1x8x8-conv3k3p1-relu-maxpool2-conv4k2-relu-maxpool2-flatten-3"
    swapped, written = Network.from_spec(spec, seed=0), Network.from_spec(spec, seed=0)
    assert swapped.stack().order == [0, 2, 1, 3, 5, 4, 6, 7]
    written.stack().order = list(range(len(written.layers)))
    X = rng.random((6, 64), dtype=np.float32)
    X[:3] = 0.0  # blank images: every window ties
    y = np.array([0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(swapped.predict_proba(X), written.predict_proba(X))
    (loss_a, g_a), (loss_b, g_b) = swapped.gradient(X, y), written.gradient(X, y)
    assert loss_a == loss_b
    np.testing.assert_array_equal(g_a, g_b)


def test_a_batch_of_one_leaves_the_running_statistics_alone(rng):
    net = Network.from_spec("5-4-bn-relu-2", seed=0)
    before = net.state.copy()
    net.loss_and_flat_grad(
        rng.random((1, 5), dtype=np.float32), np.array([1]), np.empty_like(net.params), update_state=True
    )
    np.testing.assert_array_equal(net.state, before)


def test_layers_below_the_first_with_weights_need_no_gradient(rng):
    net = Network.from_spec("1x6x6-maxpool2-flatten-dropout0.2-4:relu-3", seed=0, dtype="float64")
    X, y = rng.random((6, 36)), rng.integers(0, 3, 6)
    assert all(r.passed for r in check_gradients(net, X, y))
    history = train(net, X, y, TrainConfig(epochs=2, batch_size=3, validation_size=0))
    assert len(history) == 2


def test_maxpool_on_a_blank_background_trains_like_pytorch_would(rng):
    # Constant regions tie inside every window; the gradient must still reach only one position each.
    net = Network.from_spec("1x6x6-conv2k3p1-maxpool2-flatten-3", seed=0, dtype="float64")
    X = np.zeros((3, 36))
    X[:, 14] = 1.0
    results = check_gradients(net, X, np.array([0, 1, 2]))
    assert all(r.passed for r in results)
    assert isinstance(net.layers[1], MaxPool2D)
