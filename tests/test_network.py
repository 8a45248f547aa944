"""The network: specs, initialisation, predictions, loss and gradients, saving and loading."""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.errors import ModelFileError, SpecError
from nnscratch.network import LayerSpec, Network, parse_hidden, parse_spec

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
    assert parse_hidden("32:relu, 64:Tanh,16") == [LayerSpec(32, "relu"), LayerSpec(64, "tanh"), LayerSpec(16, "relu")]
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
