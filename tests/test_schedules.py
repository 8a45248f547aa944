"""Learning-rate schedules at the points their formulas name, between them, past the end, and their settings."""

from __future__ import annotations

import math

import pytest

from nnscratch.errors import SpecError
from nnscratch.schedules import SCHEDULES, Schedule


def test_constant_is_the_base_rate_everywhere():
    constant = Schedule("constant", epochs=3)
    assert [constant.rate(0.02, e) for e in (0, 1.5, 3, 10)] == [0.02] * 4


def test_step_multiplies_by_gamma_every_few_epochs_even_mid_epoch():
    step = Schedule("step", epochs=10, every=1.5, gamma=0.5)
    # floor(epoch / 1.5): 0 up to 1.5, 1 up to 3, 2 up to 4.5
    assert [step.rate(0.8, e) for e in (0, 1.49, 1.5, 2.99, 3.0, 4.6)] == [0.8, 0.8, 0.4, 0.4, 0.2, 0.1]
    assert Schedule("step", every=2, gamma=1.0).rate(0.3, 9.0) == 0.3  # gamma 1 never decays


def test_cosine_falls_from_the_base_to_the_floor_over_the_run():
    cosine = Schedule("cosine", epochs=4, min_factor=0.1)
    # η_min + (η - η_min)(1 + cos(π e / 4))/2 with η = 2, η_min = 0.2
    for e in (0.0, 0.5, 1.0, 2.0, 3.25, 4.0):
        assert cosine.rate(2.0, e) == pytest.approx(0.2 + 1.8 * 0.5 * (1 + math.cos(math.pi * e / 4)), rel=1e-12)
    assert cosine.rate(2.0, 2.0) == pytest.approx(1.1)  # halfway: the mean of the base and the floor
    assert cosine.rate(2.0, 6.0) == pytest.approx(0.2)  # past the end it stays at the floor
    assert Schedule("cosine", epochs=1).rate(1.0, 0.5) == pytest.approx(0.5)


def test_wsd_keeps_the_full_rate_then_decays_linearly_over_the_last_fraction():
    wsd = Schedule("wsd", epochs=10, decay_fraction=0.4, min_factor=0.25)
    # the last 40% (epochs 6 to 10) fall linearly from 1.0 to 0.25
    assert [wsd.rate(1.0, e) for e in (0.0, 3.0, 6.0)] == [1.0, 1.0, 1.0]
    assert wsd.rate(1.0, 7.0) == pytest.approx(0.25 + 0.75 * 3 / 4)
    assert wsd.rate(1.0, 8.0) == pytest.approx(0.25 + 0.75 * 2 / 4)
    assert wsd.rate(1.0, 10.0) == pytest.approx(0.25)
    assert wsd.rate(1.0, 12.0) == pytest.approx(0.25)  # past the end it stays at the floor
    assert Schedule("wsd", epochs=1, decay_fraction=1.0).rate(2.0, 0.25) == pytest.approx(1.5)


def test_defaults_are_a_tenth_every_ten_epochs_over_a_one_epoch_run():
    step = Schedule("step")
    assert [step.rate(1.0, e) for e in (9.9, 10.0, 20.0)] == pytest.approx([1.0, 0.1, 0.01])
    assert Schedule("cosine").rate(1.0, 0.5) == pytest.approx(0.5)  # halfway through the one epoch
    assert Schedule("wsd").rate(1.0, 0.9) == pytest.approx(0.5)  # halfway through the last 20%


def test_every_schedule_starts_at_the_base_rate():
    for kind in SCHEDULES:
        assert Schedule(kind, epochs=5).rate(0.01, 0.0) == 0.01


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"kind": "linear"}, "unknown schedule 'linear'"),
        ({"decay_fraction": 0.0}, r"decay fraction must be in \(0, 1\]"),
        ({"decay_fraction": 1.5}, r"decay fraction must be in \(0, 1\]"),
        ({"every": 0.0}, "every > 0"),
        ({"gamma": 0.0}, "0 < gamma <= 1"),
        ({"gamma": 1.5}, "0 < gamma <= 1"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(settings, message):
    with pytest.raises(SpecError, match=message):
        Schedule(**settings)


def test_boundary_settings_are_accepted():
    Schedule(decay_fraction=1.0)
    Schedule(gamma=1.0, every=0.001)
