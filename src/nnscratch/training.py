"""Training: mini-batch gradient descent with validation, early stopping and a per-epoch history.

The loop reads like the recipe: for each epoch, shuffle; for each batch, forward, loss, backward,
step; then evaluate on the validation set, record, and maybe stop.  Nothing here prints: progress
reaches the outside through a :class:`Callback`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nnscratch.data import split_indices
from nnscratch.errors import DivergenceError, SpecError
from nnscratch.losses import cross_entropy
from nnscratch.network import Network
from nnscratch.optimizers import OPTIMIZER_NAMES, make_optimizer
from nnscratch.schedules import SCHEDULES, Schedule

Array = npt.NDArray[np.floating]

DEFAULT_VALIDATION = 5000


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    ``batch_size=None`` means full-batch gradient descent (one step per epoch).  ``validation_size``
    is the number of training samples held out for validation; ``None`` (the default) holds out
    5,000, or 10% of the training set when that is smaller; 0 holds out none.
    """

    epochs: int = 10
    batch_size: int | None = 128
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    schedule: str = "constant"
    step_every: float = 10.0
    step_gamma: float = 0.1
    l2: float = 0.0
    validation_size: int | None = None
    early_stopping: int | None = None
    seed: int | None = 0

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise SpecError(f"epochs must be a positive integer, got {self.epochs!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise SpecError(f"batch size must be a positive integer or 'full', got {self.batch_size!r}")
        if self.optimizer not in OPTIMIZER_NAMES:
            raise SpecError(f"unknown optimiser {self.optimizer!r}; choose one of: {', '.join(OPTIMIZER_NAMES)}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise SpecError(f"learning rate must be a positive number, got {self.learning_rate!r}")
        if self.schedule not in SCHEDULES:
            raise SpecError(f"unknown schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        if self.l2 < 0:
            raise SpecError(f"l2 must be >= 0, got {self.l2}")
        if self.validation_size is not None and self.validation_size < 0:
            raise SpecError(f"validation size must be >= 0, got {self.validation_size}")
        if self.early_stopping is not None:
            if self.early_stopping < 1:
                raise SpecError(f"early-stopping patience must be >= 1 epoch, got {self.early_stopping}")
            if self.validation_size == 0:
                raise SpecError("early stopping needs a validation set; set validation_size > 0")
        Schedule(self.schedule, self.epochs, self.step_every, self.step_gamma)

    def validation_count(self, n: int) -> int:
        """How many of ``n`` training samples to hold out."""
        if self.validation_size is None:
            return min(DEFAULT_VALIDATION, n // 10)
        return self.validation_size

    def make_schedule(self) -> Schedule:
        return Schedule(self.schedule, self.epochs, self.step_every, self.step_gamma)


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch measured.  Validation fields are NaN when there is no validation set."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float
    seconds: float


@dataclass
class History:
    """Per-epoch records of a training run, plus how it ended."""

    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    def __getitem__(self, key: str) -> list[float]:
        """``history["val_accuracy"]``: one metric as a list over epochs."""
        return [getattr(record, key) for record in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.epochs))

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": [asdict(r) for r in self.epochs],
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls([EpochRecord(**r) for r in data["epochs"]], data.get("best_epoch"), data.get("stopped_early", False))


class Callback:
    """Hooks the training loop calls; override what you need (all default to doing nothing)."""

    def on_train_begin(self, n_epochs: int, n_batches: int) -> None: ...

    def on_batch_end(self, epoch: int, batch: int, loss: float) -> None: ...

    def on_epoch_end(self, net: Network, record: EpochRecord) -> None: ...


def evaluate(net: Network, X: Array, y: npt.NDArray[np.intp], *, batch_size: int = 4096) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``net`` on (X, y)."""
    P = net.predict_proba(X, batch_size=batch_size)
    return cross_entropy(P, y), float(np.mean(P.argmax(axis=1) == y))


def train(
    net: Network,
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    config: TrainConfig | None = None,
    *,
    validation: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    callback: Callback | None = None,
) -> History:
    """Train ``net`` in place on X (m, n_in) floats in [0, 1] and y (m,) integer labels.

    Unless ``validation=(X_val, y_val)`` is given, ``config.validation_size`` samples are held out of
    (X, y) at random.  Returns the :class:`History`; with early stopping the best weights are restored.
    Raises :class:`DivergenceError` if the loss or weights become NaN or infinite.
    """
    config = config or TrainConfig()
    callback = callback or Callback()
    with np.errstate(over="ignore", invalid="ignore"):
        return _train(net, X, y, config, validation, callback)


def _train(net, X, y, config, validation, callback) -> History:
    # Overflow is caught explicitly (a non-finite loss or weight stops training with a clear
    # message), so NumPy's overflow warnings would only add noise on the way there.
    rng = np.random.default_rng(config.seed)
    X = net.check_input(X)
    y = net.check_labels(y, X.shape[0])
    if validation is not None:
        X_val = net.check_input(validation[0])
        y_val = net.check_labels(validation[1], X_val.shape[0])
        train_idx = np.arange(X.shape[0])
    elif config.validation_count(X.shape[0]):
        train_idx, val_idx = split_indices(X.shape[0], config.validation_count(X.shape[0]), rng)
        X_val, y_val = X[val_idx], y[val_idx]
    else:
        train_idx, X_val, y_val = np.arange(X.shape[0]), None, None

    n = train_idx.size
    batch_size = n if config.batch_size is None else min(config.batch_size, n)
    n_batches = math.ceil(n / batch_size)
    full_batch = batch_size == n
    if full_batch:  # one batch, the same every epoch: gather it once
        X_full, y_full = X[train_idx], y[train_idx]
    X_batch = np.empty((batch_size, net.n_in), dtype=net.dtype)
    grad = np.empty_like(net.params)
    optimizer = make_optimizer(config.optimizer, momentum=config.momentum)
    schedule = config.make_schedule()
    history = History()
    best_loss, best_params, waited = math.inf, None, 0
    callback.on_train_begin(config.epochs, n_batches)

    for epoch in range(config.epochs):
        start = time.perf_counter()
        order = train_idx if full_batch else rng.permutation(train_idx)
        loss_sum = correct = 0.0
        lr = config.learning_rate
        for b in range(n_batches):
            # gather the batch (no copy of the whole training set)
            if full_batch:
                xb, yb = X_full, y_full
            else:
                idx = order[b * batch_size : (b + 1) * batch_size]
                xb = X_batch[: idx.size]
                np.take(X, idx, axis=0, out=xb)
                yb = y[idx]
            # forward, loss, backward
            loss, Z = net.loss_and_flat_grad(xb, yb, grad, l2=config.l2)
            if not math.isfinite(loss):
                raise DivergenceError(
                    f"training diverged at epoch {epoch + 1}, batch {b + 1}: the loss is {loss}; "
                    f"try a learning rate smaller than {config.learning_rate:g}",
                    epoch=epoch + 1,
                    batch=b + 1,
                )
            # update
            lr = schedule.rate(config.learning_rate, epoch + b / n_batches)
            optimizer.step(net.params, grad, lr)
            loss_sum += loss * yb.size
            correct += np.count_nonzero(Z.argmax(axis=1) == yb)
            callback.on_batch_end(epoch, b, loss)
        if not np.all(np.isfinite(net.params)):
            raise DivergenceError(
                f"training diverged in epoch {epoch + 1}: the weights are no longer finite; "
                f"try a learning rate smaller than {config.learning_rate:g}",
                epoch=epoch + 1,
                batch=n_batches,
            )
        # evaluate, record, maybe stop
        val_loss, val_acc = evaluate(net, X_val, y_val) if X_val is not None else (math.nan, math.nan)
        record = EpochRecord(
            epoch=epoch + 1,
            train_loss=loss_sum / n,
            train_accuracy=correct / n,
            val_loss=val_loss,
            val_accuracy=val_acc,
            learning_rate=lr,
            seconds=time.perf_counter() - start,
        )
        history.epochs.append(record)
        callback.on_epoch_end(net, record)
        if config.early_stopping is not None:
            if val_loss < best_loss:
                best_loss, best_params, waited = val_loss, net.params.copy(), 0
                history.best_epoch = epoch + 1
            else:
                waited += 1
                if waited >= config.early_stopping:
                    history.stopped_early = True
                    break
    if best_params is not None:
        net.params[...] = best_params
    return history
