"""The loss: softmax cross-entropy with its fused gradient (P - Y)/m, stable at huge logits, and the penalties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from nnscratch.losses import NONE_OF_THEM, cross_entropy, l1_penalty, l2_penalty, softmax, softmax_cross_entropy


def reference(Z, y):
    """-mean log softmax(Z)[i, y_i] and (P - Y)/m, written out in float64 for moderate logits."""
    Z = np.asarray(Z, dtype=np.float64)
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    m = Z.shape[0]
    return -np.mean(np.log(P[np.arange(m), y])), (P - np.eye(Z.shape[1])[y]) / m


def test_hand_worked_example():
    # Two samples.  Row 0: Z = [0, 0], label 0 → P = [1/2, 1/2], loss ln 2, P - Y = [-1/2, 1/2].
    # Row 1: Z = [ln 3, 0], label 1 → P = [3/4, 1/4], loss ln 4, P - Y = [3/4, -3/4].
    # Mean loss (ln 2 + ln 4)/2 = 1.5 ln 2; dZ = (P - Y)/2.
    loss, dZ = softmax_cross_entropy(np.array([[0.0, 0.0], [math.log(3.0), 0.0]]), np.array([0, 1]))
    assert loss == pytest.approx(1.5 * math.log(2.0), rel=1e-12)
    np.testing.assert_allclose(dZ, [[-0.25, 0.25], [0.375, -0.375]], rtol=1e-12)


def test_loss_and_gradient_match_the_definition(rng):
    Z, y = rng.normal(0.0, 3.0, (7, 5)), rng.integers(0, 5, 7)
    loss, dZ = softmax_cross_entropy(Z.copy(), y)
    expected_loss, expected_dZ = reference(Z, y)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(dZ, expected_dZ, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(dZ.sum(axis=1), 0.0, atol=1e-15)  # each row of P - Y sums to 1 - 1


@pytest.mark.parametrize("none_of_them", [0, 2, 5], ids=["labels", "some-uniform", "all-uniform"])
def test_gradient_matches_finite_differences(rng, none_of_them):
    Z, y = rng.normal(size=(5, 3)), rng.integers(0, 3, 5)
    y[:none_of_them] = NONE_OF_THEM  # made-up non-digits: a uniform target
    _, dZ = softmax_cross_entropy(Z.copy(), y)
    h, numeric = 1e-6, np.zeros_like(Z)
    for idx in np.ndindex(Z.shape):
        up, down = Z.copy(), Z.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (softmax_cross_entropy(up, y)[0] - softmax_cross_entropy(down, y)[0]) / (2 * h)
    np.testing.assert_allclose(dZ, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_is_finite_and_silent_at_logits_of_pm_1e4(dtype):
    # Row 0 is certain and right (loss 0); row 1 is certain and wrong by 2e4 (loss 2e4).  Without the
    # row-max shift exp(1e4) overflows and the loss is inf or nan.
    Z = np.array([[1e4, -1e4], [1e4, -1e4]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            loss, dZ = softmax_cross_entropy(Z, np.array([0, 1]))
    assert loss == pytest.approx((0.0 + 2e4) / 2)
    np.testing.assert_array_equal(dZ, np.array([[0.0, 0.0], [0.5, -0.5]], dtype=dtype))
    assert dZ.dtype == dtype


def test_the_loss_does_not_change_when_a_row_is_shifted(rng):
    Z, y = rng.normal(size=(3, 4)), np.array([0, 3, 1])
    shifted = Z + np.array([[500.0], [-700.0], [0.25]])
    a, b = softmax_cross_entropy(Z.copy(), y), softmax_cross_entropy(shifted, y)
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    np.testing.assert_allclose(a[1], b[1], atol=1e-15)


def test_softmax_rows_sum_to_one_and_survive_huge_logits(rng):
    Z = rng.normal(0.0, 5.0, (6, 4))
    P = softmax(Z.copy())
    np.testing.assert_allclose(P, np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True), rtol=1e-12)
    with np.errstate(over="raise", invalid="raise"):
        np.testing.assert_array_equal(softmax(np.array([[1e4, -1e4, 1e4 - 1000.0]])), [[1.0, 0.0, 0.0]])


def test_cross_entropy_of_probabilities_is_the_mean_negative_log_and_finite_at_zero():
    P = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]])
    assert cross_entropy(P, np.array([0, 2])) == pytest.approx(-(math.log(0.5) + math.log(0.7)) / 2)
    with np.errstate(divide="raise"):
        huge = cross_entropy(P, np.array([2, 2]))  # a zero probability for the true class
    assert math.isfinite(huge) and huge > 300  # log(tiny) ≈ -708 in float64, clipped rather than -inf


def test_penalties_follow_their_formulas():
    weights = [np.array([[1.0, -2.0]]), np.array([3.0, 0.0, -0.5])]
    # L2: (λ/2) Σ W² = 0.1/2 · (1 + 4 + 9 + 0 + 0.25) = 0.7125;  L1: λ Σ |W| = 0.1 · 6.5 = 0.65
    assert l2_penalty(weights, 0.1) == pytest.approx(0.7125)
    assert l1_penalty(weights, 0.1) == pytest.approx(0.65)
    assert l2_penalty(weights, 0.0) == 0.0 and l1_penalty(weights, 0.0) == 0.0
    assert l2_penalty(weights, 1.0) == pytest.approx(7.125) and l1_penalty(weights, 1.0) == pytest.approx(6.5)


def test_an_example_of_no_class_is_pulled_towards_the_uniform_distribution():
    Z = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [3.0, 1.0, 0.0]])
    y = np.array([NONE_OF_THEM, NONE_OF_THEM, 0])
    loss, dZ = softmax_cross_entropy(Z.copy(), y)
    P = softmax(Z)
    # cross-entropy to uniform: logsumexp(z) - mean(z); for equal logits it is log k, the least it can be
    uniform = [np.log(np.exp(z).sum()) - z.mean() for z in Z[:2]]
    assert uniform[1] == pytest.approx(np.log(3))
    assert loss == pytest.approx((uniform[0] + uniform[1] - np.log(P[2, 0])) / 3)
    np.testing.assert_allclose(dZ[0], (P[0] - 1 / 3) / 3)
    np.testing.assert_allclose(dZ[1], 0.0, atol=1e-16)  # already uniform: nothing to learn
    np.testing.assert_allclose(dZ[2], (P[2] - [1, 0, 0]) / 3)
