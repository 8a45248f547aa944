"""Each activation: forward/backward agree with finite differences, formulas hold, extremes are safe."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nnscratch.activations import ACTIVATIONS, SELU_ALPHA, SELU_LAMBDA, get_activation
from nnscratch.errors import SpecError

NAMES = sorted(ACTIVATIONS)


def numeric_vjp(act, z, da, h=1e-6):
    """d/dz of sum(da * f(z)), by central differences, one entry at a time."""
    out = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        out[idx] = (np.sum(da * act.forward(zp)) - np.sum(da * act.forward(zm))) / (2 * h)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_finite_differences(name, rng):
    act = ACTIVATIONS[name]()
    z = rng.normal(0, 2, (5, 7))
    z[np.abs(z) < 1e-3] = 0.5  # keep away from the kinks of relu/selu, where no derivative exists
    da = rng.normal(size=z.shape)
    a = act.forward(z)
    analytic = act.backward(z, a, da.copy())
    np.testing.assert_allclose(analytic, numeric_vjp(act, z, da), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_is_finite_and_silent_at_pm_1000(name):
    act = ACTIVATIONS[name]()
    for dtype in (np.float32, np.float64):
        z = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0], [1e4, -1e4, 3.0, -3.0, 0.0]], dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                a = act.forward(z)
                dz = act.backward(z, a, np.ones_like(z))
        assert a.dtype == dtype and dz.dtype == dtype
        assert np.all(np.isfinite(a)) and np.all(np.isfinite(dz))


@pytest.mark.parametrize("name", NAMES)
def test_output_keeps_shape(name, rng):
    z = rng.normal(size=(3, 4)).astype(np.float32)
    assert ACTIVATIONS[name]().forward(z).shape == (3, 4)


def test_sigmoid_extremes_and_derivative_formula():
    s = get_activation("sigmoid")
    a = s.forward(np.array([[-1000.0, 0.0, 1000.0]]))
    np.testing.assert_array_equal(a, [[0.0, 0.5, 1.0]])
    z = np.array([[0.3, -1.2]])
    a = s.forward(z)
    np.testing.assert_allclose(a, 1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(s.backward(z, a, np.ones_like(z)), a * (1 - a))


def test_tanh_derivative_is_one_minus_a_squared():
    t = get_activation("tanh")
    z = np.array([[0.0, 0.5, -2.0]])
    a = t.forward(z)
    np.testing.assert_allclose(t.backward(z, a, np.ones_like(z)), 1 - np.tanh(z) ** 2)


def test_selu_uses_exact_constants_and_formula():
    assert SELU_ALPHA == pytest.approx(1.6732632423543772, abs=1e-15)
    assert SELU_LAMBDA == pytest.approx(1.0507009873554805, abs=1e-15)
    s = get_activation("selu")
    z = np.array([[-1.0, 2.0, 1000.0, -1000.0]])
    a = s.forward(z)
    np.testing.assert_allclose(a[0, :2], [SELU_LAMBDA * SELU_ALPHA * (np.exp(-1) - 1), SELU_LAMBDA * 2.0])
    assert a[0, 2] == pytest.approx(SELU_LAMBDA * 1000)
    assert a[0, 3] == pytest.approx(-SELU_LAMBDA * SELU_ALPHA)  # the negative saturation value
    d = s.backward(z, a, np.ones_like(z))
    np.testing.assert_allclose(d[0, :2], [SELU_LAMBDA * SELU_ALPHA * np.exp(-1), SELU_LAMBDA])


def test_relu_zeroes_negatives_and_their_gradient():
    r = get_activation("relu")
    z = np.array([[-2.0, 0.0, 3.0]])
    a = r.forward(z)
    np.testing.assert_array_equal(a, [[0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(r.backward(z, a, np.full_like(z, 5.0)), [[0.0, 0.0, 5.0]])


def test_leaky_relu_keeps_a_small_slope():
    r = get_activation("leaky_relu")
    z = np.array([[-2.0, 3.0]])
    np.testing.assert_allclose(r.forward(z), [[-0.02, 3.0]])
    np.testing.assert_allclose(r.backward(z, r.forward(z), np.ones_like(z)), [[0.01, 1.0]])


def test_softmax_rows_sum_to_one_and_survive_huge_logits(rng):
    s = get_activation("softmax")
    P = s.forward(rng.normal(0, 10, (6, 10)))
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        P = s.forward(np.array([[1e4, -1e4]]))
    np.testing.assert_array_equal(P, [[1.0, 0.0]])


def test_softmax_backward_equals_the_full_jacobian(rng):
    s = get_activation("softmax")
    z = rng.normal(size=(3, 5))
    a = s.forward(z)
    da = rng.normal(size=z.shape)
    for i in range(3):
        J = np.diag(a[i]) - np.outer(a[i], a[i])  # J[j, k] = a_j (δ_jk - a_k)
        np.testing.assert_allclose(s.backward(z[i : i + 1], a[i : i + 1], da[i : i + 1].copy())[0], J.T @ da[i])


def test_unknown_activation_names_the_choices():
    with pytest.raises(SpecError, match="unknown activation 'swish'.*relu"):
        get_activation("swish")
    assert get_activation(" ReLU ").name == "relu"


def test_derivatives_at_zero_follow_the_documented_side():
    # At z = 0 exactly: ReLU and leaky ReLU take the left slope (0 and s), SELU the left one too
    # (a + λα = λα there, since a = 0), as their docstrings say; a >= in place of > changes these.
    z, ones = np.zeros((1, 3)), np.ones((1, 3))
    for name, slope in (("relu", 0.0), ("leaky_relu", 0.01), ("selu", SELU_LAMBDA * SELU_ALPHA)):
        act = get_activation(name)
        np.testing.assert_allclose(act.backward(z, act.forward(z), ones.copy()), slope, rtol=1e-12, err_msg=name)
