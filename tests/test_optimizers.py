"""Optimisers against their textbook update rules, and schedules against their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnscratch.parallel
from nnscratch.errors import SpecError
from nnscratch.optimizers import SGD, Adam, AdamW, Momentum, make_optimizer
from nnscratch.parallel import thread_pool
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


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_every_optimiser_steps_the_same_on_one_thread_and_on_three(name, monkeypatch):
    monkeypatch.setattr(nnscratch.parallel, "GRAIN", 1)  # split however small: 10 values in chunks of 3, 3, 4
    finals = []
    for n in (1, 3):
        optimizer = make_optimizer(name, weight_decay=0.1, decayed=[(0, 6)])
        optimizer.pool = thread_pool(n)
        params = np.linspace(-1.0, 1.0, 10)
        for step in range(3):
            optimizer.step(params, np.random.default_rng(step).standard_normal(10), 0.1)
        finals.append(params)
    np.testing.assert_array_equal(finals[1], finals[0])
    assert not np.array_equal(finals[0], np.linspace(-1.0, 1.0, 10))


def test_optimiser_state_is_empty_before_the_first_step_and_restores_to_fresh():
    for name in ("momentum", "adam"):
        fresh = make_optimizer(name)
        assert fresh.state() in ({}, {"t": 0})
        stepped = make_optimizer(name)
        stepped.step(np.ones(3), np.ones(3), 0.1)
        stepped.load_state(fresh.state())  # back to the start: the next step is a first step again
        a, b = np.ones(3), np.ones(3)
        stepped.step(a, np.full(3, 0.5), 0.1)
        make_optimizer(name).step(b, np.full(3, 0.5), 0.1)
        np.testing.assert_array_equal(a, b)


def test_settings_at_the_edges_of_their_ranges():
    assert Momentum(0.0).momentum == 0.0 and Adam(beta1=0.0, beta2=0.0).beta1 == 0.0
    for bad in (1.0, -0.1):
        with pytest.raises(SpecError, match=r"momentum must be in \[0, 1\)"):
            Momentum(bad)
        with pytest.raises(SpecError, match=r"beta1 must be in \[0, 1\)"):
            Adam(beta1=bad)
        with pytest.raises(SpecError, match=r"beta2 must be in \[0, 1\)"):
            Adam(beta2=bad)
    with pytest.raises(SpecError, match="eps must be positive"):
        Adam(eps=0.0)


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_state_is_a_snapshot_that_later_steps_leave_alone(name):
    optimizer = make_optimizer(name)
    optimizer.step(np.ones(3), np.ones(3), 0.1)
    saved = optimizer.state()
    frozen = {key: np.copy(value) for key, value in saved.items()}
    optimizer.step(np.ones(3), np.full(3, 2.0), 0.1)
    other = make_optimizer(name)
    other.load_state(saved)
    other.step(np.ones(3), np.full(3, 3.0), 0.1)
    for key, value in frozen.items():
        np.testing.assert_array_equal(saved[key], value)  # neither optimiser wrote into the saved arrays


def test_adamw_takes_a_finite_decay_from_zero_up():
    assert AdamW(0.0).weight_decay == 0.0
    for bad in (-0.1, float("inf"), float("nan")):
        with pytest.raises(SpecError, match="weight decay must be a number >= 0"):
            AdamW(bad)
