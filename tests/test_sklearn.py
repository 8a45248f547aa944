"""The scikit-learn estimators: scikit-learn's parameters, stopping rule and fitted attributes, labels, partial_fit,
pipelines, searches, pickling, sklearn's own checks, and the convolutional classifier."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from nnscratch.network import Network
from nnscratch.optimizers import Adam, Momentum
from nnscratch.presets import PRESETS
from nnscratch.sklearn import CNNClassifier, MLPClassifier
from nnscratch.training import TrainConfig, train

# Most tests stop at max_iter on purpose (a fixed number of epochs); the warning is tested on its own.
# scikit-learn's checks fit on a few samples, where batch_size=32 is clipped with a warning.
pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore:Got `batch_size`:UserWarning"),
]

# Small networks trained briefly with a larger rate: enough to learn sklearn's toy data sets
# (its checks want > 83% training accuracy), fast enough to run every check in seconds.
CHECKED = [
    MLPClassifier((8,), batch_size=32, learning_rate_init=0.02, max_iter=20, random_state=0),
    MLPClassifier(
        (8, 6),
        ("tanh", "selu"),
        solver="sgd",
        learning_rate="adaptive",
        learning_rate_init=0.05,
        batch_size=16,
        max_iter=20,
        dropout=0.1,
        dtype="float64",
        random_state=0,
    ),
    MLPClassifier((), solver="sgd", learning_rate="invscaling", power_t=0.25, learning_rate_init=0.1, max_iter=20),
]

# Checks this estimator is known to fail, each with its reason (parametrize_with_checks marks them
# xfail).  Every check passes for the instances above, so the table is empty; it stays as the one
# place to record an exception should a future scikit-learn add a check the engine cannot meet.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@pytest.mark.timeout(120)
@parametrize_with_checks(CHECKED, expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_passes_the_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture
def blobs(rng):
    """Three separable blobs in 6 dimensions, features in [0, 1], labels 0..2."""
    centres = rng.random((3, 6))
    y = rng.integers(0, 3, 300)
    X = np.clip(centres[y] + 0.04 * rng.standard_normal((300, 6)), 0.0, 1.0)
    return X, y


def quick(**params) -> MLPClassifier:
    defaults = dict(hidden_layer_sizes=(16,), max_iter=30, batch_size=32, learning_rate_init=0.01, random_state=0)
    return MLPClassifier(**{**defaults, **params})


# -- a drop-in for scikit-learn's MLPClassifier ---------------------------------------------------


def test_takes_every_scikit_learn_parameter_with_its_default():
    theirs = SklearnMLPClassifier().get_params()
    ours = MLPClassifier().get_params()
    assert {key: ours[key] for key in theirs} == theirs
    assert set(ours) - set(theirs) == {"dropout", "init", "dtype"}  # nnscratch's own keywords
    MLPClassifier(**SklearnMLPClassifier(solver="sgd", learning_rate="adaptive", alpha=1e-3).get_params())


def test_defaults_learn_digits_as_well_as_scikit_learn():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    ours = MLPClassifier(random_state=0).fit(X_train, y_train)
    with threadpool_limits(1):  # small products: BLAS threads only slow scikit-learn down on a busy machine
        theirs = SklearnMLPClassifier(random_state=0).fit(X_train, y_train)
    assert ours.score(X_test, y_test) > 0.95
    assert ours.score(X_test, y_test) >= theirs.score(X_test, y_test) - 0.02
    assert ours.n_iter_ < 200  # it converged by scikit-learn's rule, as scikit-learn's did
    assert ours.network_.dtype == np.float32


def test_stops_after_n_iter_no_change_epochs_without_tol_improvement_like_scikit_learn(blobs):
    X, y = blobs
    # with tol = 10 no epoch counts as progress, so training stops after the first n_iter_no_change + 1
    for n in (2, 5):
        ours = quick(tol=10.0, n_iter_no_change=n).fit(X, y)
        theirs = SklearnMLPClassifier((16,), tol=10.0, n_iter_no_change=n, max_iter=30, random_state=0).fit(X, y)
        assert ours.n_iter_ == theirs.n_iter_ == n + 2


def test_warns_when_max_iter_is_reached(blobs):
    X, y = blobs
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        clf = quick(max_iter=3, tol=0.0).fit(X, y)
    assert clf.n_iter_ == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        quick(tol=10.0, n_iter_no_change=1).fit(X, y)  # converged: no warning


def test_fitted_attributes_are_scikit_learns(blobs):
    X, y = blobs
    clf = quick(hidden_layer_sizes=(12, 8), max_iter=5, tol=0.0).fit(X, y)
    assert [W.shape for W in clf.coefs_] == [(6, 12), (12, 8), (8, 3)]
    assert [b.shape for b in clf.intercepts_] == [(12,), (8,), (3,)]
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 3 and clf.out_activation_ == "softmax"
    assert clf.n_features_in_ == 6 and clf.n_iter_ == 5 and clf.t_ == 5 * 300
    assert len(clf.loss_curve_) == 5 and clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    # coefs_ and intercepts_ are the network's weights: a hand-written forward pass gives predict_proba
    A = X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1], strict=True):
        A = np.maximum(A @ W + b, 0.0)
    Z = A @ clf.coefs_[-1] + clf.intercepts_[-1]
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(P / P.sum(axis=1, keepdims=True), clf.predict_proba(X), rtol=1e-4, atol=1e-6)


def test_fit_is_the_engine_training_of_that_seed(blobs):
    X, y = blobs
    clf = quick(hidden_layer_sizes=(7,), activation="tanh", alpha=1e-3, max_iter=2, random_state=5).fit(X, y)
    net = Network.from_spec("6-7:tanh-3:softmax", seed=5, init="glorot")
    # scikit-learn's alpha penalises each batch's mean loss by alpha/(2·batch)·ΣW²: the engine's l2 = alpha/batch
    config = TrainConfig(epochs=2, batch_size=32, learning_rate=0.01, l2=1e-3 / 32, validation_size=0, seed=5)
    history = train(net, X, y, config)
    np.testing.assert_array_equal(clf.network_.params, net.params)
    assert clf.loss_curve_ == history["train_loss"]


def test_solvers_reach_the_optimiser_with_their_settings(blobs):
    X, y = blobs
    adam = quick(max_iter=1, beta_1=0.8, beta_2=0.99, epsilon=1e-6).fit(X, y)._train_state.optimizer
    assert isinstance(adam, Adam) and (adam.beta1, adam.beta2, adam.eps) == (0.8, 0.99, 1e-6)
    sgd = quick(max_iter=1, solver="sgd", momentum=0.5, nesterovs_momentum=False).fit(X, y)._train_state.optimizer
    assert isinstance(sgd, Momentum) and sgd.momentum == 0.5 and not sgd.nesterov
    assert quick(max_iter=1, solver="sgd").fit(X, y)._train_state.optimizer.nesterov


def test_invscaling_rate_falls_with_the_samples_seen(blobs):
    X, y = blobs
    clf = quick(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1, power_t=0.5, max_iter=4, tol=0.0)
    rates = clf.fit(X, y).history_["learning_rate"]
    # epoch e (from 0) runs at 0.1 / (t + 1)^0.5, t = 300·e samples seen before it; the first at 0.1
    np.testing.assert_allclose(rates, [0.1] + [0.1 / (300 * e + 1) ** 0.5 for e in (1, 2, 3)])


def test_adaptive_rate_divides_by_five_and_stops_like_scikit_learn(blobs):
    X, y = blobs
    params = dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.01, tol=10.0, n_iter_no_change=2)
    ours = quick(max_iter=100, **params).fit(X, y)
    theirs = SklearnMLPClassifier((16,), max_iter=100, random_state=0, **params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 100  # stopped once the rate fell to 1e-6 or below
    rates = sorted(set(ours.history_["learning_rate"]), reverse=True)
    np.testing.assert_allclose(rates, [0.01 / 5**i for i in range(len(rates))])
    assert rates[-1] <= 1e-6 < rates[-2]


def test_batch_size_auto_is_min_200_m_and_a_larger_one_is_clipped_with_a_warning(blobs):
    X, y = blobs
    auto = quick(batch_size="auto", max_iter=2).fit(X, y)
    np.testing.assert_array_equal(auto.network_.params, quick(batch_size=200, max_iter=2).fit(X, y).network_.params)
    small = quick(batch_size="auto", max_iter=2).fit(X[:150], y[:150])
    np.testing.assert_array_equal(
        small.network_.params, quick(batch_size=150, max_iter=2).fit(X[:150], y[:150]).network_.params
    )
    with pytest.warns(UserWarning, match="clipped"):
        quick(batch_size=1000, max_iter=1).fit(X, y)


def test_shuffle_false_takes_the_batches_in_order(blobs):
    X, y = blobs
    in_order = quick(shuffle=False, max_iter=2).fit(X, y)
    net = Network.from_spec("6-16:relu-3:softmax", seed=0, init="glorot")  # scikit-learn's initialisation
    train(
        net,
        X,
        y,
        TrainConfig(epochs=2, batch_size=32, learning_rate=0.01, l2=1e-4 / 32, validation_size=0, shuffle=False),
    )
    np.testing.assert_array_equal(in_order.network_.params, net.params)
    assert not np.array_equal(in_order.network_.params, quick(max_iter=2).fit(X, y).network_.params)


def test_early_stopping_holds_out_a_stratified_split_and_keeps_the_best_epoch(rng):
    X, y = rng.random((300, 6)), rng.integers(0, 3, 300)  # random labels: the validation accuracy wanders
    clf = quick(max_iter=200, early_stopping=True, validation_fraction=0.2, n_iter_no_change=3, learning_rate_init=0.05)
    clf.fit(X, y)
    assert clf.n_iter_ < 200 and len(clf.validation_scores_) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.best_validation_score_ == max(clf.validation_scores_) and clf.best_loss_ is None
    assert clf.t_ == clf.n_iter_ * 240  # 20% held out
    best = int(np.argmax(clf.validation_scores_))
    assert clf.n_iter_ - 1 - best >= 3  # stopped n_iter_no_change epochs after the best, or later
    # the weights kept are the best epoch's: recompute its validation accuracy
    _, X_val, _, y_val = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    assert clf.score(X_val, y_val) == clf.best_validation_score_


def record_epochs(clf, monkeypatch):
    """Wrap the trainer's step of ``clf`` (``Trainer.run_more``, one epoch at a time) to keep copies of
    (params, state) before and after every epoch it trains."""
    from nnscratch.training import Trainer

    seen = []
    step = Trainer.run_more

    def epoch(trainer, *args, **kwargs):
        before = (clf.network_.params.copy(), clf.network_.state.copy())
        history = step(trainer, *args, **kwargs)
        seen.append((before, (clf.network_.params.copy(), clf.network_.state.copy())))
        return history

    monkeypatch.setattr(Trainer, "run_more", epoch)
    return seen


def test_warm_start_continues_from_the_fitted_weights(blobs, monkeypatch):
    X, y = blobs
    clf = quick(max_iter=3, warm_start=True, tol=0.0).fit(X, y)
    first, fitted = list(clf.loss_curve_), clf.network_.params.copy()
    epochs = record_epochs(clf, monkeypatch)
    clf.fit(X, y)
    # the refit's first epoch starts from exactly the fitted weights, not from new ones
    np.testing.assert_array_equal(epochs[0][0][0], fitted)
    assert clf.loss_curve_[:3] == first and len(clf.loss_curve_) == 6 and clf.n_iter_ == 3 and clf.t_ == 1800
    # its loss goes on falling from where the first fit ended (1.01, 0.74, 0.53 here), not from a new start's 1.01
    assert clf.loss_curve_[3] < first[-1]
    with pytest.raises(ValueError, match="warm_start can only be used where y has the same classes"):
        clf.fit(X, y + 1)
    cold = quick(max_iter=3, tol=0.0).fit(X, y)
    cold.fit(X, y)
    # without warm_start, fit starts over: the same seed's new weights, so the same losses again
    assert cold.loss_curve_ == first
    np.testing.assert_array_equal(cold.network_.params, fitted)


def test_warm_start_refit_starts_a_new_optimiser_at_learning_rate_init_like_scikit_learn(blobs):
    """scikit-learn's ``_fit_stochastic`` makes a new optimiser on every ``fit`` (``not incremental``), warm or
    not: Adam's moments and step count start at zero and the rate at ``learning_rate_init``, while ``t_`` (which
    "invscaling" reads) goes on counting.  Only ``partial_fit`` carries the optimiser over."""
    X, y = blobs
    theirs = SklearnMLPClassifier((4,), max_iter=2, warm_start=True, random_state=0).fit(X, y)
    optimiser = theirs._optimizer
    assert theirs.fit(X, y)._optimizer is not optimiser  # what scikit-learn does, which ours follows

    # shuffle=False: the refit is the engine's training from the fitted weights with a fresh Adam
    clf = quick(max_iter=3, warm_start=True, shuffle=False, tol=0.0).fit(X, y)
    net = Network.from_spec("6-16:relu-3:softmax", seed=0, init="glorot")
    net.params[...] = clf.network_.params
    clf.set_params(max_iter=2).fit(X, y)
    config = TrainConfig(epochs=2, batch_size=32, learning_rate=0.01, l2=1e-4 / 32, validation_size=0, shuffle=False)
    history = train(net, X, y, config)
    np.testing.assert_array_equal(clf.network_.params, net.params)
    assert clf.loss_curve_[3:] == history["train_loss"]
    continued = quick(max_iter=3, shuffle=False, tol=0.0).fit(X, y).partial_fit(X, y).partial_fit(X, y)
    assert not np.array_equal(continued.network_.params, clf.network_.params)  # the kept Adam steps elsewhere

    # sgd: the refit's first epoch runs at learning_rate_init again, the next ones at η / (t_ + 1)^power_t
    # with t_ counting on from the first fit's 3 × 300 samples
    params = dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1, power_t=0.5, tol=0.0)
    sgd = quick(max_iter=3, warm_start=True, **params).fit(X, y)
    sgd.set_params(max_iter=3).fit(X, y)
    np.testing.assert_allclose(sgd.history_["learning_rate"][3:], [0.1] + [0.1 / (300 * e + 1) ** 0.5 for e in (4, 5)])
    adaptive = quick(max_iter=40, warm_start=True, solver="sgd", learning_rate="adaptive", tol=10.0, n_iter_no_change=2)
    adaptive.fit(X, y)
    assert adaptive.history_["learning_rate"][-1] < 0.01  # divided by 5 at least once
    adaptive.set_params(max_iter=1).fit(X, y)
    assert adaptive.history_["learning_rate"][-1] == 0.01  # the refit's rate starts over


def test_verbose_prints_each_epoch_as_scikit_learn_does(blobs, capsys):
    X, y = blobs
    quick(max_iter=2, verbose=True).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Iteration 1, loss = ") and lines[1].startswith("Iteration 2, loss = ")
    # the adaptive rate's last words, when it has fallen to 1e-6 (from 5e-6, a division by five)
    adaptive = quick(max_iter=20, verbose=True, solver="sgd", learning_rate="adaptive", learning_rate_init=5e-6)
    adaptive.set_params(tol=10.0, n_iter_no_change=1).fit(X, y)
    said = capsys.readouterr().out
    assert "Setting learning rate to 0.000001" in said
    last = "Training loss did not improve more than tol=10.000000 for 1 consecutive epochs."
    assert said.rstrip().endswith(f"{last} Learning rate too small. Stopping.")


# -- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [
        np.array(["cat", "dog", "emu"]),
        np.array([-5, 0, 17]),
        np.array([1.0, 4.0, 10.0]),
        np.array([3, 5, 9]),
    ],
    ids=["strings", "negative-ints", "whole-floats", "non-contiguous"],
)
def test_any_label_set_is_learned_and_predicted_back(blobs, names):
    X, y = blobs
    labels = names[y]
    clf = quick().fit(X, labels)
    np.testing.assert_array_equal(clf.classes_, np.sort(names))
    assert clf.predict(X).dtype == labels.dtype
    assert set(clf.predict(X)) <= set(names)
    assert clf.score(X, labels) > 0.95
    P = clf.predict_proba(X)
    assert P.shape == (300, 3)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(clf.classes_[P.argmax(axis=1)], clf.predict(X))
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), P, rtol=1e-5)


def test_continuous_targets_are_refused(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        quick().fit(X, y + 0.5)


def test_binary_problem_has_two_probability_columns(blobs):
    X, y = blobs
    keep = y < 2
    clf = quick().fit(X[keep], np.where(y[keep] == 1, "yes", "no"))
    assert clf.predict_proba(X[keep]).shape == (int(keep.sum()), 2)
    assert list(clf.classes_) == ["no", "yes"] and clf.n_outputs_ == 2


def test_sparse_input_trains_like_the_dense_array(blobs):
    X, y = blobs
    dense = quick(max_iter=2).fit(X, y)
    sparse = quick(max_iter=2).fit(scipy.sparse.csr_matrix(X), y)
    np.testing.assert_array_equal(dense.network_.params, sparse.network_.params)
    np.testing.assert_array_equal(sparse.predict(scipy.sparse.csr_matrix(X)), dense.predict(X))


# -- the network it builds ----------------------------------------------------------------------


def test_hidden_layers_and_activations_reach_the_network(blobs):
    X, y = blobs
    clf = quick(hidden_layer_sizes=(12, 10, 8), activation=("relu", "logistic", "tanh"), max_iter=1).fit(X, y)
    assert clf.network_.spec == "6-12:relu-10:sigmoid-8:tanh-3:softmax"
    assert quick(hidden_layer_sizes=5, activation="selu", max_iter=1).fit(X, y).network_.spec == "6-5:selu-3:softmax"
    assert quick(hidden_layer_sizes=(), max_iter=1).fit(X, y).network_.spec == "6-3:softmax"
    assert quick(activation="softmax", max_iter=1).fit(X, y).network_.spec == "6-16:softmax-3:softmax"


def test_same_random_state_same_network_other_state_other_network(blobs):
    X, y = blobs
    clf = quick(max_iter=1).fit(X, y)
    np.testing.assert_array_equal(clf.network_.params, clone(clf).fit(X, y).network_.params)
    assert not np.array_equal(clf.network_.params, clone(clf).set_params(random_state=1).fit(X, y).network_.params)


def test_a_generator_random_state_reproduces_from_the_same_seed_state(blobs):
    X, y = blobs
    first = quick(max_iter=2, random_state=np.random.default_rng(7)).fit(X, y)
    again = quick(max_iter=2, random_state=np.random.default_rng(7)).fit(X, y)
    np.testing.assert_array_equal(first.network_.params, again.network_.params)
    other = quick(max_iter=2, random_state=np.random.default_rng(8)).fit(X, y)
    assert not np.array_equal(first.network_.params, other.network_.params)
    # one generator drawn from twice gives two different networks, as a RandomState does in scikit-learn
    generator = np.random.default_rng(7)
    a, b = (quick(max_iter=2, random_state=generator).fit(X, y) for _ in range(2))
    np.testing.assert_array_equal(a.network_.params, first.network_.params)
    assert not np.array_equal(a.network_.params, b.network_.params)


def test_dtype_parameter_sets_the_precision(blobs):
    X, y = blobs
    assert quick(dtype="float64", max_iter=1).fit(X, y).network_.dtype == np.float64
    clf = quick(max_iter=1).fit(X, y)
    assert clf.network_.dtype == np.float32 and clf.predict_proba(X).dtype == np.float32


def test_features_outside_unit_range_still_train():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)  # raw centimetres, up to 7.9
    assert X.max() > 1.0
    assert quick(max_iter=100, batch_size=16).fit(X, y).score(X, y) > 0.9
    assert quick(max_iter=1, batch_size=1).fit(X[:20], y[:20]).n_iter_ == 1  # one example a step: the smallest


@pytest.mark.parametrize(
    "params, message",
    [
        ({"hidden_layer_sizes": (4, 4), "activation": ("relu",)}, "2 hidden layers"),
        ({"activation": "swish"}, "unknown activation 'swish'"),
        ({"hidden_layer_sizes": (4.5,)}, "hidden_layer_sizes must be an integer"),
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes must be an integer >= 1"),
        ({"solver": "lbfgs"}, "'lbfgs' is not available"),
        ({"learning_rate": "cosine"}, "learning_rate must be one of constant, invscaling, adaptive"),
        ({"learning_rate_init": -1.0}, r"learning_rate_init must be a number in \(0, inf\)"),
        ({"alpha": -1.0}, "alpha must be a number"),
        ({"tol": -1.0}, "tol must be a number"),
        ({"max_iter": 0}, "max_iter must be an integer >= 1"),
        ({"batch_size": "big"}, "batch_size must be an integer >= 1 or 'auto'"),
        ({"momentum": 1.5}, "momentum must be a number in"),
        ({"early_stopping": True, "validation_fraction": 1.5}, "validation_fraction must be a number in"),
        ({"n_iter_no_change": 0}, "n_iter_no_change must be an integer >= 1"),
        ({"dropout": 1.0}, "dropout must be a number in"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"random_state": "seven"}, "random_state must be"),
    ],
)
def test_bad_hyperparameters_fail_in_fit_with_a_reason(blobs, params, message):
    X, y = blobs
    clf = quick(**params)  # __init__ accepts anything, as sklearn requires
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y)
    assert not hasattr(clf, "network_") and not hasattr(clf, "classes_")
    with pytest.raises(NotFittedError):  # a failed fit leaves nothing half-made
        clf.predict(X)


# -- partial_fit ----------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"solver": "sgd"}, {"dropout": 0.3}], ids=["adam", "sgd-nesterov", "dropout"])
def test_fit_then_partial_fit_continues_bit_for_bit(blobs, params):
    X, y = blobs
    three = quick(max_iter=3, tol=0.0, **params).fit(X, y)
    two_plus_one = quick(max_iter=2, tol=0.0, **params).fit(X, y).partial_fit(X, y)
    np.testing.assert_array_equal(three.network_.params, two_plus_one.network_.params)
    assert two_plus_one.n_iter_ == 1 and two_plus_one.t_ == 900  # n_iter_ counts the last call, as in sklearn
    assert two_plus_one.loss_curve_ == three.loss_curve_


def test_partial_fit_calls_match_fit_with_as_many_epochs(blobs):
    X, y = blobs
    fitted = quick(max_iter=3, tol=0.0).fit(X, y)
    stepped = quick()
    for _ in range(3):
        stepped.partial_fit(X, y, classes=np.arange(3))
    np.testing.assert_array_equal(fitted.network_.params, stepped.network_.params)
    assert stepped.loss_curve_ == fitted.loss_curve_ and len(stepped.history_) == 3


def test_partial_fit_learns_from_chunks_missing_some_classes(blobs):
    X, y = blobs
    clf = quick(learning_rate_init=0.02)
    for _ in range(15):
        for chunk in np.array_split(np.argsort(y, kind="stable"), 3):  # each chunk holds about one class
            clf.partial_fit(X[chunk], y[chunk], classes=[0, 1, 2])
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert len(clf.loss_curve_) == 45
    assert clf.score(X, y) > 0.6


def test_partial_fit_refuses_what_it_cannot_continue(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        quick().partial_fit(X, y)
    with pytest.raises(ValueError, match="labels not in classes"):
        quick().partial_fit(X, y, classes=[0, 1])
    clf = quick().partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="differs from the classes"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        quick(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.parametrize("order", [[2, 0, 1], [7, 3, 5]], ids=["shuffled", "non-contiguous-unsorted"])
def test_partial_fit_takes_the_classes_in_any_order_and_predicts_their_labels(blobs, order):
    X, y = blobs
    labels = np.array(order)[y]  # blob i is called order[i]
    clf, ref = quick(learning_rate_init=0.02), quick(learning_rate_init=0.02)
    for i in range(10):
        clf.partial_fit(X, labels, classes=order if i % 2 else order[::-1])  # any order, on any call
        ref.partial_fit(X, labels, classes=sorted(order))
    np.testing.assert_array_equal(clf.classes_, sorted(order))  # output unit i stands for the i-th smallest
    # the order they were listed in changes nothing: the same encoding of the labels, the same training
    np.testing.assert_array_equal(clf.network_.params, ref.network_.params)
    np.testing.assert_array_equal(clf.predict(X), labels)  # every blob comes back under its own label
    np.testing.assert_array_equal(clf.classes_[clf.predict_proba(X).argmax(axis=1)], labels)


def test_cnn_early_stopping_restores_the_batch_norm_statistics_with_the_best_weights(digit_images, monkeypatch):
    images, _ = digit_images
    labels = np.random.default_rng(0).integers(0, 3, 240)  # random labels: the validation accuracy wanders
    clf = small_cnn(
        layers="conv4k3p1-bn-relu-maxpool2-flatten-16:relu",
        max_iter=40,
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=2,
        learning_rate_init=0.05,
    )
    epochs = record_epochs(clf, monkeypatch)
    clf.fit(images[:240], labels)
    assert clf.network_.state.size > 0  # batch norm's running mean and variance
    best = int(np.argmax(clf.validation_scores_))  # the first best: a tie is no improvement
    assert best < clf.n_iter_ - 1  # stopped after later epochs did no better
    best_params, best_state = epochs[best][1]
    _, last_state = epochs[-1][1]
    assert not np.array_equal(best_state, last_state)  # the statistics moved on after the best epoch
    np.testing.assert_array_equal(clf.network_.params, best_params)
    np.testing.assert_array_equal(clf.network_.state, best_state)
    _, X_val, _, y_val = train_test_split(images[:240], labels, test_size=0.25, random_state=0, stratify=labels)
    assert clf.score(X_val, y_val) == clf.best_validation_score_  # prediction reads the restored statistics


@pytest.mark.parametrize("unknown", [7, 1], ids=["beyond-the-classes", "between-two-classes"])
def test_partial_fit_never_maps_an_unknown_label_onto_a_class(blobs, unknown):
    X, y = blobs
    classes = [0, 2, 5]
    labels = np.array(classes)[y]
    clf = quick().partial_fit(X, labels, classes=classes)
    before = clf.network_.params.copy()
    bad = labels.copy()
    bad[:10] = unknown  # 7 sorts after every class, 1 between 0 and 2: neither may become a neighbour
    with pytest.raises(ValueError, match=rf"y has labels not in classes: array\(\[{unknown}\]\)"):
        clf.partial_fit(X, bad)
    np.testing.assert_array_equal(clf.network_.params, before)  # nothing was trained on them
    assert len(clf.loss_curve_) == 1


# -- pickling and files ---------------------------------------------------------------------------


def test_pickled_estimator_predicts_and_trains_on_identically(blobs):
    X, y = blobs
    clf = quick(max_iter=2).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    # the copy's layers and coefs_ are views into its own flat parameters, so training it keeps working
    assert np.shares_memory(copy.network_.layers[0].W, copy.network_.params)
    assert np.shares_memory(copy.coefs_[0], copy.network_.params)
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)
    np.testing.assert_array_equal(copy.network_.params, clf.network_.params)
    np.testing.assert_array_equal(copy.coefs_[0], clf.coefs_[0])


def test_fitted_network_saves_as_a_model_file(blobs, tmp_path):
    X, y = blobs
    clf = quick(max_iter=2).fit(X, y)
    clf.network_.save(tmp_path / "model.npz")
    np.testing.assert_array_equal(Network.load(tmp_path / "model.npz").predict(X), clf.predict(X))


# -- scikit-learn tools -------------------------------------------------------------------------


def test_params_round_trip_through_get_and_set_params():
    clf = MLPClassifier((32, 16), ("relu", "tanh"), max_iter=3)
    params = clf.get_params()
    assert params["hidden_layer_sizes"] == (32, 16) and params["activation"] == ("relu", "tanh")
    assert params["max_iter"] == 3 and params["solver"] == "adam"
    clf.set_params(max_iter=7, learning_rate_init=0.1)
    assert clf.max_iter == 7 and clf.learning_rate_init == 0.1
    assert clone(clf).get_params() == clf.get_params()


def test_works_in_a_pipeline_with_a_scaler(rng):
    X = rng.normal(50.0, 20.0, (200, 5))  # far from [0, 1]
    y = (X[:, 0] + X[:, 1] > 100.0).astype(int)
    pipe = make_pipeline(StandardScaler(), quick(max_iter=40)).fit(X, y)
    assert pipe.score(X, y) > 0.9
    assert pipe.predict_proba(X).shape == (200, 2)


def test_grid_search_picks_parameters_by_cross_validation(blobs):
    X, y = blobs
    grid = {"hidden_layer_sizes": [(4,), (8,)], "learning_rate_init": [1e-6, 1e-2], "max_iter": np.array([10])}
    search = GridSearchCV(quick(), grid, cv=3).fit(X, y)
    assert search.best_params_["learning_rate_init"] == 1e-2  # 1e-6 barely moves the weights in 10 epochs
    assert search.best_score_ > 0.9
    assert isinstance(search.best_estimator_.max_iter, int | np.integer)


def test_cross_val_score_gives_one_score_per_fold(blobs):
    X, y = blobs
    scores = cross_val_score(quick(), X, y, cv=4)
    assert scores.shape == (4,) and scores.min() > 0.9


# -- the convolutional classifier ---------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_images():
    """scikit-learn's 1,797 8×8 digits as (m, 8, 8) images in [0, 1]."""
    digits = load_digits()
    return digits.images / 16.0, digits.target


def small_cnn(**params) -> CNNClassifier:
    defaults = dict(
        layers="conv8k3p1-relu-maxpool2-flatten-32:relu",
        max_iter=20,
        batch_size=32,
        learning_rate_init=0.01,
        random_state=0,
    )
    return CNNClassifier(**{**defaults, **params})


def test_cnn_learns_digit_images_in_every_input_layout(digit_images):
    images, y = digit_images
    clf = small_cnn().fit(images[:1400], y[:1400])
    assert clf.image_shape_ == (1, 8, 8) and clf.n_features_in_ == 64
    assert clf.network_.spec == "1x8x8-conv8k3p1-relu-maxpool2-flatten-32:relu-10:softmax"
    assert clf.score(images[1400:], y[1400:]) > 0.88
    P = clf.predict_proba(images[1400:])
    np.testing.assert_array_equal(clf.predict_proba(images[1400:].reshape(-1, 64)), P)  # flat rows
    np.testing.assert_array_equal(clf.predict_proba(images[1400:, None]), P)  # (m, 1, 8, 8)
    assert [W.shape for W in clf.coefs_] == [(3, 3, 1, 8), (128, 32), (32, 10)]
    assert clf.n_layers_ == len(clf.network_.layers) + 1 and clf.out_activation_ == "softmax"
    with pytest.raises(ValueError, match=r"images of shape \(1, 4, 16\), but the network was fitted on \(1, 8, 8\)"):
        clf.predict(images[1400:].reshape(-1, 4, 16))


def test_cnn_flat_rows_with_image_shape_train_as_the_images(digit_images):
    images, y = digit_images
    as_images = small_cnn(max_iter=2).fit(images[:200], y[:200])
    as_rows = small_cnn(max_iter=2, image_shape=(1, 8, 8)).fit(images[:200].reshape(200, 64), y[:200])
    square = small_cnn(max_iter=2).fit(images[:200].reshape(200, 64), y[:200])  # 64 values: read as 1x8x8
    np.testing.assert_array_equal(as_rows.network_.params, as_images.network_.params)
    np.testing.assert_array_equal(square.network_.params, as_images.network_.params)
    channels = small_cnn(max_iter=1, layers="conv4k3-relu", image_shape=(2, 4, 8)).fit(
        images[:50].reshape(50, 64), y[:50]
    )
    assert channels.network_.spec.startswith("2x4x8-conv4k3")
    with pytest.raises(ValueError, match="not a square image; give image_shape"):
        small_cnn().fit(images[:50].reshape(50, 64)[:, :60], y[:50])
    with pytest.raises(ValueError, match=r"image_shape must be \(C, H, W\) with C·H·W = 64"):
        small_cnn(image_shape=(1, 8, 9)).fit(images[:50], y[:50])


def test_cnn_follows_the_estimator_conventions(digit_images):
    images, y = digit_images
    clf = small_cnn(max_iter=2, batch_size=64)
    assert clone(clf).get_params() == clf.get_params() and clf.get_params()["image_shape"] is None
    with pytest.raises(NotFittedError):
        clf.predict(images[:5])
    assert clf.fit(images[:100], y[:100]) is clf
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(images[:20]), clf.predict_proba(images[:20]))
    stepped = small_cnn(max_iter=2, batch_size=64)
    for _ in range(2):
        stepped.partial_fit(images[:100], y[:100], classes=np.arange(10))
    np.testing.assert_array_equal(stepped.network_.params, clf.network_.params)
    search = GridSearchCV(small_cnn(max_iter=3), {"learning_rate_init": [1e-3, 1e-2]}, cv=2).fit(images[:200], y[:200])
    assert search.best_params_["learning_rate_init"] in (1e-3, 1e-2) and 0.0 <= search.best_score_ <= 1.0


def test_cnn_default_architecture_is_the_cnn_preset():
    assert CNNClassifier().layers == PRESETS["cnn"].layers
    assert CNNClassifier().max_iter == 10


# -- optional dependency -------------------------------------------------------------------------


def test_importing_nnscratch_does_not_import_scikit_learn():
    code = "import sys, nnscratch, nnscratch.cli; sys.exit('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_missing_scikit_learn_gives_an_install_hint(monkeypatch):
    monkeypatch.delitem(sys.modules, "nnscratch.sklearn")
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install 'nnscratch\[sklearn\]'"):
        import nnscratch.sklearn  # noqa: F401


@pytest.mark.parametrize(
    "estimator, message",
    [
        (MLPClassifier(hidden_layer_sizes=(10**9,)), r"parameters need 3\.2 TB"),
        (MLPClassifier(hidden_layer_sizes=(10**10,)), "at most 2,147,483,647"),
        (CNNClassifier(layers="conv999999k3"), r"parameters need 8\.2 GB .* the output layer '3:softmax'"),
        (CNNClassifier(layers="conv4k3p999999-relu"), "one example needs"),
    ],
)
def test_a_network_too_large_for_memory_is_a_value_error_at_fit(estimator, message, monkeypatch, rng):
    from tests.test_network import small_machine

    small_machine(monkeypatch)  # 16 GB, and no network buffers may be allocated
    X, y = rng.random((20, 784)), np.arange(20) % 3
    with pytest.raises(ValueError, match=message):
        estimator.fit(X, y)
    assert not hasattr(estimator, "network_")


def test_training_batches_that_cannot_fit_are_a_value_error_before_the_network_is_built(monkeypatch, rng):
    # 785,000 weights: 3.1 MB, and 6.3 MB more while drawn, fit in 10 MB; four copies for training do not
    monkeypatch.setattr("nnscratch.layers.base.available_memory", lambda: 10**7)
    built = []
    monkeypatch.setattr("nnscratch.network._buffer", lambda *args: built.append(args))
    with pytest.raises(ValueError, match=r"training on batches of 20 needs about 13\.3 MB: 12\.6 MB for the param"):
        MLPClassifier(hidden_layer_sizes=(1000,)).fit(rng.random((20, 784)), np.arange(20) % 3)
    assert built == []
