"""Temperature scaling, the calibration error, out-of-distribution scores and the verdicts they give."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnscratch import nondigits
from nnscratch.calibration import (
    BINS,
    NOT_A_DIGIT,
    NOT_SURE,
    T_RANGE,
    Calibration,
    auroc,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    nll_slope,
    ood_score,
    reliability,
)
from nnscratch.errors import ModelFileError, SpecError
from nnscratch.losses import softmax
from nnscratch.network import Network
from nnscratch.training import TrainConfig, Trainer, held_out_not_digits, train


def calibrated_logits(rng, n=4000, k=10):
    """Logits whose softmax is the true distribution the labels are drawn from (calibrated at T = 1)."""
    Z = rng.normal(0, 2.0, (n, k))
    P = softmax(Z)
    y = np.array([rng.choice(k, p=p) for p in P])
    return Z, y


def nll(Z, y, T):
    P = softmax(Z / T)
    return -np.mean(np.log(P[np.arange(len(y)), y]))


# -- temperature -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_the_fitted_temperature_undoes_a_known_overconfidence(rng, scale):
    Z, y = calibrated_logits(rng)
    T = fit_temperature(Z * scale, y)  # logits scaled by s are calibrated again at T = s
    assert T == pytest.approx(scale, rel=0.1)
    assert abs(nll_slope(Z * scale, y, 1 / T)) < 1e-9  # the loss's slope vanishes there
    for other in (T * 0.95, T * 1.05):  # and it is the minimum
        assert nll(Z * scale, y, T) < nll(Z * scale, y, other)


def test_the_slope_is_the_derivative_of_the_loss_in_beta(rng):
    Z, y = calibrated_logits(rng, n=50)
    beta, h = 0.7, 1e-6
    numeric = (nll(Z, y, 1 / (beta + h)) - nll(Z, y, 1 / (beta - h))) / (2 * h)
    assert nll_slope(Z, y, beta) == pytest.approx(numeric, rel=1e-6)


def test_a_validation_set_with_no_mistakes_stops_at_the_sharpest_temperature_allowed():
    Z = np.array([[5.0, 0.0], [0.0, 5.0]])
    assert fit_temperature(Z, np.array([0, 1])) == T_RANGE[0]
    assert fit_temperature(Z, np.array([1, 0])) == T_RANGE[1]  # all wrong: as flat as allowed


@pytest.mark.parametrize(
    "Z, y, message",
    [
        (np.zeros((3, 2)), np.zeros(2, int), "need logits"),
        (np.full((2, 2), np.nan), np.zeros(2, int), "not all finite"),
    ],
)
def test_fit_temperature_refuses_what_it_cannot_fit(Z, y, message):
    with pytest.raises(ValueError, match=message):
        fit_temperature(Z, y)


# -- calibration error --------------------------------------------------------------------------------


def test_ece_by_hand():
    # confidences 0.9 (right), 0.9 (wrong), 0.6 (right): bins (13/15, 14/15] and (8/15, 9/15]
    P = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    y = np.array([0, 1, 1])
    table = reliability(P, y)
    assert table["count"].sum() == 3 and table["count"][13] == 2 and table["count"][8] == 1
    assert table["accuracy"][13] == 0.5 and table["confidence"][13] == pytest.approx(0.9)
    assert expected_calibration_error(P, y) == pytest.approx((2 * 0.4 + 1 * 0.4) / 3)
    assert np.isnan(table["accuracy"][0]) and len(table["edges"]) == BINS + 1


def test_a_confidence_of_exactly_one_falls_in_the_last_bin_and_a_calibrated_network_has_a_small_ece(rng):
    assert reliability(np.array([[1.0, 0.0]]), np.array([0]))["count"][-1] == 1
    Z, y = calibrated_logits(rng, n=20000)
    assert expected_calibration_error(softmax(Z), y) < 0.02
    assert expected_calibration_error(softmax(3 * Z), y) > 0.1  # overconfident


# -- scores and their separation ----------------------------------------------------------------------


def test_auroc_is_the_chance_that_an_inside_example_outscores_an_outside_one(rng):
    inside, outside = rng.normal(1, 1, 60), rng.normal(0, 1, 40)
    inside[:5] = outside[:5]  # ties count one half
    pairs = (inside[:, None] > outside[None, :]) + 0.5 * (inside[:, None] == outside[None, :])
    assert auroc(inside, outside) == pytest.approx(pairs.mean())
    assert auroc([2, 3], [0, 1]) == 1.0 and auroc([0, 1], [2, 3]) == 0.0 and auroc([1], [1]) == 0.5
    with pytest.raises(ValueError, match="at least one"):
        auroc([], [1])


def test_scores_are_the_top_calibrated_probability_and_minus_the_energy():
    Z = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(ood_score(Z, 2.0, "probability"), softmax(Z / 2).max(axis=1))
    np.testing.assert_allclose(ood_score(Z, 2.0, "energy"), 2 * np.log(np.exp(Z / 2).sum(axis=1)))
    with pytest.raises(ValueError, match="unknown score 'odin'"):
        ood_score(Z, 1.0, "odin")


def test_calibrate_picks_the_better_score_and_thresholds_that_flag_about_one_percent_of_digits(rng):
    Z, y = calibrated_logits(rng, n=3000)
    Z = Z + 6 * np.eye(10)[y]  # confident digits
    outside = rng.normal(0, 0.5, (500, 10))  # flat, small logits: what a non-digit should get
    calibration, report = calibrate(Z, y, outside)
    assert calibration.temperature == report["temperature"] and calibration.score == report["score"]
    assert report["auroc"][calibration.score] == max(report["auroc"].values()) > 0.95
    inside = ood_score(Z, calibration.temperature, calibration.score)
    made_up = ood_score(outside, calibration.temperature, calibration.score)
    assert (inside < calibration.not_sure_below).mean() <= 0.01  # 99% of the validation digits reach it
    assert (made_up < calibration.not_a_digit_below).mean() >= 0.95 or calibration.not_a_digit_below == (
        calibration.not_sure_below
    )
    verdicts = np.array(calibration.verdicts(Z))
    flagged = (verdicts == NOT_SURE).mean() + (verdicts == NOT_A_DIGIT).mean()
    assert flagged <= 0.01 and report["validation_not_sure"] == (verdicts == NOT_SURE).mean()
    assert report["outside_not_a_digit"] >= 0.95 and report["ece_after"] <= report["ece_before"] + 1e-12
    alone, report = calibrate(Z, y)  # no non-digits: a temperature only
    assert alone.not_sure_below is None and "auroc" not in report


def test_verdicts_by_the_score_and_its_two_thresholds():
    calibration = Calibration(temperature=1.0, score="probability", not_sure_below=0.6, not_a_digit_below=0.35)
    Z = np.log(np.array([[0.9, 0.05, 0.05], [0.5, 0.4, 0.1], [0.34, 0.33, 0.33]]))
    assert calibration.verdicts(Z) == ["digit", NOT_SURE, NOT_A_DIGIT]
    # no thresholds: "not sure" where no class is more likely than not, never "not a digit"
    assert Calibration().verdicts(Z) == ["digit", "digit", NOT_SURE]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"score": "odin"}, "score"),
        ({"not_sure_below": 0.5}, "give both or neither"),
        ({"not_sure_below": math.inf, "not_a_digit_below": 0.1}, "finite"),
        ({"not_sure_below": 0.2, "not_a_digit_below": 0.3}, "not-a-digit <= not-sure"),
    ],
)
def test_a_calibration_out_of_range_is_refused(fields, message):
    with pytest.raises(SpecError, match=message):
        Calibration(**fields)
    with pytest.raises(ModelFileError, match=f"m.npz has a corrupted calibration record .*{message}"):
        Calibration.from_dict({**Calibration().to_dict(), **fields}, "m.npz")
    with pytest.raises(ModelFileError, match="corrupted calibration record; retrain"):
        Calibration.from_dict({"temperature": 1.0, "extra": 1}, "m.npz")


# -- in a network and its file ------------------------------------------------------------------------


def test_a_calibrated_model_file_keeps_its_calibration_and_an_old_one_predicts_as_before(tmp_path, rng):
    net = Network.from_spec("784-16:relu-10:softmax", seed=0)
    X = rng.random((20, 784), dtype=np.float32)
    before = net.predict_proba(X)
    plain = Network.load(net.save(tmp_path / "plain.npz"))
    assert plain.calibration is None and "calibration" not in plain.header()
    np.testing.assert_array_equal(plain.predict_proba(X), before)  # no calibration: the plain softmax
    net.calibration = Calibration(temperature=2.0, score="energy", not_sure_below=1.5, not_a_digit_below=1.0)
    loaded = Network.load(net.save(tmp_path / "calibrated.npz"))
    assert loaded.calibration == net.calibration and loaded.copy().calibration == net.calibration
    np.testing.assert_allclose(loaded.predict_proba(X), softmax(net.all_logits(X) / 2.0), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(loaded.predict(X), plain.predict(X))  # the label never changes
    assert loaded.verdicts(X) == net.calibration.verdicts(net.all_logits(X))


def test_a_model_file_with_a_tampered_calibration_is_refused(tmp_path):
    from nnscratch.io import load_npz, save_npz

    net = Network.from_spec("784-4:relu-10:softmax", seed=0)
    net.calibration = Calibration(temperature=1.5)
    path = net.save(tmp_path / "m.npz")
    header, arrays = load_npz(path)
    header["calibration"]["temperature"] = -1
    save_npz(path, arrays, header)
    with pytest.raises(ModelFileError, match="corrupted calibration record"):
        Network.load(path)


def test_training_with_a_validation_split_calibrates_and_without_one_does_not(rng):
    X, y = rng.random((400, 784), dtype=np.float32), rng.integers(0, 10, 400)
    net = Network.from_spec("784-8:relu-10:softmax", seed=0)
    history = train(net, X, y, TrainConfig(epochs=1, validation_size=100))
    assert net.calibration is not None and history.calibration["temperature"] == net.calibration.temperature
    assert history.calibration["score"] in ("probability", "energy")  # 28×28 inputs: non-digits measured too
    assert set(history.to_dict()["calibration"]) >= {"ece_before", "ece_after", "auroc", "not_a_digit_below"}
    train(net, X, y, TrainConfig(epochs=1, validation_size=0))
    assert net.calibration is None  # retrained: the old calibration no longer holds, and nothing to fit on
    train(net, X, y, TrainConfig(epochs=1, validation_size=100, calibrate=False))
    assert net.calibration is None
    small = Network.from_spec("16-4:relu-3:softmax", seed=0)  # not an image: a temperature only
    train(small, rng.random((60, 16)), rng.integers(0, 3, 60), TrainConfig(epochs=1, validation_size=20))
    assert small.calibration is not None and small.calibration.not_a_digit_below is None


# -- made-up non-digits --------------------------------------------------------------------------------


def test_made_up_non_digits_are_images_in_range_the_same_for_a_seed_and_of_every_kind():
    a, b = nondigits.make(28, seed=3), nondigits.make(28, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (28, 784) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    assert not np.array_equal(a, nondigits.make(28, seed=4))
    kinds = list(nondigits.KINDS)
    for i, kind in enumerate(kinds):  # kinds are taken in turn; each draws something
        assert a[i].max() > 0.4, kind
        alone = nondigits.make(1, seed=0, kinds=(kind,))
        np.testing.assert_array_equal(alone, nondigits.make(1, seed=0, kinds=(kind,)))
    with pytest.raises(ValueError, match="unknown kind of non-digit 'shoes'"):
        nondigits.make(1, kinds=("shoes",))


def test_the_held_out_non_digits_are_not_those_training_draws():
    held_out = held_out_not_digits()
    assert held_out.shape == (1400, 784) and held_out is held_out_not_digits()  # drawn once per process
    trained = nondigits.make(100, np.random.default_rng([7001, 0]))
    assert not any(np.array_equal(trained[i], held_out[i]) for i in range(100))


def test_training_with_made_up_non_digits_adds_them_with_a_uniform_target_and_resumes_bit_for_bit(rng, tmp_path):
    from nnscratch.training import resume

    X, y = rng.random((300, 784), dtype=np.float32), rng.integers(0, 10, 300)
    config = TrainConfig(epochs=2, batch_size=64, validation_size=50, not_digits=0.2)
    net = Network.from_spec("784-8:relu-10:softmax", seed=0)
    trainer = Trainer(net, X, y, config)
    assert trainer.train_idx.size == 250 + 50 and (trainer.y[trainer.train_idx] == -1).sum() == 50
    assert trainer.n_digits == 250 and len(trainer.X_val) == 50  # the validation digits stay digits
    whole = Network.from_spec("784-8:relu-10:softmax", seed=0)
    train(whole, X, y, config)
    half = Network.from_spec("784-8:relu-10:softmax", seed=0)
    train(half, X, y, TrainConfig(**{**config.__dict__, "epochs": 1}), checkpoint_dir=tmp_path)
    from nnscratch.io import load_npz, save_npz

    header, arrays = load_npz(tmp_path / "checkpoint.npz")
    header["config"]["epochs"] = 2
    save_npz(tmp_path / "checkpoint.npz", arrays, header)
    resumed, _ = resume(tmp_path, X, y)
    np.testing.assert_array_equal(resumed.params, whole.params)
    with pytest.raises(SpecError, match="made-up non-digits are 28×28 images"):
        Trainer(Network.from_spec("16-4:relu-3:softmax"), rng.random((80, 16)), rng.integers(0, 3, 80), config)
    with pytest.raises(SpecError, match=r"share of made-up non-digits must be a number in \[0, 1\]"):
        TrainConfig(not_digits=1.5)
