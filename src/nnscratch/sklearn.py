"""scikit-learn classifiers on the nnscratch engine: ``MLPClassifier`` and ``CNNClassifier``.

>>> from nnscratch.sklearn import MLPClassifier          # instead of sklearn.neural_network's
>>> clf = MLPClassifier(hidden_layer_sizes=(128, 64), random_state=0).fit(X_train, y_train)
>>> clf.score(X_test, y_test)

Legend: m = samples, n = features, k = classes, C×H×W = an image.

``MLPClassifier`` is a drop-in for ``sklearn.neural_network.MLPClassifier``: the same parameters
with the same meanings and defaults, the same stopping rule (``n_iter_no_change`` epochs without a
``tol`` improvement of the training loss, or of the validation accuracy with ``early_stopping``;
a ``ConvergenceWarning`` at ``max_iter``), and the same fitted attributes.  The training itself is
the engine's, one epoch at a time through :class:`~nnscratch.training.Trainer` and its
:class:`~nnscratch.training.TrainState`; scikit-learn's solvers map onto it so:

* ``solver="adam"``: Adam with ``beta_1``, ``beta_2``, ``epsilon`` at ``learning_rate_init``;
* ``solver="sgd"``: gradient descent with ``momentum`` (Nesterov's when ``nesterovs_momentum``), and
  ``learning_rate`` "constant", "invscaling" (after each epoch η = learning_rate_init / (t + 1)^power_t,
  t the samples seen so far) or "adaptive" (η / 5 each time ``n_iter_no_change`` epochs pass without
  a ``tol`` improvement; training stops once η <= 1e-6);
* ``alpha``, scikit-learn's L2 penalty α/(2·batch) Σ‖W‖² on each batch's mean loss, is the engine's
  L2 weight decay λ = α / batch_size.

Beyond scikit-learn's parameters it takes nnscratch's own: one activation per hidden layer, from
every activation the engine has (SELU, softmax and leaky ReLU besides scikit-learn's four;
"logistic" is the sigmoid), inverted ``dropout``, the weight initialiser ``init`` (scikit-learn's
uniform Glorot by default) and the ``dtype`` (float32 by default).

Where it differs from scikit-learn's: the output layer is a softmax over k units for every k, two
classes included (scikit-learn uses one logistic unit there), so ``n_outputs_`` is k and
``out_activation_`` "softmax"; ``solver="lbfgs"``, ``sample_weight`` and multi-label targets are not
supported; sparse input is made dense; ``partial_fit`` carries the generator of the shuffling over
from call to call, so ``fit`` followed by ``partial_fit`` equals a longer ``fit`` bit for bit.

``CNNClassifier`` follows the same conventions for images: (m, H, W) or (m, C, H, W) arrays, or flat
rows (m, C·H·W) with an ``image_shape``, through any convolutional network the spec grammar writes.

scikit-learn is an optional dependency (``pip install 'nnscratch[sklearn]'``); ``import nnscratch``
never imports it.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised by a test that hides scikit-learn
    raise ImportError(
        "nnscratch.sklearn needs scikit-learn; install it with: pip install 'nnscratch[sklearn]'"
    ) from exc

from nnscratch.activations import get_activation
from nnscratch.layers import Layer
from nnscratch.network import Network
from nnscratch.optimizers import SGD, Adam, Momentum, Optimizer
from nnscratch.presets import PRESETS
from nnscratch.spec import DenseSpec, compose_spec, output_layer, parse_spec, square_side
from nnscratch.training import EpochRecord, History, TrainConfig, Trainer, TrainState

__all__ = ["CNNClassifier", "MLPClassifier"]

SOLVERS = ("adam", "sgd")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
ACTIVATION_ALIASES = {"logistic": "sigmoid"}  # scikit-learn's name → the engine's
MIN_ADAPTIVE_RATE = 1e-6  # "adaptive" stops when the rate has fallen this far, as scikit-learn does
NO_Y = "no_validation"  # scikit-learn's marker for "validate X alone"
SPARSE = ["csr", "csc"]  # sparse formats taken as they are (others are converted), as scikit-learn's MLP does


class _NetworkClassifier(ClassifierMixin, BaseEstimator):
    """What both estimators share: scikit-learn's stochastic training loop on the engine, prediction, pickling.

    A subclass states its network (``_architecture``) and checks its inputs, as flat rows (``_validate``).
    """

    # What fit sets (declared, not assigned: scikit-learn counts an estimator as fitted once they exist).
    classes_: np.ndarray
    network_: Network
    history_: History
    n_iter_: int
    t_: int
    n_outputs_: int
    n_layers_: int
    out_activation_: str
    loss_: float
    loss_curve_: list[float]
    validation_scores_: list[float] | None  # None without early_stopping
    best_validation_score_: float | None  # None without early_stopping
    best_loss_: float | None  # None with early_stopping
    coefs_: list[np.ndarray]
    intercepts_: list[np.ndarray]
    _seed_value: int
    _train_state: TrainState
    _learning_rate: float
    _no_improvement_count: int
    _best_params: np.ndarray | None  # the best epoch's weights and state, with early_stopping
    _best_state: np.ndarray | None

    def _architecture(self, n_features: int, n_classes: int) -> tuple[tuple[int, ...], list[Layer]]:
        """(input shape, layers) of the network for data of ``n_features`` values and ``n_classes`` classes."""
        raise NotImplementedError

    def _build_network(self, n_features: int, n_classes: int, seed: int, batch_size: int) -> Network:
        """The network, refused with a ValueError before any array exists if it, or training it on
        batches of ``batch_size``, cannot fit in this machine's memory."""
        input_shape, layers = self._architecture(n_features, n_classes)
        Network.plan(input_shape, layers, dtype=self.dtype)[1].check_batch(batch_size)
        return Network(input_shape, layers, seed=seed, dtype=self.dtype, init=self.init)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # accepted, and made dense: the engine computes on dense arrays
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "network_")

    # -- fitting ----------------------------------------------------------------------------------

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> _NetworkClassifier:
        """Train on X and labels y (m,) until the loss stops improving or for ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (m, n) (``CNNClassifier``: also (m, H, W) or (m, C, H, W))
            Training inputs; sparse matrices are made dense.
        y : array-like of shape (m,)
            Class labels of any kind (ints, strings, ...).

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: npt.ArrayLike, y: npt.ArrayLike, classes: npt.ArrayLike | None = None):
        """Train for one epoch over X, y (m,), continuing from the current state.

        Parameters
        ----------
        X : array-like of shape (m, n) (``CNNClassifier``: also images)
            Training inputs of this part of the data.
        y : array-like of shape (m,)
            Their labels, each one of ``classes``.
        classes : array-like of shape (k,), default=None
            Every class that will ever be seen; required on the first call, optional later.  ``y``
            need not contain them all.

        Returns
        -------
        self
        """
        first_call = not hasattr(self, "network_")
        if first_call and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit, e.g. classes=np.unique(y_all)")
        if classes is not None:
            classes = np.unique(np.asarray(classes))
            if not first_call and not np.array_equal(classes, self.classes_):
                raise ValueError(f"classes={classes!r} differs from the classes of earlier calls, {self.classes_!r}")
        return self._fit(X, y, incremental=True, classes=classes)

    def _fit(self, X: Any, y: Any, *, incremental: bool, classes: np.ndarray | None = None):
        """scikit-learn's ``_fit`` + ``_fit_stochastic``, one engine epoch per iteration."""
        settings = self._settings()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "network_") or (not self.warm_start and not incremental)
        X, y = self._validate(X, y, reset=first_pass)
        classes = self._classes(y, first_pass=first_pass, incremental=incremental, classes=classes)
        labels = _encode(y, classes)
        if first_pass:
            seed = self._seed()
            # may refuse (from shapes alone, before any array: one that cannot fit): nothing is changed yet
            network = self._build_network(X.shape[1], len(classes), seed, settings["batch_size"](X.shape[0]))
            self._initialize(network, classes, seed)
        X = X.astype(self.network_.dtype, copy=False)  # once, not in every epoch's trainer
        if not incremental or self._train_state.optimizer is None:
            self._train_state.optimizer = self._optimizer()
            self._learning_rate = float(self.learning_rate_init)

        X_val = y_val = None
        if self.early_stopping:
            X, X_val, labels, y_val = train_test_split(
                X,
                labels,
                test_size=self.validation_fraction,
                random_state=self._seed_value,
                stratify=labels,
            )
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small; increase validation_fraction or the size of the data set"
                )
        m = X.shape[0]
        batch_size = settings["batch_size"](m)
        config = TrainConfig(
            epochs=self._train_state.epoch + 1,
            batch_size=batch_size,
            learning_rate=self._learning_rate,
            l2=float(self.alpha) / batch_size,
            dropout=float(self.dropout),
            validation_size=0,
            seed=self._seed_value,
            shuffle=bool(self.shuffle),
            calibrate=False,  # predict_proba is the network's own softmax, as scikit-learn's estimators give it
        )
        validation: tuple[Any, Any] | None = (X_val, y_val) if self.early_stopping else None
        trainer = Trainer(self.network_, X, labels, config, validation=validation, state=self._train_state)

        self.n_iter_ = 0
        try:
            for _ in range(settings["max_iter"]):
                # one engine epoch, continuing the state, at the rate scikit-learn's rules set
                record = trainer.run_more(1, learning_rate=self._learning_rate).epochs[-1]
                self.n_iter_ += 1
                self.loss_ = record.train_loss
                self.t_ += m
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                self._update_no_improvement_count(record)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    self._learning_rate = float(self.learning_rate_init) / (self.t_ + 1) ** float(self.power_t)
                if self._no_improvement_count > settings["n_iter_no_change"]:
                    if self._stop():
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == settings["max_iter"]:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({settings['max_iter']}) reached and the "
                        "optimization hasn't converged yet.",
                        ConvergenceWarning,
                        stacklevel=3,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=3)
        if self.early_stopping and self._best_params is not None:
            self.network_.params[...] = self._best_params
            self.network_.state[...] = self._best_state
        return self

    def _update_no_improvement_count(self, record: EpochRecord) -> None:
        """scikit-learn's rule: count the epochs that do not beat the best by ``tol``."""
        tol = float(self.tol)
        if self.early_stopping:
            score = record.val_accuracy
            scores, best = self.validation_scores_, self.best_validation_score_
            if scores is None or best is None:  # early_stopping switched on since a fit without it (warm_start)
                raise AttributeError("validation_scores_ is None: early_stopping was off when the network was made")
            scores.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            self._no_improvement_count = self._no_improvement_count + 1 if score < best + tol else 0
            if score > best:
                self.best_validation_score_ = score
                self._best_params, self._best_state = self.network_.params.copy(), self.network_.state.copy()
        else:
            loss = self.loss_curve_[-1]
            best_loss = self.best_loss_
            if best_loss is None:  # early_stopping switched off since a fit with it (warm_start)
                raise TypeError("best_loss_ is None: early_stopping was on when the network was made")
            self._no_improvement_count = self._no_improvement_count + 1 if loss > best_loss - tol else 0
            self.best_loss_ = min(best_loss, loss)

    def _stop(self) -> bool:
        """After ``n_iter_no_change`` epochs without progress: stop, or (sgd, "adaptive") divide the rate by 5."""
        what = "Validation score" if self.early_stopping else "Training loss"
        message = f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} consecutive epochs."
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(message + " Stopping.")
            return True
        if self._learning_rate <= MIN_ADAPTIVE_RATE:
            if self.verbose:
                print(message + " Learning rate too small. Stopping.")
            return True
        self._learning_rate /= 5.0
        if self.verbose:
            print(message + f" Setting learning rate to {self._learning_rate:f}")
        return False

    def _initialize(self, network: Network, classes: np.ndarray, seed: int) -> None:
        """A new network and a new record of training (scikit-learn's ``_initialize``)."""
        self.classes_, self.network_, self._seed_value = classes, network, seed
        self._train_state = TrainState()
        self.history_ = self._train_state.history  # the same object: it grows as the state trains
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = len(self.classes_)
        self.n_layers_ = len(self.network_.layers) + 1  # with the input layer, as scikit-learn counts
        self.out_activation_ = "softmax"
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self._best_params = self._best_state = None
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self._expose_weights()

    def _expose_weights(self) -> None:
        """``coefs_`` and ``intercepts_``: views of the weights and biases of every layer that has them."""
        layers = [self.network_.layers[i] for i in self.network_.weighted_layers]
        self.coefs_ = [layer.params["W"] for layer in layers]
        self.intercepts_ = [layer.params["b"] for layer in layers]

    def _classes(self, y: np.ndarray, *, first_pass: bool, incremental: bool, classes: np.ndarray | None) -> np.ndarray:
        """The classes (k,) this call trains on, checked against earlier calls as scikit-learn does."""
        check_classification_targets(y)
        if first_pass:
            if not incremental:
                return np.unique(y)
            if classes is None:  # partial_fit refuses a first call without classes before it gets here
                raise ValueError("classes must be passed on the first call to partial_fit")
            return classes
        if self.warm_start and not incremental and not np.array_equal(np.unique(y), self.classes_):
            raise ValueError(
                f"warm_start can only be used where y has the same classes as in the previous call to fit: "
                f"previously {self.classes_!r}, now {np.unique(y)!r}"
            )
        return self.classes_

    def _optimizer(self) -> Optimizer:
        if self.solver == "adam":
            return Adam(float(self.beta_1), float(self.beta_2), float(self.epsilon))
        if self.momentum == 0:
            return SGD()
        return Momentum(float(self.momentum), nesterov=bool(self.nesterovs_momentum))

    # -- prediction -------------------------------------------------------------------------------

    def predict_proba(self, X: npt.ArrayLike) -> np.ndarray:
        """Class probabilities P (m, k); column i is ``classes_[i]``, rows sum to 1."""
        check_is_fitted(self)
        return self.network_.predict_proba(self._validate(X, reset=False))

    def predict_log_proba(self, X: npt.ArrayLike) -> np.ndarray:
        """log P (m, k), the logarithm of :meth:`predict_proba`."""
        P = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(P, out=P)

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """The most probable class (m,) for each input, taken from ``classes_``."""
        check_is_fitted(self)
        return self.classes_[self.network_.predict(self._validate(X, reset=False))]

    # -- parameters -------------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        """Check the hyperparameters scikit-learn's way (in fit, not __init__); returns the derived ones."""
        if self.solver not in SOLVERS:
            extra = "; 'lbfgs' is not available in nnscratch" if self.solver == "lbfgs" else ""
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}{extra}")
        if self.learning_rate not in LEARNING_RATES:
            raise ValueError(f"learning_rate must be one of {', '.join(LEARNING_RATES)}, got {self.learning_rate!r}")
        _check_number("learning_rate_init", self.learning_rate_init, low=0.0, low_open=True)
        _check_number("alpha", self.alpha, low=0.0)
        _check_number("tol", self.tol, low=0.0)
        _check_number("power_t", self.power_t)
        _check_number("momentum", self.momentum, low=0.0, high=1.0)
        _check_number("beta_1", self.beta_1, low=0.0, high=1.0)
        _check_number("beta_2", self.beta_2, low=0.0, high=1.0)
        _check_number("epsilon", self.epsilon, low=0.0, low_open=True)
        _check_number("dropout", self.dropout, low=0.0, high=1.0)
        if self.early_stopping:
            _check_number("validation_fraction", self.validation_fraction, low=0.0, high=1.0, low_open=True)
        for name in ("shuffle", "warm_start", "early_stopping", "nesterovs_momentum", "verbose"):
            if not isinstance(getattr(self, name), bool | np.bool_ | numbers.Integral):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        batch = self.batch_size
        if isinstance(batch, str) and batch == "auto":
            batch_size = _auto_batch
        else:
            fixed = _as_int(batch, "batch_size", "an integer >= 1 or 'auto'")
            if fixed < 1:
                raise ValueError(f"batch_size must be an integer >= 1 or 'auto', got {batch!r}")
            batch_size = _FixedBatch(fixed)
        return {
            "batch_size": batch_size,
            "max_iter": _positive_int(self.max_iter, "max_iter"),
            "n_iter_no_change": _positive_int(self.n_iter_no_change, "n_iter_no_change"),
        }

    def _seed(self) -> int:
        """One int seed for the weights, the shuffling and the validation split, drawn from ``random_state``."""
        state = self.random_state
        if isinstance(state, numbers.Integral) and not isinstance(state, bool):
            return int(state)
        if isinstance(state, np.random.RandomState):
            return int(state.randint(np.iinfo(np.int32).max))
        if state is None or isinstance(state, np.random.Generator):
            return int(np.random.default_rng(state).integers(np.iinfo(np.int32).max))
        raise ValueError(f"random_state must be None, an int, a numpy Generator or RandomState, got {state!r}")

    # -- pickling ---------------------------------------------------------------------------------

    # Layers hold views into the network's flat parameter buffer, and pickle would store the views as
    # separate copies; so a fitted estimator is pickled with its network as (header, flat buffers),
    # and coefs_ and intercepts_ are made views of the rebuilt network again.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        if "network_" in state:
            net = state["network_"]
            state["network_"] = (net.header(), net.params, net.state)
            state.pop("coefs_", None)
            state.pop("intercepts_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "network_" in state:
            header, params, net_state = state["network_"]
            net = Network.from_header(header, {}, source="pickle", params=params, state=net_state)
            state = {**state, "network_": net}
        super().__setstate__(state)
        if "network_" in state:
            self._expose_weights()


_FITTED_ATTRIBUTES = """
    Attributes
    ----------
    classes_ : ndarray of shape (k,)
        The class labels, sorted; output unit i of the network stands for ``classes_[i]``.
    loss_ : float
        The training loss (mean cross-entropy + L2 term) of the last epoch.
    best_loss_ : float or None
        The lowest training loss reached; None with ``early_stopping``.
    loss_curve_ : list of float
        The training loss of every epoch.
    validation_scores_ : list of float or None
        The validation accuracy of every epoch with ``early_stopping``, else None.
    best_validation_score_ : float or None
        The best validation accuracy with ``early_stopping`` (its weights are the ones kept), else None.
    t_ : int
        Training samples seen: m per epoch.
    coefs_ : list of ndarray
        The weights of each layer that has them: (n_in, n_out) for dense layers, (k, k, C, F) for
        convolutions.  Views into the network's parameters.
    intercepts_ : list of ndarray
        The biases of the same layers, (n_out,) or (F,).
    n_features_in_ : int
        Values per input seen by ``fit``.
    feature_names_in_ : ndarray of shape (n,)
        Feature names, when ``X`` had string column names.
    n_iter_ : int
        Epochs run by the last call to ``fit`` (or 1 after ``partial_fit``).
    n_layers_ : int
        Layers, the input layer included.
    n_outputs_ : int
        Output units: k (a softmax unit per class, two for a binary problem).
    out_activation_ : str
        "softmax".
    network_ : nnscratch.Network
        The trained network; ``network_.save(path)`` writes a model file for ``nnscratch evaluate``,
        ``predict`` and ``export``.
    history_ : nnscratch.History
        Every epoch's record (loss, accuracy, validation loss and accuracy, learning rate, seconds).
"""

_TRAINING_PARAMETERS = """
    solver : {"adam", "sgd"}, default="adam"
        Adam, or gradient descent with momentum.
    alpha : float, default=0.0001
        Strength of the L2 penalty, α/(2·batch) Σ‖W‖² added to each batch's mean loss.
    batch_size : int or "auto", default="auto"
        Mini-batch size; "auto" is min(200, m).  Capped at m.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        The rate schedule of ``solver="sgd"`` (see the module docstring); Adam keeps ``learning_rate_init``.
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
        The exponent of "invscaling".
    shuffle : bool, default=True
        Draw a new order of the samples every epoch.
    random_state : int, numpy Generator or RandomState, or None, default=None
        Seeds the weights, the shuffling, dropout and the validation split.  An int k gives the network
        ``Network(..., seed=k)`` starts from; a Generator or RandomState gives one seed drawn from it.
    tol : float, default=1e-4
        The improvement that counts as progress, of the training loss or the validation accuracy.
    verbose : bool, default=False
        Print the loss of every epoch.
    warm_start : bool, default=False
        ``fit`` continues from the current weights instead of new ones.
    momentum : float, default=0.9
        Momentum μ of ``solver="sgd"`` (0 for plain gradient descent).
    nesterovs_momentum : bool, default=True
        Nesterov's momentum rather than heavy-ball.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified) and stop when its accuracy has not
        improved by ``tol`` for ``n_iter_no_change`` epochs; the best epoch's weights are kept.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and its ε.
    n_iter_no_change : int, default=10
        Epochs without progress before training stops (or the "adaptive" rate drops).
    dropout : float, default=0.0
        nnscratch's own: the probability of dropping each hidden dense unit while training.
    init : {"he", "glorot", "lecun", "uniform"} or None
        nnscratch's own: the weight initialiser of every layer; None matches each layer's activation
        (He for ReLU, Glorot for sigmoid and tanh, LeCun for SELU).  ``MLPClassifier`` defaults to
        "glorot", scikit-learn's uniform Glorot initialisation, ``CNNClassifier`` to None.
    dtype : {"float32", "float64"}, default="float32"
        nnscratch's own: the precision of the weights and of the computation.
"""


class MLPClassifier(_NetworkClassifier):
    """Multi-layer perceptron classifier trained by the nnscratch engine: scikit-learn's ``MLPClassifier``
    parameters and attributes, nnscratch's activations, dropout and float32.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer; ``()`` gives softmax regression.
    activation : str or sequence of str, default="relu"
        Activation of the hidden layers: one name for all, or one per hidden layer, e.g.
        ``("relu", "sigmoid", "selu", "tanh")``.  Any name of ``nnscratch.ACTIVATIONS`` (relu, sigmoid,
        tanh, selu, softmax, identity, leaky_relu), and "logistic" for the sigmoid.
    max_iter : int, default=200
        The most epochs ``fit`` runs; reaching it warns with a ``ConvergenceWarning``.
    max_fun : int, default=15000
        Accepted for compatibility: scikit-learn uses it with ``solver="lbfgs"`` only.
    """

    __doc__ = (__doc__ or "").rstrip() + _TRAINING_PARAMETERS + _FITTED_ATTRIBUTES

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str | Sequence[str] = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.Generator | np.random.RandomState | None = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
        dropout: float = 0.0,
        init: str | None = "glorot",
        dtype: str = "float32",
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.init = init
        self.dtype = dtype

    def _hidden_layers(self) -> list[DenseSpec]:
        hidden = self.hidden_layer_sizes
        # int spelled out beside Integral: the type checker does not know that int is an Integral
        sizes: list[object] = [hidden] if isinstance(hidden, int | numbers.Integral) else list(hidden)
        units = [_positive_int(u, "hidden_layer_sizes") for u in sizes]
        if isinstance(self.activation, str):
            names = [self.activation] * len(units)
        else:
            names = list(self.activation)
            if len(names) != len(units):
                raise ValueError(
                    f"activation lists {len(names)} names for {len(units)} hidden layers; "
                    "give one name for all layers or one per layer"
                )
        return [DenseSpec(u, _activation_name(a)) for u, a in zip(units, names, strict=True)]

    def _architecture(self, n_features: int, n_classes: int) -> tuple[tuple[int, ...], list[Layer]]:
        return (n_features,), [*(spec.layer() for spec in self._hidden_layers()), output_layer(n_classes)]

    def _validate(self, X: Any, y: Any = NO_Y, *, reset: bool) -> Any:
        """Rows X (m, n) (and y, when given), checked and converted by scikit-learn; sparse input made dense."""
        if y is NO_Y:
            return _dense(validate_data(self, X, reset=reset, accept_sparse=SPARSE, dtype=(np.float64, np.float32)))
        X, y = validate_data(self, X, y, reset=reset, accept_sparse=SPARSE, dtype=(np.float64, np.float32))
        return _dense(X), y


CNN_LAYERS = PRESETS["cnn"].layers


class CNNClassifier(_NetworkClassifier):
    """Convolutional classifier for images, trained by the nnscratch engine with ``MLPClassifier``'s conventions.

    Images come as (m, H, W) (one channel), (m, C, H, W), or flat rows (m, C·H·W) in channels-first
    order with ``image_shape=(C, H, W)``; flat rows of a square number of values without one are read
    as one square channel (784 as 1×28×28).

    Parameters
    ----------
    layers : str, default: the ``cnn`` preset's
        The network between the input and the output layer, in the spec grammar, e.g.
        ``"conv32k3-relu-maxpool2-conv64k3-relu-maxpool2-flatten-dropout0.5"``; the default is the
        layers of ``nnscratch train --preset cnn`` (``nnscratch.presets.PRESETS["cnn"].layers``), convolutions
        with batch norm, max pooling, dropout and a dense layer.
    image_shape : (C, H, W) or None, default=None
        The shape of one image, for flat rows; None reads it from the array (see above).
    max_iter : int, default=10
        The most epochs ``fit`` runs; reaching it warns with a ``ConvergenceWarning``.  Fewer than
        ``MLPClassifier``'s 200: an epoch of a convnet over MNIST takes seconds, not a fraction of one.
    """

    __doc__ = (
        (__doc__ or "").rstrip()
        + _TRAINING_PARAMETERS
        + _FITTED_ATTRIBUTES.rstrip()
        + """
    image_shape_ : tuple (C, H, W)
        The shape of one image, as the network takes it.
"""
    )

    image_shape_: tuple[int, int, int]  # set by fit

    def __init__(
        self,
        layers: str = CNN_LAYERS,
        image_shape: Sequence[int] | None = None,
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 10,
        shuffle: bool = True,
        random_state: int | np.random.Generator | np.random.RandomState | None = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        dropout: float = 0.0,
        init: str | None = None,
        dtype: str = "float32",
    ) -> None:
        self.layers = layers
        self.image_shape = image_shape
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.init = init
        self.dtype = dtype

    def _architecture(self, n_features: int, n_classes: int) -> tuple[tuple[int, ...], list[Layer]]:
        return parse_spec(compose_spec(self.image_shape_, str(self.layers), n_classes))

    def _validate(self, X: Any, y: Any = NO_Y, *, reset: bool) -> Any:
        """Images or rows X as flat rows (m, C·H·W) (and y, if given), checked by scikit-learn; sets image_shape_."""
        shape: tuple[int, int, int] | None = None
        if not hasattr(X, "tocsr") and not hasattr(X, "columns"):  # neither sparse nor a data frame
            array = np.asarray(X)
            if array.ndim in (3, 4):
                C, H, W = (1, *array.shape[1:]) if array.ndim == 3 else array.shape[1:]
                shape = (C, H, W)
                X = array.reshape(array.shape[0], -1)
        if y is NO_Y:
            X = _dense(validate_data(self, X, reset=reset, accept_sparse=SPARSE, dtype=(np.float64, np.float32)))
        else:
            X, y = validate_data(self, X, y, reset=reset, accept_sparse=SPARSE, dtype=(np.float64, np.float32))
            X = _dense(X)
        if reset:
            self.image_shape_ = self._image_shape(shape, X.shape[1])
        elif shape is not None and shape != self.image_shape_:
            raise ValueError(f"X holds images of shape {shape}, but the network was fitted on {self.image_shape_}")
        return X if y is NO_Y else (X, y)

    def _image_shape(self, seen: tuple[int, int, int] | None, n_features: int) -> tuple[int, int, int]:
        if self.image_shape is not None:
            shape = tuple(_positive_int(d, "image_shape") for d in self.image_shape)
            if len(shape) != 3 or math.prod(shape) != n_features:
                raise ValueError(
                    f"image_shape must be (C, H, W) with C·H·W = {n_features} values per input, "
                    f"got {self.image_shape!r}"
                )
            if seen is not None and seen != shape:
                raise ValueError(f"X holds images of shape {seen}, but image_shape is {shape}")
            return shape
        if seen is not None:
            return seen
        side = square_side(n_features)
        if side is None:
            raise ValueError(
                f"X has {n_features} values per row, not a square image; give image_shape=(C, H, W) "
                "or pass X as (m, H, W) or (m, C, H, W) images"
            )
        return (1, side, side)


# -- helpers ------------------------------------------------------------------------------------


def _auto_batch(m: int) -> int:
    return min(200, m)


class _FixedBatch:
    """A fixed batch size, capped at the number of samples (with scikit-learn's warning)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, m: int) -> int:
        if self.size > m:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped", stacklevel=4
            )
        return min(self.size, m)


def _dense(X: Any) -> np.ndarray:
    return X.toarray() if hasattr(X, "toarray") else X


def _activation_name(name: Any) -> str:
    if not isinstance(name, str):
        raise ValueError(f"an activation must be a name such as 'relu', got {name!r}")
    key = ACTIVATION_ALIASES.get(name, name)
    return get_activation(key).name  # raises SpecError (a ValueError) naming the choices


def _as_int(value: Any, name: str, expected: str) -> int:
    """``value`` as a Python int (NumPy integers from a parameter grid included)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise ValueError(f"{name} must be {expected}, got {value!r}")


def _positive_int(value: Any, name: str) -> int:
    number = _as_int(value, name, "an integer >= 1")
    if number < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return number


def _check_number(
    name: str, value: Any, *, low: float = -math.inf, high: float = math.inf, low_open: bool = False
) -> None:
    """Refuse anything but a real number in [low, high] ((low, high] with ``low_open``; high is open when finite)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high or high == math.inf)
    if not ok:
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g})"
        raise ValueError(f"{name} must be a number in {bounds}, got {value!r}")


def _encode(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Indices (m,) of the labels y (m,) in the sorted ``classes`` (k,); refuses unknown labels."""
    index = np.searchsorted(classes, y)
    known = index < len(classes)
    known[known] = classes[index[known]] == y[known]
    if not known.all():
        raise ValueError(f"y has labels not in classes: {np.unique(y[~known])!r}; pass every class in classes=")
    return index
