"""A scikit-learn classifier around the nnscratch engine: ``MLPClassifier``.

>>> from nnscratch.sklearn import MLPClassifier
>>> clf = MLPClassifier(hidden_layer_sizes=(128, 64), activation=("relu", "tanh"), epochs=10, random_state=0)
>>> clf.fit(X_train, y_train).score(X_test, y_test)

Legend: m = samples, n = features, k = classes.

It follows scikit-learn's conventions (``__init__`` only stores the hyperparameters, fitted attributes
end in ``_``, ``fit`` returns ``self``), so it works in ``Pipeline``, ``GridSearchCV`` and
``cross_val_score`` and passes scikit-learn's estimator checks.  The training itself is the engine's:
the same network, optimisers, schedules and early stopping as ``nnscratch train``.

scikit-learn is an optional dependency (``pip install 'nnscratch[sklearn]'``); ``import nnscratch``
never imports it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:
    raise ImportError(
        "nnscratch.sklearn needs scikit-learn (>= 1.6); install it with: pip install 'nnscratch[sklearn]'"
    ) from exc

from nnscratch.network import LayerSpec, Network
from nnscratch.training import Callback, TrainConfig, Trainer

__all__ = ["MLPClassifier"]

# Schedules that need the total number of epochs in advance; partial_fit has no such total.
_SCHEDULES_WITH_HORIZON = ("cosine", "wsd")


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier trained by the nnscratch engine (softmax + cross-entropy).

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer, as in scikit-learn's ``MLPClassifier``; ``()`` gives softmax regression.
    activation : str or sequence of str, default="relu"
        Activation of the hidden layers: one name for all of them, or one name per hidden layer, e.g.
        ``("relu", "sigmoid", "selu", "tanh")``.  Names come from ``nnscratch.ACTIVATIONS``.
    optimizer : {"adam", "sgd", "momentum", "nesterov"}, default="adam"
    learning_rate : float, default=1e-3
        The (base) learning rate.
    momentum : float, default=0.9
        Momentum of the "momentum" and "nesterov" optimisers.
    schedule : {"constant", "step", "cosine", "wsd"}, default="constant"
        Learning-rate schedule over ``epochs``.  ``partial_fit`` accepts "constant" and "step" only.
    batch_size : int or None, default=128
        Mini-batch size (capped at the number of samples); None trains on the full batch.
    epochs : int, default=10
        Passes over the training data made by ``fit``.  ``partial_fit`` makes one pass per call.
    l2 : float, default=0.0
        L2 weight decay λ: the loss gains λ/2 · Σ‖W‖².
    dropout : float, default=0.0
        Probability of dropping each hidden unit while training (inverted dropout); 0 turns it off.
    early_stopping : int or None, default=None
        Patience: stop ``fit`` after this many epochs without a lower validation loss, and keep the
        best weights.  The validation set is ``validation_fraction`` of the training data, held out at random.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping; unused without it.
    init : {"he", "glorot", "lecun", "uniform"} or None, default=None
        Weight initialiser for every layer; None chooses the one matched to each layer's activation.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the weights and of the computation.
    random_state : int, numpy Generator or RandomState, or None, default=None
        Seeds the initial weights and the shuffling.  An int gives the same network as
        ``Network.from_layers(..., seed=random_state)``; None draws fresh entropy.

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
        The class labels, sorted; output unit i of the network stands for ``classes_[i]``.
    n_features_in_ : int
        Number of features n seen by ``fit``.
    feature_names_in_ : ndarray of shape (n,)
        Feature names, when ``X`` had string column names.
    network_ : nnscratch.Network
        The trained network, n inputs to k softmax outputs; ``network_.save(path)`` writes a model file.
    history_ : nnscratch.History
        Per-epoch records (loss, accuracy, validation loss and accuracy, learning rate, time).
    loss_curve_ : list of float
        Mean training loss of each epoch.
    validation_scores_ : list of float or None
        Validation accuracy of each epoch with early stopping, else None.
    n_iter_ : int
        Epochs trained so far (``fit`` resets it; each ``partial_fit`` adds one).

    Notes
    -----
    Features are expected in [0, 1] like MNIST pixels, but any real values train; put a
    ``StandardScaler`` in front of features with large or very different scales.

    ``partial_fit`` continues exactly: the optimiser's state (Adam's moments and step count, the
    momentum velocity) and the generator of the shuffling and dropout carry over between calls, so ``fit`` with
    ``epochs=e`` followed by ``partial_fit`` on the same data gives bit for bit the network of
    ``fit`` with ``epochs=e + 1``.
    """

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str | Sequence[str] = "relu",
        *,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        momentum: float = 0.9,
        schedule: str = "constant",
        batch_size: int | None = 128,
        epochs: int = 10,
        l2: float = 0.0,
        dropout: float = 0.0,
        early_stopping: int | None = None,
        validation_fraction: float = 0.1,
        init: str | None = None,
        dtype: str = "float32",
        random_state: int | np.random.Generator | np.random.RandomState | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.schedule = schedule
        self.batch_size = batch_size
        self.epochs = epochs
        self.l2 = l2
        self.dropout = dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.init = init
        self.dtype = dtype
        self.random_state = random_state

    # -- fitting ----------------------------------------------------------------------------------

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> MLPClassifier:
        """Train a new network on X (m, n) and labels y (m,) for ``epochs`` epochs.

        Parameters
        ----------
        X : array-like of shape (m, n)
            Training features, ideally in [0, 1].
        y : array-like of shape (m,)
            Class labels of any kind (ints, strings, ...).

        Returns
        -------
        self : MLPClassifier
        """
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        seed = self._seed()
        self.network_ = self._build_network(X.shape[1], len(self.classes_), seed)
        n_val = self._validation_count(X.shape[0])
        config = self._config(epochs=_as_int(self.epochs, "epochs"), seed=seed, validation_size=n_val)
        self._train(Trainer(self.network_, X, labels, config))
        return self

    def partial_fit(self, X: npt.ArrayLike, y: npt.ArrayLike, classes: npt.ArrayLike | None = None) -> MLPClassifier:
        """Train for one epoch over X (m, n), y (m,), continuing from the current state.

        Early stopping applies to ``fit`` only: ``partial_fit`` holds nothing out.

        Parameters
        ----------
        X : array-like of shape (m, n)
            Training features of this batch of data.
        y : array-like of shape (m,)
            Their labels, each one of ``classes``.
        classes : array-like of shape (k,), default=None
            Every class that will ever be seen; required on the first call (when nothing was
            fitted yet), optional later.  ``y`` need not contain them all.

        Returns
        -------
        self : MLPClassifier
        """
        first_call = not hasattr(self, "classes_")
        if first_call and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit, e.g. classes=np.unique(y_all)")
        if self.schedule in _SCHEDULES_WITH_HORIZON:
            raise ValueError(
                f"partial_fit cannot follow the {self.schedule!r} schedule, which needs the total number of "
                "epochs in advance; use schedule='constant' or 'step', or fit()"
            )
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32), reset=first_call)
        check_classification_targets(y)
        if classes is not None:
            classes = np.unique(np.asarray(classes))
            if not first_call and not np.array_equal(classes, self.classes_):
                raise ValueError(f"classes={classes!r} differs from the classes of earlier calls, {self.classes_!r}")
        labels = _encode(y, classes if first_call else self.classes_)
        if first_call:
            self.classes_ = classes
            self._random_seed = self._seed()
            self.network_ = self._build_network(X.shape[1], len(self.classes_), self._random_seed)
            self.n_iter_ = 0
        # The loop runs while the state's epoch < config.epochs: continuing from the state of the
        # earlier calls (n_iter_ epochs, the optimiser's moments, the generator) runs exactly one
        # epoch, numbered on from the earlier ones, at that epoch's scheduled rate.
        state = None
        if self.n_iter_:  # early stopping's record of fit() does not apply to partial_fit
            state = replace(self._train_state, best_loss=math.inf, best_params=None, best_state=None, waited=0)
        config = self._config(epochs=self.n_iter_ + 1, seed=self._random_seed, validation_size=0, early_stopping=None)
        self._train(Trainer(self.network_, X, labels, config, state=state))
        return self

    # -- prediction -------------------------------------------------------------------------------

    def predict_proba(self, X: npt.ArrayLike) -> np.ndarray:
        """Class probabilities P (m, k) for X (m, n); column i is ``classes_[i]``, rows sum to 1."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return self.network_.predict_proba(X)

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """The most probable class (m,) for each row of X (m, n), taken from ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return self.classes_[self.network_.predict(X)]

    # -- helpers ----------------------------------------------------------------------------------

    def _hidden_layers(self) -> list[LayerSpec]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        units = [_as_int(u, "hidden_layer_sizes") for u in sizes]
        if isinstance(self.activation, str):
            activations = [self.activation] * len(units)
        else:
            activations = list(self.activation)
            if len(activations) != len(units):
                raise ValueError(
                    f"activation lists {len(activations)} names for {len(units)} hidden layers; "
                    "give one name for all layers or one per layer"
                )
        return [LayerSpec(u, a) for u, a in zip(units, activations, strict=True)]

    def _build_network(self, n_in: int, n_classes: int, seed: int) -> Network:
        layers = [*self._hidden_layers(), LayerSpec(n_classes, "softmax")]
        return Network.from_layers(n_in, layers, seed=seed, dtype=self.dtype, init=self.init)

    def _seed(self) -> int:
        """One int seed for the weights and the shuffling, drawn from ``random_state``."""
        state = self.random_state
        if isinstance(state, numbers.Integral) and not isinstance(state, bool):
            return int(state)
        if isinstance(state, np.random.RandomState):
            return int(state.randint(np.iinfo(np.int32).max))
        if state is None or isinstance(state, np.random.Generator):
            return int(np.random.default_rng(state).integers(np.iinfo(np.int32).max))
        raise ValueError(f"random_state must be None, an int, a numpy Generator or RandomState, got {state!r}")

    def _validation_count(self, m: int) -> int:
        if self.early_stopping is None:
            return 0
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        n_val = max(1, round(self.validation_fraction * m))
        if n_val >= m:
            raise ValueError(f"early stopping needs more than {m} samples to hold out a validation set")
        return n_val

    def _config(self, *, epochs: int, seed: int, validation_size: int, **override: Any) -> TrainConfig:
        settings = {
            "epochs": epochs,
            "batch_size": None if self.batch_size is None else _as_int(self.batch_size, "batch_size"),
            "optimizer": self.optimizer,
            "learning_rate": float(self.learning_rate),
            "momentum": float(self.momentum),
            "schedule": self.schedule,
            "l2": float(self.l2),
            "dropout": float(self.dropout),
            "validation_size": validation_size,
            "early_stopping": None if self.early_stopping is None else _as_int(self.early_stopping, "early_stopping"),
            "seed": seed,
        }
        settings.update(override)
        return TrainConfig(**settings)

    def _train(self, trainer: Trainer) -> None:
        """Run ``trainer`` and keep its state, so that ``partial_fit`` can continue from it."""
        trainer.run(Callback())
        self._train_state = trainer.state
        self._random_seed = trainer.config.seed
        self.history_ = trainer.history
        self.loss_curve_ = self.history_["train_loss"]
        self.n_iter_ = len(self.history_)
        has_validation = trainer.X_val is not None
        self.validation_scores_ = self.history_["val_accuracy"] if has_validation else None

    # Layers hold views into the network's flat parameter buffer, and pickle would store the views as
    # separate copies; so a fitted estimator is pickled with its network as (header, flat buffers).
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        if "network_" in state:
            net = state["network_"]
            state["network_"] = (net.header(), net.params, net.state)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "network_" in state:
            header, params, net_state = state["network_"]
            net = Network.from_header(header, {}, source="pickle", params=params, state=net_state)
            state = {**state, "network_": net}
        super().__setstate__(state)


def _as_int(value: Any, name: str) -> int:
    """``value`` as a Python int (NumPy integers from a parameter grid included)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise ValueError(f"{name} must be an integer, got {value!r}")


def _encode(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Indices (m,) of the labels y (m,) in the sorted ``classes`` (k,); refuses unknown labels."""
    index = np.searchsorted(classes, y)
    known = index < len(classes)
    known[known] = classes[index[known]] == y[known]
    if not known.all():
        raise ValueError(f"y has labels not in classes: {np.unique(y[~known])!r}; pass every class in classes=")
    return index
