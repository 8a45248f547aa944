"""The network: specs, initialisation, predictions, loss and gradients, saving and loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnscratch.errors import ModelFileError, SpecError
from nnscratch.io import load_npz, save_npz
from nnscratch.layers import AlphaDropout, Dense, Dropout
from nnscratch.layers.dropout import SELU_SATURATION
from nnscratch.network import DenseSpec, Network, parse_hidden, parse_spec

SEED_SPEC = "784-32:relu-32:sigmoid-64:selu-64:tanh-10:softmax"


def test_seed_spec_builds_the_original_network():
    net = Network.from_spec(SEED_SPEC, seed=0, dtype="float64")
    assert [layer.W.shape for layer in net.layers] == [(784, 32), (32, 32), (32, 64), (64, 64), (64, 10)]
    assert [layer.b.shape for layer in net.layers] == [(32,), (32,), (64,), (64,), (10,)]
    # the output layer produces logits: the loss owns the softmax
    assert [layer.activation.name for layer in net.layers] == ["relu", "sigmoid", "selu", "tanh", "identity"]
    assert net.spec == SEED_SPEC
    assert net.n_params == 784 * 32 + 32 + 32 * 32 + 32 + 32 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10
    assert net.dtype == np.float64


def test_same_seed_gives_same_weights():
    a, b = Network.from_spec(SEED_SPEC, seed=7), Network.from_spec(SEED_SPEC, seed=7)
    c = Network.from_spec(SEED_SPEC, seed=8)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)


def test_default_initialisation_matches_each_activation():
    net = Network.from_spec("1000-800:relu-800:selu-800:tanh-10:softmax", seed=0, dtype="float64")
    relu, selu, tanh, _ = net.layers
    assert relu.init == "he" and relu.W.std() == pytest.approx(np.sqrt(2 / 1000), rel=0.02)
    assert selu.init == "lecun" and selu.W.std() == pytest.approx(np.sqrt(1 / 800), rel=0.02)
    limit = np.sqrt(6 / 1600)
    assert tanh.init == "glorot" and np.abs(tanh.W).max() <= limit
    assert tanh.W.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert all(np.all(layer.b == 0) for layer in net.layers)


def test_original_uniform_initialisation_covers_weights_and_biases():
    net = Network.from_spec(SEED_SPEC, seed=0, init="uniform")
    for layer in net.layers:
        for p in (layer.W, layer.b):
            assert np.abs(p).max() <= 0.3 and np.abs(p).max() > 0.25


@pytest.mark.parametrize(
    "spec, message",
    [
        ("784", "cannot read network spec"),
        ("x-10:softmax", "cannot read network spec"),
        ("784-32:relu-10:relu", "output layer must use softmax"),
        ("784-32:swish-10:softmax", "unknown activation 'swish'"),
        ("784-0:relu-10:softmax", "positive number of units"),
        ("784-32relu-10:softmax", "cannot read layer"),
    ],
)
def test_malformed_specs_are_refused_with_a_reason(spec, message):
    with pytest.raises(SpecError, match=message):
        Network.from_spec(spec)


def test_parse_helpers():
    assert parse_hidden("32:relu, 64:Tanh,16") == [DenseSpec(32, "relu"), DenseSpec(64, "tanh"), DenseSpec(16, "relu")]
    assert parse_hidden("") == []
    input_shape, layers = parse_spec("20-5:selu:uniform-3")
    assert input_shape == (20,) and [layer.token for layer in layers] == ["5:selu", "3:identity"]
    assert [layer.init for layer in layers] == ["uniform", None]


def test_unknown_dtype_and_init_are_refused():
    with pytest.raises(SpecError, match="dtype"):
        Network.from_spec("4-2:softmax", dtype="int32")
    with pytest.raises(SpecError, match="initialiser"):
        Network.from_spec("4-2:softmax", init="zeros")


def test_predict_proba_rows_sum_to_one_and_predict_is_its_argmax(rng):
    net = Network.from_spec("12-8:tanh-4:softmax", seed=0)
    X = rng.random((50, 12))
    P = net.predict_proba(X, batch_size=7)
    assert P.shape == (50, 4) and P.dtype == np.float32
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(net.predict(X, batch_size=7), P.argmax(axis=1))
    assert net.predict(X[0]).shape == (1,)  # one flat sample is accepted


def test_wrong_input_shape_and_labels_are_explained(rng):
    net = Network.from_spec("12-4:softmax", seed=0)
    with pytest.raises(ValueError, match=r"shape \(m, 12\)"):
        net.predict(rng.random((3, 11)))
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 4\)"):
        net.loss_and_grads(rng.random((3, 12)), [0, 1, 4])
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        net.loss_and_grads(rng.random((3, 12)), [0, 1])


def test_loss_is_mean_cross_entropy_plus_half_l2(rng):
    net = Network.from_spec("6-5:sigmoid-3:softmax", seed=0, dtype="float64")
    X, y = rng.random((4, 6)), np.array([0, 2, 1, 2])
    P = net.predict_proba(X)
    ce = -np.mean(np.log(P[np.arange(4), y]))
    loss, _ = net.loss_and_grads(X, y)
    assert loss == pytest.approx(ce)
    l2 = 0.3
    penalty = 0.5 * l2 * sum(np.sum(layer.W**2) for layer in net.layers)
    loss_l2, grads_l2 = net.loss_and_grads(X, y, l2=l2)
    assert loss_l2 == pytest.approx(ce + penalty)
    _, grads = net.loss_and_grads(X, y)
    for layer, (dW, db), (dW2, db2) in zip(net.layers, grads, grads_l2, strict=True):
        np.testing.assert_allclose(dW2, dW + l2 * layer.W)  # biases are not penalised
        np.testing.assert_allclose(db2, db)
    assert net.loss(X, y, l2=l2) == pytest.approx(loss_l2)


def test_output_gradient_is_p_minus_y_over_m(rng):
    net = Network.from_spec("6-3:softmax", seed=0, dtype="float64")  # one layer: dW = Xᵀ (P - Y)/m
    X, y = rng.random((5, 6)), np.array([0, 1, 2, 1, 0])
    P = net.predict_proba(X)
    Y = np.eye(3)[y]
    _, [(dW, db)] = net.loss_and_grads(X, y)
    np.testing.assert_allclose(dW, X.T @ (P - Y) / 5)
    np.testing.assert_allclose(db, (P - Y).mean(axis=0))


def test_save_and_load_round_trip(tmp_path, rng):
    net = Network.from_spec(SEED_SPEC, seed=3, dtype="float64")
    net.metadata = {"test_accuracy": 0.97, "note": "x"}
    path = net.save(tmp_path / "m.npz")
    loaded = Network.load(path)
    assert loaded.spec == net.spec and loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded.params, net.params)
    assert loaded.metadata == net.metadata
    assert [layer.init for layer in loaded.layers] == [layer.init for layer in net.layers]
    X = rng.random((4, 784))
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary file left behind


def test_save_into_a_missing_directory_fails_without_leaving_files(tmp_path):
    net = Network.from_spec("4-2:softmax", seed=0)
    with pytest.raises(FileNotFoundError):
        net.save(tmp_path / "nope" / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_loading_a_missing_or_garbage_file_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        Network.load(tmp_path / "missing.npz")
    garbage = tmp_path / "g.npz"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match="not an .npz archive"):
        Network.load(garbage)


def test_copy_is_independent():
    net = Network.from_spec("4-3:relu-2:softmax", seed=0)
    twin = net.copy()
    twin.layers[0].W[0, 0] += 1
    assert net.layers[0].W[0, 0] != twin.layers[0].W[0, 0]


def test_from_layers_builds_the_mlp_its_specs_describe(rng):
    specs = [DenseSpec(5, "tanh"), DenseSpec(4, "relu", "uniform"), DenseSpec(3, "softmax", "lecun")]
    net = Network.from_dense(6, specs, seed=2, dtype="float64")
    assert net.spec == "6-5:tanh-4:relu-3:softmax" and net.dtype == np.float64
    assert [layer.init for layer in net.layers] == ["glorot", "uniform", "lecun"]
    same = Network.from_spec("6-5:tanh-4:relu:uniform-3:softmax:lecun", seed=2, dtype="float64")
    np.testing.assert_array_equal(net.params, same.params)
    with pytest.raises(SpecError, match="at least an output layer"):
        Network.from_dense(6, [])
    with pytest.raises(SpecError, match="output layer must use softmax .* not 'relu'"):
        Network.from_dense(6, [DenseSpec(3, "relu")])


def test_a_softmax_output_layer_given_directly_produces_logits(rng):
    net = Network(4, [Dense(8, "tanh"), Dense(3, "softmax")], seed=0, dtype="float64")
    assert net.layers[-1].activation.name == "identity"  # the loss owns the softmax: not applied twice
    X = rng.random((5, 4))
    Z = np.tanh(X @ net.layers[0].W + net.layers[0].b) @ net.layers[1].W + net.layers[1].b
    np.testing.assert_allclose(net.predict_proba(X), np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3), (0,), (3, 0, 4), (4.0,), ()])
def test_an_input_shape_that_is_not_n_or_c_h_w_is_refused(shape):
    with pytest.raises(SpecError, match=r"input shape must be \(n,\) or \(C, H, W\)"):
        Network(shape, [Dense(2)])


def test_is_mlp_only_for_dense_layers_on_flat_input():
    assert Network.from_spec("6-5:tanh-3").is_mlp
    assert not Network.from_spec("6-5-bn-tanh-3").is_mlp  # flat, but a batch-norm layer
    assert not Network.from_spec("1x4x4-flatten-3").is_mlp  # dense only, but on images


def test_copy_keeps_metadata_and_state_of_its_own():
    net = Network.from_spec("4-3-bn-relu-2", seed=0)
    net.metadata = {"note": "x"}
    net.state[...] = 0.5
    twin = net.copy()
    assert twin.metadata == {"note": "x"} and twin.spec == net.spec
    np.testing.assert_array_equal(twin.state, net.state)
    twin.state[...] = 2.0
    twin.metadata["note"] = "y"
    assert np.all(net.state == 0.5) and net.metadata == {"note": "x"}


def test_inputs_are_checked_and_converted_to_the_networks_dtype(rng):
    net = Network.from_spec("12-3:softmax", seed=0)
    with pytest.raises(ValueError, match=r"shape \(m, 12\)"):
        net.predict(rng.random((2, 6)))  # twelve values, but two rows of six
    with pytest.raises(ValueError, match=r"shape \(m, 12\)"):
        net.predict(rng.random(11))
    assert net.check_input(rng.integers(0, 2, (3, 12))).dtype == np.float32
    cnn = Network.from_spec("2x3x3-conv2k2-flatten-3", seed=0)
    images = cnn.check_input(rng.integers(0, 2, (4, 2, 3, 3)).astype(np.uint8))
    assert images.dtype == np.float32 and images.shape == (4, 3, 3, 2) and images.flags.c_contiguous
    for bad in (rng.random((4, 3, 3, 2)), rng.random((4, 2, 3, 3, 1)), rng.random((4, 17))):
        with pytest.raises(ValueError, match=r"X must have shape \(m, 18\), \(m, 2, 3, 3\) for this network"):
            cnn.predict(bad)


def test_labels_must_be_integers_in_range():
    net = Network.from_spec("4-3:softmax", seed=0)
    assert net.check_labels([0, 2, 1], 3).dtype == np.intp
    for bad in ([0, -1, 2], [0, 3, 1], [0.0, 1.0, 2.0]):
        with pytest.raises(ValueError, match=r"labels must be integers in \[0, 3\)"):
            net.check_labels(bad, 3)


def test_training_dropout_never_drops_the_output_logits(rng):
    net = Network.from_spec("6-50:relu-4:softmax", seed=0, dtype="float64")
    net.layers[1].b[...] = 1.0  # a logit is 0 only if its unit were dropped
    Z, caches = net.forward(rng.random((30, 6)), training=True, rng=rng, dropout=0.5)
    pairs = zip(caches.stack.layers, caches.values, strict=True)
    masks = [cache for layer, cache in pairs if isinstance(layer, Dropout)]
    assert caches.stack.layers[-1] is net.layers[-1] and np.count_nonzero(Z == 0) == 0
    assert len(masks) == 1 and np.mean(masks[0] == 0) == pytest.approx(0.5, abs=0.05)


def test_backward_stops_at_the_lowest_layer_with_weights(rng, monkeypatch):
    net = Network.from_spec("1x6x6-maxpool2-flatten-4:relu-3", seed=0, dtype="float64")

    def refuse(*args, **kwargs):
        raise AssertionError("a layer below the first with weights was asked for a gradient")

    monkeypatch.setattr(net.layers[0], "backward", refuse)
    monkeypatch.setattr(net.layers[1], "backward", refuse)
    asked, real = [], net.layers[2].backward

    def first_trained(dY, cache, grads, *, need_dX=True):
        asked.append(need_dX)
        return real(dY, cache, grads, need_dX=need_dX)

    monkeypatch.setattr(net.layers[2], "backward", first_trained)
    loss, grads = net.loss_and_grads(rng.random((3, 36)), [0, 1, 2])
    assert [g.shape for g in grads[0]] == [(9, 4), (4,)]
    assert asked == [False]  # and it skips its own dX, which nothing would read


def test_a_wide_convnet_predicts_in_default_chunks_as_row_by_row(rng):
    # 26·26 positions of 3·3 + 1 columns: more values per row than a chunk of MAX_PREDICT_ROWS rows allows
    net = Network.from_spec("1x28x28-conv4k3-flatten-3", seed=0)
    X = rng.random((3, 784), dtype=np.float32)
    np.testing.assert_allclose(net.predict_proba(X), net.predict_proba(X, batch_size=1), rtol=1e-5)
    np.testing.assert_array_equal(net.predict(X), net.predict(X, batch_size=1))


def test_model_files_are_written_as_format_2(tmp_path):
    path = Network.from_spec("4-3:softmax", seed=0).save(tmp_path / "m.npz")
    header, _ = load_npz(path)
    assert header["format"] == "nnscratch-model" and header["version"] == 2


def test_penalties_reach_the_weights_and_never_the_biases(rng):
    net = Network.from_spec("5-4:tanh-3:softmax", seed=0, dtype="float64")
    for layer in net.layers:
        layer.b[...] = rng.normal(size=layer.b.shape)  # nonzero: a penalised bias would show
    net.layers[0].W[0, 0] = 0.0  # L1's subgradient there is 0
    X, y = rng.random((6, 5)), rng.integers(0, 3, 6)
    _, plain = net.loss_and_grads(X, y)
    loss, penalised = net.loss_and_grads(X, y, l2=0.3, l1=0.2)
    weights = [layer.W for layer in net.layers]
    expected = net.loss(X, y) + 0.15 * sum(np.sum(W**2) for W in weights) + 0.2 * sum(np.abs(W).sum() for W in weights)
    assert loss == pytest.approx(expected, rel=1e-12)
    for W, (dW, db), (dW_p, db_p) in zip(weights, plain, penalised, strict=True):
        np.testing.assert_allclose(dW_p, dW + 0.3 * W + 0.2 * np.sign(W), rtol=1e-12)
        np.testing.assert_array_equal(db_p, db)


def test_flat_buffers_given_to_from_header_are_checked_and_copied():
    bn = Network.from_spec("4-3-bn-relu-2", seed=0)
    header, params, state = bn.header(), bn.params.copy(), bn.state.copy()
    loaded = Network.from_header(header, {}, source="ckpt", params=params, state=state)
    np.testing.assert_array_equal(loaded.params, params)
    loaded.params[...] = 0.0
    loaded.state[...] = 0.0
    assert np.all(params == bn.params) and np.all(state == bn.state)  # the network owns its buffers
    for bad_params, bad_state in ((params, None), (params[:-1], state), (params, np.full_like(state, np.nan))):
        with pytest.raises(ModelFileError, match="do not fit the architecture|the state hold non-finite values"):
            Network.from_header(header, {}, source="ckpt", params=bad_params, state=bad_state)
    mlp = Network.from_spec("4-2:softmax", seed=0)  # no state at all: none needed
    assert Network.from_header(mlp.header(), {}, source="ckpt", params=mlp.params, state=None).state.size == 0


def test_buffers_of_the_wrong_size_or_dtype_are_refused():
    with pytest.raises(ValueError, match="params must be a flat float32 array of 10 values"):
        Network(4, [Dense(2)], params=np.zeros(9, dtype=np.float32))
    with pytest.raises(ValueError, match="params must be a flat float32 array of 10 values"):
        Network(4, [Dense(2)], params=np.zeros(10, dtype=np.float64))
    with pytest.raises(SpecError, match="initialiser"):  # a bad name is refused even when weights are given
        Network(4, [Dense(2)], params=np.zeros(10, dtype=np.float32), init="zeros")


def test_a_format_1_file_with_an_extra_array_still_loads(tmp_path):
    original = Path(__file__).parent / "data" / "format1_uniform64.npz"
    header, arrays = load_npz(original)
    path = save_npz(tmp_path / "extra.npz", {**arrays, "bias_note": np.zeros(2), "W": np.zeros(1)}, header)
    np.testing.assert_array_equal(Network.load(path).params, Network.load(original).params)


@pytest.mark.parametrize(
    "spec, init",
    [
        ("1x6x6-conv2k3-relu-flatten-3", "he"),
        ("1x6x6-conv2k3-tanh-flatten-3", "glorot"),
        ("1x6x6-conv2k3-selu-flatten-3", "lecun"),
        ("1x6x6-conv2k3-flatten-3", "glorot"),  # feeds the linear output
        ("6-4-bn-selu-3", "lecun"),  # through batch norm to the activation
    ],
)
def test_a_layer_without_an_activation_takes_the_init_of_the_activation_it_feeds(spec, init):
    assert Network.from_spec(spec).layers[0].init == init


def test_a_layers_own_initialiser_wins_over_the_networks():
    net = Network.from_spec("6-5:tanh:uniform-4:relu-3", init="lecun")
    assert [layer.init for layer in net.layers] == ["uniform", "lecun", "lecun"]


def test_the_decayed_ranges_are_the_weights_in_the_flat_buffer():
    net = Network.from_spec("6-5:tanh-4-bn-relu-3", seed=0)
    # W0 (6·5) at 0, b0 (5) at 30, W1 (5·4) at 35, b1 at 55, γ and β (4 each) at 59, W2 (4·3) at 67, b2 at 79
    assert net.decayed_ranges == [(0, 30), (35, 55), (67, 79)]
    for (start, stop), layer in zip(net.decayed_ranges, [net.layers[0], net.layers[1], net.layers[4]], strict=True):
        assert np.shares_memory(net.params[start:stop], layer.W) and stop - start == layer.W.size


def test_hidden_dropout_on_a_selu_layer_is_alpha_dropout(rng):
    net = Network.from_spec("6-40:selu-3:softmax", seed=0, dtype="float64")
    X, p = rng.random((25, 6)), 0.3
    Z, caches = net.forward(X, training=True, rng=np.random.default_rng(2), dropout=p)
    assert isinstance(caches.stack.layers[1], AlphaDropout)  # the network put it after layer 0
    a = ((1 - p) * (1 + p * SELU_SATURATION**2)) ** -0.5
    b = -a * p * SELU_SATURATION
    A = net.layers[0].forward(X)[0]
    dropped = caches.values[1] == 0
    assert dropped.mean() == pytest.approx(p, abs=0.05)
    seen = np.where(dropped, a * SELU_SATURATION + b, a * A + b)  # what the output layer is given
    np.testing.assert_allclose(Z, seen @ net.layers[1].W + net.layers[1].b, rtol=1e-12)


# -- networks that cannot fit in memory ----------------------------------------------------------

GB = 10**9


def small_machine(monkeypatch, memory: int = 16 * GB) -> None:
    """Pretend this machine has ``memory`` bytes, and fail any test that makes a network's buffers."""
    import nnscratch.network

    def no_arrays(*args, **kwargs):
        raise AssertionError("a network's buffers were allocated before it was refused")

    monkeypatch.setattr("nnscratch.layers.base.available_memory", lambda: memory)
    monkeypatch.setattr(nnscratch.network, "_buffer", no_arrays)


UNAFFORDABLE = [
    ("784-999999999-10", r"parameters need 3\.2 TB .* in '999999999:relu'.* has 16\.0 GB of memory; choose fewer"),
    ("1x28x28-conv999999k3-10", r"need 27\.1 GB.* in the output layer '10:softmax' on the 999999x26x26 input"),
    ("1x28x28-conv4k3p999999-10", r"one example needs .* TB in a forward pass, .* in 'conv4k3p999999'"),
    ("1x99999x99999-conv1k1-maxpool15-10", r"one example needs 160\.2 GB .* 120\.0 GB of them in 'conv1k1'"),
    ("1x28x28-conv1k1p20000-maxpool15-maxpool15-maxpool15-10", r"one example needs 25\.7 GB .* 'conv1k1p20000'"),
]


@pytest.mark.parametrize("spec, message", UNAFFORDABLE)
def test_a_network_that_cannot_fit_is_refused_from_its_shapes_before_any_array(spec, message, monkeypatch):
    import time
    import tracemalloc

    small_machine(monkeypatch)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(SpecError, match=message) as raised:
            Network.from_spec(spec)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - started < 0.5 and peak < 2**20
    assert "\n" not in str(raised.value)


def test_the_footprint_counts_parameters_state_and_one_examples_forward_pass():
    # 1x5x5-conv2k3p1-bn-flatten-10 in float64.  Parameters: conv 3·3·1·2 + 2 = 20, bn 2 + 2 = 4,
    # dense 50·10 + 10 = 510; state: bn's running mean and variance, 2 + 2.  Per example: the input 25;
    # the conv's padded input 7·7 = 49, its im2col columns 5·5·(9 + 1) = 250 and its output 2·5·5 = 50;
    # batch norm's output 50; flatten 0 (a view); the logits 10 (no activation, so no second array).
    net = Network.from_spec("1x5x5-conv2k3p1-bn-flatten-10", dtype="float64")
    footprint = net.footprint
    assert footprint.n_params == 534 == net.params.size
    assert footprint.param_bytes == (534 + 4) * 8 == net.params.nbytes + net.state.nbytes
    assert footprint.example_bytes == (25 + 49 + 250 + 50 + 50 + 0 + 10) * 8
    assert footprint.init_bytes == 510 * 8  # the dense layer's weights, drawn in float64
    assert footprint.widest == "'conv2k3p1'" and footprint.widest_bytes == 349 * 8


def test_a_model_whose_one_example_cannot_fit_is_refused_when_it_is_loaded(tmp_path, monkeypatch):
    spec = "1x28x28-conv1k1p20000-maxpool15-maxpool15-maxpool15-10"  # 6.6 kB on disk, 25.7 GB per example
    monkeypatch.setattr("nnscratch.layers.base.available_memory", lambda: 64 * GB)
    path = Network.from_spec(spec, seed=0).save(tmp_path / "tiny.npz")
    small_machine(monkeypatch)
    with pytest.raises(ModelFileError, match=r"tiny\.npz: one example needs 25\.7 GB .* 16\.0 GB of memory") as refused:
        Network.load(path)
    assert "corrupted" not in str(refused.value)  # the file is sound: this machine is too small for it


def test_prediction_chunks_hold_no_more_rows_than_memory_has_room_for(monkeypatch, rng):
    net = Network.from_spec("784-32-10", seed=0)  # per example (784 + 32·2 + 10)·4 = 3,432 bytes
    assert net.footprint.example_bytes == 3432
    # room for 5 rows: half of what the parameters leave is 5 examples and a bit
    memory = net.footprint.param_bytes + 2 * (5 * 3432 + 100)
    monkeypatch.setattr("nnscratch.layers.base.available_memory", lambda: memory)
    assert net._chunks(1000, 1000).step == 5 and net._chunks(1000, None).step == 5
    assert net._chunks(1000, 3).step == 3  # a smaller batch size is kept
    X = rng.random((12, 784), dtype=np.float32)
    expected = net.predict_proba(X, batch_size=1)
    np.testing.assert_allclose(net.predict_proba(X, batch_size=1000), expected, rtol=1e-5)  # float32 sums


def test_a_memory_error_while_building_is_a_spec_error(monkeypatch):
    # a machine that does not say how much memory it has: the allocation itself fails
    monkeypatch.setattr("nnscratch.layers.base.available_memory", lambda: None)

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.2 TiB")

    monkeypatch.setattr("nnscratch.network._buffer", no_memory)
    with pytest.raises(SpecError, match=r"out of memory building the network: its 25,450 parameters need 101\.8 kB"):
        Network.from_spec("784-32-10")


def test_training_batches_are_checked_against_memory_with_four_copies_of_the_parameters():
    footprint = Network.from_spec("784-32-10").footprint
    # the weights, their gradient and Adam's two moments, and three times each example's forward pass
    need = 4 * footprint.param_bytes + 3 * 64 * footprint.example_bytes
    footprint.check_batch(64, memory=need)
    with pytest.raises(SpecError, match=r"training on batches of 64 needs about 1\.1 MB: 407\.2 kB for the param"):
        footprint.check_batch(64, memory=need - 1)
