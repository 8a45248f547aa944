"""Optimisers against their textbook update rules, and schedules against their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnscratch.errors import SpecError
from nnscratch.optimizers import SGD, Adam, Momentum, make_optimizer
from nnscratch.schedules import Schedule


def run(opt, grads, lr=0.1):
    theta = np.array([1.0, -2.0, 3.0])
    for g in grads:
        opt.step(theta, g.copy(), lr)
    return theta


GRADS = [np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.3, -0.2]), np.array([-0.4, 0.2, 0.9])]


def test_sgd_subtracts_lr_times_gradient():
    np.testing.assert_allclose(run(SGD(), GRADS[:1]), [1.0 - 0.05, -2.0 + 0.1, 3.0 - 0.2])


def test_momentum_and_nesterov_follow_their_recurrences():
    for nesterov in (False, True):
        theta, v = np.array([1.0, -2.0, 3.0]), np.zeros(3)
        for g in GRADS:
            v = 0.9 * v + g
            theta = theta - 0.1 * (g + 0.9 * v if nesterov else v)
        np.testing.assert_allclose(run(Momentum(0.9, nesterov=nesterov), GRADS), theta)


def test_adam_matches_the_paper_with_bias_correction():
    theta, m, v = np.array([1.0, -2.0, 3.0]), np.zeros(3), np.zeros(3)
    for t, g in enumerate(GRADS, start=1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
        theta = theta - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)
    np.testing.assert_allclose(run(Adam(), GRADS), theta, rtol=1e-12)


def test_adam_first_step_moves_each_parameter_by_about_lr():
    theta = run(Adam(), GRADS[:1], lr=0.01)
    np.testing.assert_allclose(np.abs(theta - [1.0, -2.0, 3.0]), 0.01, rtol=1e-6)


def test_state_round_trip_continues_identically():
    a = Adam()
    run(a, GRADS[:2])
    b = Adam()
    b.load_state(a.state())
    theta_a, theta_b = np.ones(3), np.ones(3)
    a.step(theta_a, GRADS[2].copy(), 0.1)
    b.step(theta_b, GRADS[2].copy(), 0.1)
    np.testing.assert_array_equal(theta_a, theta_b)


def test_make_optimizer_by_name_and_bad_settings():
    assert isinstance(make_optimizer("adam"), Adam)
    assert make_optimizer("nesterov").nesterov
    with pytest.raises(SpecError, match="unknown optimiser 'rmsprop'"):
        make_optimizer("rmsprop")
    with pytest.raises(SpecError, match="momentum"):
        Momentum(1.5)


def test_schedules_follow_their_formulas():
    assert Schedule("constant").rate(0.1, 7.3) == 0.1
    step = Schedule("step", every=2, gamma=0.5)
    assert [step.rate(1.0, e) for e in (0, 1.9, 2.0, 4.5)] == [1.0, 1.0, 0.5, 0.25]
    cosine = Schedule("cosine", epochs=10)
    assert cosine.rate(1.0, 0) == 1.0 and cosine.rate(1.0, 5) == pytest.approx(0.5)
    assert cosine.rate(1.0, 10) == pytest.approx(0.0, abs=1e-12)
    assert cosine.rate(1.0, 2.5) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    wsd = Schedule("wsd", epochs=10)  # full rate for 8 epochs, then linear to 0
    assert [wsd.rate(1.0, e) for e in (0, 7.9, 8)] == pytest.approx([1.0, 1.0, 1.0])
    assert wsd.rate(1.0, 9) == pytest.approx(0.5) and wsd.rate(1.0, 10) == pytest.approx(0.0)


def test_unknown_schedule_is_refused():
    with pytest.raises(SpecError, match="unknown schedule 'linear'"):
        Schedule("linear")
