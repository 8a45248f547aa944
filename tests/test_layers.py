"""The dense layer: shapes, a hand-worked example, and gradients against finite differences."""

from __future__ import annotations

import numpy as np

from nnscratch.activations import get_activation
from nnscratch.layers import Dense


def make_layer(rng, n_in=4, n_out=3, activation="tanh"):
    return Dense(rng.normal(size=(n_in, n_out)), rng.normal(size=n_out), get_activation(activation))


def test_forward_shapes_and_formula(rng):
    layer = make_layer(rng)
    X = rng.normal(size=(5, 4))
    A, cache = layer.forward(X)
    assert A.shape == (5, 3)
    np.testing.assert_allclose(cache.Z, X @ layer.W + layer.b)
    np.testing.assert_allclose(A, np.tanh(cache.Z))


def test_hand_worked_example():
    # One sample x = [1, 2], W = [[1, -1], [0.5, 1]], b = [0, -1], ReLU.
    # Z = x W + b = [1*1 + 2*0.5 + 0, 1*(-1) + 2*1 - 1] = [2, 0];  A = relu(Z) = [2, 0].
    layer = Dense(np.array([[1.0, -1.0], [0.5, 1.0]]), np.array([0.0, -1.0]), get_activation("relu"))
    A, cache = layer.forward(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(A, [[2.0, 0.0]])
    # Upstream dA = [3, 4].  dZ = dA * [Z > 0] = [3, 0] (the unit at Z = 0 passes no gradient).
    # dW = xᵀ dZ = [[3, 0], [6, 0]];  db = [3, 0];  dX = dZ Wᵀ = [3*1 + 0*(-1), 3*0.5 + 0*1] = [3, 1.5].
    dX, dW, db = layer.backward(np.array([[3.0, 4.0]]), cache)
    np.testing.assert_array_equal(dW, [[3.0, 0.0], [6.0, 0.0]])
    np.testing.assert_array_equal(db, [3.0, 0.0])
    np.testing.assert_array_equal(dX, [[3.0, 1.5]])


def test_dense_backward_matches_finite_differences(rng):
    layer = make_layer(rng, activation="sigmoid")
    X = rng.normal(size=(6, 4))
    G = rng.normal(size=(6, 3))  # loss = sum(G * A)

    def loss():
        return float(np.sum(G * layer.forward(X)[0]))

    _, cache = layer.forward(X)
    dX, dW, db = layer.backward(G.copy(), cache)
    h = 1e-6
    for param, analytic in ((layer.W, dW), (layer.b, db)):
        numeric = np.zeros_like(param)
        for idx in np.ndindex(param.shape):
            saved = param[idx]
            param[idx] = saved + h
            plus = loss()
            param[idx] = saved - h
            minus = loss()
            param[idx] = saved
            numeric[idx] = (plus - minus) / (2 * h)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)
    numeric_dX = np.zeros_like(X)
    for idx in np.ndindex(X.shape):
        saved = X[idx]
        X[idx] = saved + h
        plus = loss()
        X[idx] = saved - h
        minus = loss()
        X[idx] = saved
        numeric_dX[idx] = (plus - minus) / (2 * h)
    np.testing.assert_allclose(dX, numeric_dX, rtol=1e-6, atol=1e-9)


def test_first_layer_skips_dx_and_writes_into_given_buffers(rng):
    layer = make_layer(rng)
    X = rng.normal(size=(5, 4))
    _, cache = layer.forward(X)
    dA = rng.normal(size=(5, 3))
    _, dW_ref, db_ref = layer.backward(dA.copy(), cache)
    dW, db = np.empty((4, 3)), np.empty(3)
    dX, dW_out, db_out = layer.backward(dA.copy(), cache, need_dX=False, out=(dW, db))
    assert dX is None and dW_out is dW and db_out is db
    np.testing.assert_allclose(dW, dW_ref)
    np.testing.assert_allclose(db, db_ref)


def test_assigning_weights_copies_into_the_shared_buffer(rng):
    flat = np.zeros(4 * 3 + 3)
    layer = Dense(flat[:12].reshape(4, 3), flat[12:], get_activation("relu"))
    layer.W = np.ones((4, 3))
    layer.b = np.full(3, 2.0)
    assert flat[:12].sum() == 12 and flat[12:].sum() == 6
