"""Training: mini-batch gradient descent with validation, early stopping and a per-epoch history.

The loop reads like the recipe: for each epoch, shuffle; for each batch, forward, loss, backward,
step; then evaluate on the validation set, record, and maybe stop.  Nothing here prints: progress
reaches the outside through a :class:`Callback`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from nnscratch.augment import Augmentation, Augmenter
from nnscratch.calibration import calibrate
from nnscratch.data import split_indices
from nnscratch.errors import DataError, DivergenceError, ModelFileError, SpecError, check_name
from nnscratch.io import Expected, deferred_signals, load_npz, remove_stale_temporaries, save_npz
from nnscratch.losses import NONE_OF_THEM, cross_entropy
from nnscratch.metrics import accuracy
from nnscratch.network import Architecture, Network, check_finite, check_state, read_architecture
from nnscratch.optimizers import OPTIMIZER_NAMES, Optimizer, make_optimizer
from nnscratch.parallel import single_threaded_blas
from nnscratch.schedules import SCHEDULES, Schedule
from nnscratch.tables import TableData

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Array = npt.NDArray[np.floating]

DEFAULT_VALIDATION = 5000
MAX_EPOCHS = 1_000_000  # some 20 years of the default MLP's epochs: anything larger is a typo
SIDE = 28  # made-up non-digits are MNIST-sized images
ATTACK_STREAM = 7004  # adversarial training's random starts are drawn from [this, the run's seed]
ADVERSARIAL_PGD_STEPS = 7
NOT_DIGITS_STREAM = 7001  # training's made-up non-digits are drawn from [this, the run's seed]
HELD_OUT_STREAM = 7002  # and those calibration measures against from [this]: a stream training never draws from
HELD_OUT_NOT_DIGITS = 1400  # 200 of each kind


def fingerprint(X: np.ndarray, y: np.ndarray) -> str:
    """A short hash of the training data (every value and label, in order): a checkpoint records it so that
    resuming on other data of the same shape is refused (BLAKE2b, 0.1 s for MNIST's 60,000 images)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (X, y):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def held_out_not_digits() -> npt.NDArray[np.float32]:
    """The made-up non-digits every calibration measures against, drawn once per process."""
    held_out = _HELD_OUT[0]
    if held_out is None:
        from nnscratch import nondigits  # Pillow draws them: imported only when needed

        held_out = _HELD_OUT[0] = nondigits.make(HELD_OUT_NOT_DIGITS, np.random.default_rng([HELD_OUT_STREAM]))
    return held_out


_HELD_OUT: list[npt.NDArray[np.float32] | None] = [None]


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    ``batch_size=None`` means full-batch gradient descent (one step per epoch).  ``validation_size``
    is the number of training samples held out for validation; ``None`` (the default) holds out
    5,000, or 10% of the training set when that is smaller; 0 holds out none.  ``shuffle=False``
    takes the batches in the data's order every epoch instead of a fresh random order.

    Regularisation: ``l2`` adds (λ/2) Σ‖W‖² to the loss, ``l1`` adds λ Σ|W|, ``weight_decay`` is
    AdamW's decoupled decay (``optimizer="adamw"`` only), ``dropout`` drops hidden dense units
    (alpha-dropout after SELU).  ``augment`` transforms every training batch afresh (``"shift"``,
    ``"affine"`` or ``"elastic"``, see ``nnscratch.augment``), scaled by ``augment_strength``; the
    validation images are never transformed.

    ``adversarial`` ("fgsm" or "pgd") trains on attacked images: in every batch the second half is replaced by
    its attack within ``epsilon`` of each image (FGSM with a random start, one step of 1.25 ε, as "fast is
    better than free"; or PGD, ADVERSARIAL_PGD_STEPS steps from a random start), drawn from a generator of its
    own that checkpoints keep.

    ``ema`` (a decay d in [0, 1), 0: off) keeps an exponential moving average of the weights and the
    batch-norm statistics, updated after every step; validation, early stopping and the trained network
    use the average (see :class:`Average`).

    Knowing what is not a digit: ``not_digits`` adds that share of made-up non-digits to the training
    images (``nnscratch.nondigits``; 28×28 inputs only), each with the uniform distribution as its target
    (outlier exposure).  ``calibrate`` fits the temperature and the "not sure" and "not a digit" thresholds on the
    validation split when training ends (``nnscratch.calibration``; the network's ``calibration``).
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
    l1: float = 0.0
    weight_decay: float = 0.0
    dropout: float = 0.0
    augment: str = "none"
    augment_strength: float = 1.0
    validation_size: int | None = None
    early_stopping: int | None = None
    seed: int | None = 0
    shuffle: bool = True
    not_digits: float = 0.0
    calibrate: bool = True
    ema: float = 0.0
    adversarial: str = "none"
    epsilon: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or not 1 <= self.epochs <= MAX_EPOCHS:
            huge = isinstance(self.epochs, int) and self.epochs.bit_length() > 64  # no repr of 4,300+ digits
            shown = f"a number above {MAX_EPOCHS:,}" if huge else repr(self.epochs)
            raise SpecError(f"epochs must be a positive integer up to {MAX_EPOCHS:,}, got {shown}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise SpecError(f"batch size must be a positive integer or 'full', got {self.batch_size!r}")
        check_name(OPTIMIZER_NAMES, self.optimizer, "optimiser")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise SpecError(f"learning rate must be a positive number, got {self.learning_rate!r}")
        check_name(SCHEDULES, self.schedule, "schedule")
        for name in ("l2", "l1", "weight_decay"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value >= 0 and math.isfinite(value)):
                raise SpecError(f"{name} must be a number >= 0, got {value!r}")
        momentum = self.momentum
        if not (isinstance(momentum, int | float) and not isinstance(momentum, bool) and 0 <= momentum < 1):
            # μ >= 1 lets the velocity grow without bound (it sums μ^k g over the past steps)
            raise SpecError(f"momentum must be a number in [0, 1), got {momentum!r}")
        if self.weight_decay and self.optimizer != "adamw":
            raise SpecError(
                "weight decay is AdamW's decoupled decay: use optimizer 'adamw' with it, or l2 with the others"
            )
        self.augmentation()  # names a bad kind or strength
        if not 0.0 <= self.dropout < 1.0:
            raise SpecError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.validation_size is not None and self.validation_size < 0:
            raise SpecError(f"validation size must be >= 0, got {self.validation_size}")
        if self.early_stopping is not None:
            if self.early_stopping < 1:
                raise SpecError(f"early-stopping patience must be >= 1 epoch, got {self.early_stopping}")
            if self.validation_size == 0:
                raise SpecError("early stopping needs a validation set; set validation_size > 0")
        for name in ("shuffle", "calibrate"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"{name} must be True or False, got {getattr(self, name)!r}")
        check_name(("none", "fgsm", "pgd"), self.adversarial, "adversarial training")
        eps = self.epsilon
        if not (isinstance(eps, int | float) and not isinstance(eps, bool) and 0 <= eps <= 1):
            raise SpecError(f"epsilon must be a number in [0, 1] (pixels are in [0, 1]), got {eps!r}")
        if (self.adversarial != "none") != (eps > 0):
            raise SpecError("adversarial training needs both a method (fgsm or pgd) and an epsilon > 0")
        ema = self.ema
        if not (isinstance(ema, int | float) and not isinstance(ema, bool) and 0 <= ema < 1):
            raise SpecError(f"the weight average's decay must be a number in [0, 1), got {ema!r}")
        share = self.not_digits
        if not (isinstance(share, int | float) and not isinstance(share, bool) and 0 <= share <= 1):
            raise SpecError(f"the share of made-up non-digits must be a number in [0, 1], got {share!r}")
        Schedule(self.schedule, self.epochs, self.step_every, self.step_gamma)

    def validation_count(self, n: int) -> int:
        """How many of ``n`` training samples to hold out."""
        if self.validation_size is None:
            return min(DEFAULT_VALIDATION, n // 10)
        return self.validation_size

    def make_schedule(self) -> Schedule:
        return Schedule(self.schedule, self.epochs, self.step_every, self.step_gamma)

    def augmentation(self) -> Augmentation:
        return Augmentation(self.augment, self.augment_strength)


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
    calibration: dict[str, Any] | None = None  # what calibrating on the validation split measured

    def __getitem__(self, key: str) -> list[float]:
        """``history["val_accuracy"]``: one metric as a list over epochs."""
        return [getattr(record, key) for record in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.epochs))

    def table(self, max_rows: int | None = None) -> TableData:
        """The epochs as a table (loss, accuracy, validation loss and accuracy, learning rate, seconds).

        With ``max_rows``, a longer run shows its first and last epochs around a ``…`` row.  In a notebook
        a history on its own in a cell shows this table, cut to 20 epochs.
        """
        has_val = any(math.isfinite(r.val_loss) for r in self.epochs)
        headers = ("epoch", "loss", "accuracy", *(("val_loss", "val_accuracy") if has_val else ()), "lr", "seconds")

        def row(r: EpochRecord) -> tuple[str, ...]:
            val = (f"{r.val_loss:.4f}", f"{100 * r.val_accuracy:.2f}%") if has_val else ()
            lr = f"{r.learning_rate:.3g}"
            return (str(r.epoch), f"{r.train_loss:.4f}", f"{100 * r.train_accuracy:.2f}%", *val, lr, f"{r.seconds:.2f}")

        rows = [row(r) for r in self.epochs]
        if max_rows is not None and len(rows) > max_rows:
            head = max_rows // 3
            rows = [*rows[:head], ("…",) + ("",) * (len(headers) - 1), *rows[len(rows) - (max_rows - head) :]]
        notes = [f"{len(self.epochs)} epochs in {self.seconds:.1f} s"]
        if self.best_epoch is not None:
            stopped = ", stopped early" if self.stopped_early else ""
            notes.append(f"best validation loss at epoch {self.best_epoch}{stopped}")
        if self.calibration is not None:
            c = self.calibration
            notes.append(
                f"calibrated on the validation split: temperature {c['temperature']:.3f}, expected calibration "
                f"error {100 * c['ece_before']:.2f}% before, {100 * c['ece_after']:.2f}% after"
            )
        return TableData("Training history", headers, rows, tuple(notes))

    def _repr_html_(self) -> str:
        return self.table(max_rows=20)._repr_html_()

    def plot(self, *, title: str = "Learning curves") -> Figure:
        """Loss, accuracy and error rate per epoch, training (dashed) and validation (solid), as a matplotlib
        Figure: a notebook shows it; ``nnscratch.plots.save_png(history.plot(), "curves.png")`` writes it."""
        from nnscratch.plots import learning_curves

        return learning_curves({title: self}, title=title)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": [asdict(r) for r in self.epochs],
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            **({"calibration": self.calibration} if self.calibration is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        records = [EpochRecord(**r) for r in data["epochs"]]
        return cls(records, data.get("best_epoch"), data.get("stopped_early", False), data.get("calibration"))


class Callback:
    """Hooks the training loop calls; override what you need (all default to doing nothing).

    ``on_train_begin`` receives the number of epochs the run ends at and the batches per epoch;
    ``epoch`` in ``on_batch_end`` counts from 0 (``record.epoch`` from 1); ``on_train_end`` is called
    once the run has finished normally, with its history (weights restored, averaged and calibrated).
    :mod:`nnscratch.callbacks` has ready-made ones for notebooks.
    """

    def on_train_begin(self, n_epochs: int, n_batches: int) -> None: ...

    def on_batch_end(self, epoch: int, batch: int, loss: float) -> None: ...

    def on_epoch_end(self, net: Network, record: EpochRecord) -> None: ...

    def on_train_end(self, history: History) -> None: ...


class Callbacks(Callback):
    """Several callbacks as one: each hook calls them in the order given."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"a callback must be an nnscratch Callback, got {type(callback).__name__}")
        self.callbacks = list(callbacks)

    def on_train_begin(self, n_epochs: int, n_batches: int) -> None:
        for callback in self.callbacks:
            callback.on_train_begin(n_epochs, n_batches)

    def on_batch_end(self, epoch: int, batch: int, loss: float) -> None:
        for callback in self.callbacks:
            callback.on_batch_end(epoch, batch, loss)

    def on_epoch_end(self, net: Network, record: EpochRecord) -> None:
        for callback in self.callbacks:
            callback.on_epoch_end(net, record)

    def on_train_end(self, history: History) -> None:
        for callback in self.callbacks:
            callback.on_train_end(history)


CallbackArg = Callback | Sequence[Callback] | None
"""What ``callback=`` takes: one callback, several (a list, called in order) or none."""


def as_callback(callback: CallbackArg) -> Callback:
    """One callback for the loop to call, from what ``callback=`` was given."""
    if callback is None:
        return Callback()
    if isinstance(callback, Callback):
        return callback
    if isinstance(callback, Sequence) and not isinstance(callback, str):
        return Callbacks(callback)
    raise TypeError(f"callback must be a Callback or a list of them, got {type(callback).__name__}")


def evaluate(net: Network, X: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``net`` on inputs X and labels y (m,)."""
    X = net.check_input(X)
    return _evaluate(net, X, net.check_labels(y, X.shape[0]))


def _evaluate(net: Network, X: Array, y: npt.NDArray[np.intp]) -> tuple[float, float]:
    """:func:`evaluate` on inputs and labels already checked (the trainer's validation split)."""
    P = net.probabilities(X)
    return cross_entropy(P, y), accuracy(y, P.argmax(axis=1))


def train(
    net: Network,
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    config: TrainConfig | None = None,
    *,
    validation: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    callback: CallbackArg = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> History:
    """Train ``net`` in place on X (m, n_in) floats in [0, 1] and y (m,) integer labels.

    Unless ``validation=(X_val, y_val)`` is given, ``config.validation_size`` samples are held out of
    (X, y) at random.  Returns the :class:`History`; with early stopping the best weights are restored.
    With ``checkpoint_dir``, the whole training state is written there (atomically) after every
    epoch, and :func:`resume` continues from it exactly.  ``callback`` is a :class:`Callback` or a list
    of them, called in order (:mod:`nnscratch.callbacks` has a progress bar and live learning curves).
    Raises :class:`DivergenceError` if the loss or weights become NaN or infinite.
    """
    trainer = Trainer(net, X, y, config or TrainConfig(), validation=validation, checkpoint_dir=checkpoint_dir)
    return trainer.run(callback)


def resume(
    checkpoint_dir: str | os.PathLike[str],
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    validation: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    callback: CallbackArg = None,
) -> tuple[Network, History]:
    """Continue the run checkpointed in ``checkpoint_dir`` on the same data; returns (net, history).

    The result is bit for bit what the uninterrupted run would have produced.
    """
    trainer = Trainer.from_checkpoint(checkpoint_dir, X, y, validation=validation)
    history = trainer.run(callback)
    return trainer.net, history


def image_side(net: Network) -> tuple[int, int]:
    """(H, W) of the single-channel images ``net`` reads, for augmentation: a 1×H×W input, or a flat one
    whose size is a square (784 is 28×28)."""
    shape = net.input_shape
    if len(shape) == 3 and shape[0] == 1:
        return shape[1], shape[2]
    side = math.isqrt(shape[0]) if len(shape) == 1 else 0
    if len(shape) == 1 and side * side == shape[0]:
        return side, side
    raise SpecError(
        f"augmentation transforms single-channel images, but this network's input is {shape}; "
        "train without augment, or on square images such as MNIST's 784 = 28×28"
    )


def _checkpoint_header(header: dict[str, Any], source: str) -> tuple[Architecture, TrainConfig]:
    """The network architecture and the config a checkpoint's header declares; raises ModelFileError."""
    if header.get("format") != CHECKPOINT_FORMAT or header.get("version") not in (1, CHECKPOINT_VERSION):
        raise ModelFileError(f"{source} is not an nnscratch checkpoint this version can read")
    architecture = read_architecture(header.get("network"), source)
    fields = header.get("config")
    if not isinstance(fields, dict):
        raise ModelFileError(f"{source}: its config is not a mapping; the checkpoint is corrupted")
    try:
        config = TrainConfig(**fields)
    except SpecError as exc:
        raise ModelFileError(f"{source}: its config is invalid: {exc}; the checkpoint is corrupted") from None
    except TypeError as exc:  # an unknown field, or a value of a type no comparison accepts
        raise ModelFileError(f"{source}: its config is invalid ({exc}); the checkpoint is corrupted") from None
    return architecture, config


def _checkpoint_arrays(header: dict[str, Any], source: str) -> Expected:
    """The arrays a checkpoint with this header may hold, name → shape (for ``load_npz``)."""
    architecture, config = _checkpoint_header(header, source)
    params, state = (architecture.layout.size,), (architecture.state_layout.size,)
    optimizer = make_optimizer(config.optimizer, momentum=config.momentum, weight_decay=config.weight_decay)
    arrays = {"params": params, "state": state, "best_params": params, "best_state": state}
    arrays |= {"ema_params": params, "ema_state": state}
    return Expected(arrays | {f"optimizer.{name}": params for name in optimizer.arrays})


def _generator(saved: Any, source: str, name: str) -> np.random.Generator:
    """A generator in the state ``bit_generator.state`` recorded (PCG64, as ``default_rng`` makes)."""
    rng = np.random.default_rng()
    inner = saved.get("state") if isinstance(saved, dict) else None
    whole = isinstance(inner, dict) and all(type(inner.get(key)) is int for key in ("state", "inc"))
    try:
        if not whole or saved.get("bit_generator") != type(rng.bit_generator).__name__:
            raise ValueError
        rng.bit_generator.state = saved
    except (TypeError, ValueError, OverflowError, KeyError):
        raise ModelFileError(
            f"{source}: {name} is not the state of a {type(rng.bit_generator).__name__} generator; "
            "the checkpoint is corrupted"
        ) from None
    return rng


CHECKPOINT_NAME = "checkpoint.npz"
CHECKPOINT_FORMAT = "nnscratch-checkpoint"
CHECKPOINT_VERSION = 2  # 2 adds the network's state buffer (batch norm's running statistics)


@dataclass
class Average:
    """The exponential moving average of the parameters and the state (Polyak averaging, as in TensorFlow's
    ExponentialMovingAverage): after step t,

        avg ← d_t · avg + (1 − d_t) · w,      d_t = min(d, (1 + t) / (10 + t))

    so the first steps, far from where training ends, weigh little for long.  An average of weights
    visited late in training is a flatter, better-generalising point than the last of them."""

    params: Array
    state: Array
    steps: int = 0

    @classmethod
    def of(cls, net: Network) -> Average:
        return cls(net.params.copy(), net.state.copy())

    def update(self, net: Network, decay: float) -> None:
        d = min(decay, (1 + self.steps) / (10 + self.steps))
        for mine, now in ((self.params, net.params), (self.state, net.state)):
            mine -= (1.0 - d) * (mine - now)
        self.steps += 1

    @contextlib.contextmanager
    def swapped_in(self, net: Network) -> Iterator[None]:
        """Inside the block the network holds the averaged weights; after it, its own again."""
        own = net.params.copy(), net.state.copy()
        net.params[...], net.state[...] = self.params, self.state
        try:
            yield
        finally:
            net.params[...], net.state[...] = own


@dataclass
class TrainState:
    """Everything that changes as a run goes on.  With the network, the config and the same data, a
    state continues its run exactly: that is what checkpoints store and what ``partial_fit`` carries.

    ``optimizer`` and ``rng`` left as None start fresh: the optimiser from the config, the generator
    from the seed (after it has drawn the validation split).
    """

    epoch: int = 0  # finished epochs
    history: History = field(default_factory=History)
    optimizer: Optimizer | None = None
    rng: np.random.Generator | None = None  # shuffling and dropout masks
    augment_rng: np.random.Generator | None = None  # the augmentation's own draws
    attack_rng: np.random.Generator | None = None  # adversarial training's random starts
    best_loss: float = math.inf  # early stopping: the best validation loss so far, its weights and state
    best_params: Array | None = None
    best_state: Array | None = None
    waited: int = 0  # epochs since the best one
    average: Average | None = None  # --ema's average of the weights
    own: tuple[Array, Array] | None = None  # with an average: the weights it averages, when the net holds it


class Trainer:
    """One training run: the network, the data split, the config and the :class:`TrainState`.

    The train/validation split is not part of the state: it is drawn again from the seed, which gives
    the same split.
    """

    def __init__(
        self,
        net: Network,
        X: npt.ArrayLike,
        y: npt.ArrayLike,
        config: TrainConfig,
        *,
        validation: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        state: TrainState | None = None,
    ) -> None:
        self.net, self.config = net, config
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if self.checkpoint_dir is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            # A run killed outright (SIGKILL, power cut) mid-save leaves its temporary file; sweep
            # such leftovers when a run starts or resumes (a save in progress elsewhere is locked).
            remove_stale_temporaries(self.checkpoint_dir / CHECKPOINT_NAME)
        rng = np.random.default_rng(config.seed)
        self.X = net.check_input(X)
        self.y = net.check_labels(y, self.X.shape[0])
        n_val = config.validation_count(self.X.shape[0])
        self.X_val: Array | None
        self.y_val: npt.NDArray[np.intp] | None
        if validation is not None:
            self.X_val = net.check_input(validation[0])
            self.y_val = net.check_labels(validation[1], self.X_val.shape[0])
            self.train_idx = np.arange(self.X.shape[0])
        elif n_val:
            self.train_idx, val_idx = split_indices(self.X.shape[0], n_val, rng)
            self.X_val, self.y_val = self.X[val_idx], self.y[val_idx]
        else:
            self.train_idx, self.X_val, self.y_val = np.arange(self.X.shape[0]), None, None
        if config.not_digits:
            self._add_not_digits(round(config.not_digits * self.train_idx.size))
        self.n_digits = int(np.count_nonzero(self.y[self.train_idx] != NONE_OF_THEM))
        self.state = state if state is not None else TrainState()
        if self.state.rng is None:
            self.state.rng = rng
        if self.state.optimizer is None:
            self.state.optimizer = make_optimizer(
                config.optimizer,
                momentum=config.momentum,
                weight_decay=config.weight_decay,
                decayed=net.decayed_ranges,
            )
        self.augmenter = None
        augmentation = config.augmentation()
        if augmentation.active:
            if self.state.augment_rng is None:
                self.state.augment_rng = rng.spawn(1)[0]  # its own stream: shuffling stays as without it
            self.augmenter = Augmenter(augmentation, image_side(net), self.state.augment_rng)
        if config.adversarial != "none" and self.state.attack_rng is None:
            self.state.attack_rng = np.random.default_rng([ATTACK_STREAM, config.seed or 0])
        self.saved_epoch: int | None = None  # the epoch of the last checkpoint written

    def _add_not_digits(self, n: int) -> None:
        """Append ``n`` made-up non-digits, labelled NONE_OF_THEM, to the training images (not the validation ones).

        Drawn from the seed alone, so a resumed run draws the same ones."""
        if image_side(self.net) != (SIDE, SIDE):
            raise SpecError(f"made-up non-digits are {SIDE}×{SIDE} images; train without not-digits on other inputs")
        from nnscratch import nondigits

        extra = nondigits.make(n, np.random.default_rng([NOT_DIGITS_STREAM, self.config.seed or 0]))
        start = self.X.shape[0]
        self.X = np.concatenate([self.X, extra.astype(self.X.dtype).reshape(n, *self.X.shape[1:])])
        self.y = np.concatenate([self.y, np.full(n, NONE_OF_THEM, dtype=self.y.dtype)])
        self.train_idx = np.concatenate([self.train_idx, np.arange(start, start + n)])

    @functools.cached_property
    def data_fingerprint(self) -> str:
        """The training data's hash, taken only when a checkpoint is written or read (a pass over all of it)."""
        return fingerprint(self.X, self.y)

    @property
    def history(self) -> History:
        return self.state.history

    def run(self, callback: CallbackArg = None) -> History:
        """Train to the config's last epoch from where the state stands; returns the history."""
        hooks = as_callback(callback)
        self.net.calibration = None  # the weights are about to change: a calibration fitted before no longer holds
        if self.state.own is not None:  # a run that goes on trains its own weights, not their average
            self.net.params[...], self.net.state[...] = self.state.own
            self.state.own = None
        if self.config.ema and self.state.average is None:
            self.state.average = Average.of(self.net)
        # Overflow is caught explicitly (a non-finite loss or weight stops training with a clear
        # message), so NumPy's overflow warnings would only add noise on the way there.
        with np.errstate(over="ignore", invalid="ignore"), single_threaded_blas():
            self._run(hooks)
        if self.state.average is not None:  # the trained network is the average
            self.state.own = self.net.params.copy(), self.net.state.copy()
            self.net.params[...], self.net.state[...] = self.state.average.params, self.state.average.state
        if self.config.early_stopping is not None and self.state.best_params is not None:
            self.net.params[...] = self.state.best_params
            if self.state.best_state is not None:
                self.net.state[...] = self.state.best_state
        if self.config.calibrate and self.X_val is not None and len(self.X_val):
            self.calibrate()
        hooks.on_train_end(self.state.history)
        return self.state.history

    def _attacked(self, X: Array, y: np.ndarray) -> Array:
        """The batch with its second half replaced by attacks on it (within ε, from random starts); a made-up
        non-digit (label −1) is left as it is."""
        from nnscratch.attack import pgd

        config, rng = self.config, self.state.attack_rng
        half = np.arange(X.shape[0] // 2, X.shape[0])
        half = half[y[half] >= 0]
        if not half.size:
            return X
        X = X.copy()
        images = len(self.net.input_shape) == 3  # the trainer's images are channels-last; the API's channels-first
        part = X[half].transpose(0, 3, 1, 2) if images else X[half]
        eps = config.epsilon
        steps, size = (1, 1.25 * eps) if config.adversarial == "fgsm" else (ADVERSARIAL_PGD_STEPS, 2.5 * eps / 7)
        moved = pgd(self.net, part, y[half], eps, steps=steps, step_size=size, random_start=True, rng=rng)
        X[half] = moved.transpose(0, 2, 3, 1) if images else moved
        return X

    def calibrate(self) -> None:
        """Fit the network's temperature on the validation split and, for 28×28 inputs, its "not a digit"
        score and thresholds against made-up non-digits that training never saw; record what was measured
        in the history."""
        assert self.X_val is not None and self.y_val is not None
        outside = None
        if self.net.n_in == SIDE * SIDE:
            outside = self.net.all_logits(held_out_not_digits())
        self.net.calibration, report = calibrate(self.net.chunked_logits(self.X_val), self.y_val, outside)
        self.state.history.calibration = report

    def run_more(self, epochs: int, *, learning_rate: float | None = None, callback: CallbackArg = None) -> History:
        """Train ``epochs`` more epochs from where the state stands, at ``learning_rate`` if given, and
        return the history so far.  The config's ``epochs`` (and ``learning_rate``) move on with it, so
        a schedule other than "constant" sees a run that ends after these epochs; scikit-learn's
        ``partial_fit`` and its epoch-by-epoch ``fit`` (which set the rate themselves) call this."""
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise SpecError(f"epochs must be a positive integer, got {epochs!r}")
        changes: dict[str, Any] = {"epochs": self.state.epoch + epochs}
        if learning_rate is not None:
            changes["learning_rate"] = learning_rate
        self.config = replace(self.config, **changes)
        return self.run(callback)

    def _run(self, callback: Callback) -> None:
        net, config, X, y, state = self.net, self.config, self.X, self.y, self.state
        rng, optimizer = state.rng, state.optimizer
        assert rng is not None and optimizer is not None
        optimizer.pool = net.pool  # its elementwise passes split over the network's threads
        n = self.train_idx.size
        batch_size = n if config.batch_size is None else min(config.batch_size, n)
        n_batches = math.ceil(n / batch_size)
        full_batch = batch_size == n
        if full_batch:  # one batch, the same every epoch: gather it once
            X_full, y_full = X[self.train_idx], y[self.train_idx]
        grad = np.empty_like(net.params)
        schedule = config.make_schedule()
        callback.on_train_begin(config.epochs, n_batches)

        while state.epoch < config.epochs and not state.history.stopped_early:
            epoch, start = state.epoch, time.perf_counter()
            order = self.train_idx if full_batch or not config.shuffle else rng.permutation(self.train_idx)
            loss_sum = correct = 0.0
            lr = config.learning_rate

            def gather(b: int, order: np.ndarray = order) -> tuple[Array, np.ndarray]:
                """Batch b of this epoch's order (no copy of the whole training set)."""
                if full_batch:
                    return X_full, y_full
                idx = order[b * batch_size : (b + 1) * batch_size]
                # A fresh array: np.take into a reused buffer (out=) measured ~3x slower here.
                return X.take(idx, axis=0), y[idx]

            # With augmentation, a background thread prepares each batch while the one before trains.
            batches: Iterator[tuple[Array, Any]] = (gather(b) for b in range(n_batches))
            if self.augmenter is not None:
                batches = self.augmenter.batches(gather, n_batches)
            for b, (xb, yb) in enumerate(batches):
                if config.adversarial != "none":
                    xb = self._attacked(xb, yb)
                # forward, loss, backward
                loss, Z = net.loss_and_flat_grad(
                    xb, yb, grad, l2=config.l2, l1=config.l1, dropout=config.dropout, rng=rng, update_state=True
                )
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
                if state.average is not None:
                    state.average.update(net, config.ema)
                loss_sum += loss * yb.size
                correct += np.count_nonzero(Z.argmax(axis=1) == yb)  # a made-up non-digit (-1) is never right
                callback.on_batch_end(epoch, b, loss)
            if not (np.all(np.isfinite(net.params)) and np.all(np.isfinite(net.state))):
                raise DivergenceError(
                    f"training diverged in epoch {epoch + 1}: the weights are no longer finite; "
                    f"try a learning rate smaller than {config.learning_rate:g}",
                    epoch=epoch + 1,
                    batch=n_batches,
                )
            # evaluate (the average of the weights, with --ema), record, maybe stop
            evaluated = state.average.swapped_in(net) if state.average is not None else contextlib.nullcontext()
            with evaluated:
                if self.X_val is not None and self.y_val is not None:
                    val_loss, val_acc = _evaluate(net, self.X_val, self.y_val)
                else:
                    val_loss, val_acc = math.nan, math.nan
                improved = config.early_stopping is not None and val_loss < state.best_loss
                best = (net.params.copy(), net.state.copy()) if improved else None
            record = EpochRecord(
                epoch=epoch + 1,
                train_loss=loss_sum / n,
                train_accuracy=correct / max(self.n_digits, 1),
                val_loss=val_loss,
                val_accuracy=val_acc,
                learning_rate=lr,
                seconds=time.perf_counter() - start,
            )
            state.history.epochs.append(record)
            state.epoch += 1
            if config.early_stopping is not None:
                if best is not None:
                    state.best_loss, state.waited = val_loss, 0
                    state.best_params, state.best_state = best
                    state.history.best_epoch = epoch + 1
                else:
                    state.waited += 1
                    state.history.stopped_early = state.waited >= config.early_stopping
            if self.checkpoint_dir is not None:
                self.save_checkpoint()
            callback.on_epoch_end(net, record)

    # -- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write the whole training state to ``checkpoint_dir/checkpoint.npz``, atomically."""
        assert self.checkpoint_dir is not None
        state = self.state
        assert state.rng is not None and state.optimizer is not None
        optimizer_state = state.optimizer.state()
        header = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "network": self.net.header(),
            "config": asdict(self.config),
            "epoch": state.epoch,
            "rng": state.rng.bit_generator.state,
            "augment_rng": None if state.augment_rng is None else state.augment_rng.bit_generator.state,
            "attack_rng": None if state.attack_rng is None else state.attack_rng.bit_generator.state,
            "history": state.history.to_dict(),
            "best_loss": None if math.isinf(state.best_loss) else state.best_loss,
            "waited": state.waited,
            "optimizer": {k: v for k, v in optimizer_state.items() if not isinstance(v, np.ndarray)},
            "data": self.data_fingerprint,
        }
        arrays = {"params": self.net.params, "state": self.net.state}
        arrays.update({f"optimizer.{k}": v for k, v in optimizer_state.items() if isinstance(v, np.ndarray)})
        if state.best_params is not None:
            arrays["best_params"] = state.best_params
        if state.best_state is not None:
            arrays["best_state"] = state.best_state
        if state.average is not None:
            arrays["ema_params"], arrays["ema_state"] = state.average.params, state.average.state
            header["ema_steps"] = state.average.steps
        # A signal deferred during the save is delivered at the end of this block, after saved_epoch
        # says which epoch the file on disk holds.
        with deferred_signals():
            path = save_npz(self.checkpoint_dir / CHECKPOINT_NAME, arrays, header)
            self.saved_epoch = state.epoch
        return path

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint_dir: str | os.PathLike[str],
        X: npt.ArrayLike,
        y: npt.ArrayLike,
        *,
        validation: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    ) -> Trainer:
        """A trainer in exactly the state :meth:`save_checkpoint` recorded.

        Everything is checked before it is used: the arrays' shapes against the network in the header
        before they are read, their values (floating point of the network's dtype, finite), the
        config, the epoch, the optimiser's and the generators' states.  A damaged or tampered
        checkpoint raises ModelFileError naming the field; data that does not fit the checkpoint's
        network raises DataError.
        """
        path = Path(checkpoint_dir) / CHECKPOINT_NAME
        if not path.is_file():
            raise ModelFileError(f"no checkpoint in {checkpoint_dir} (expected {CHECKPOINT_NAME}); check --resume")
        source = str(path)
        header, arrays = load_npz(path, expect=lambda header: _checkpoint_arrays(header, source))
        architecture, config = _checkpoint_header(header, source)
        for name, value in arrays.items():
            if value.dtype != architecture.dtype:
                raise ModelFileError(
                    f"{source}: array {name} holds {value.dtype} values, not the network's {architecture.dtype}; "
                    "the checkpoint is corrupted"
                )
        if "params" not in arrays:
            raise ModelFileError(f"{source} is missing the array params; the checkpoint is incomplete")
        net = Network.from_header(
            header["network"], {}, source=source, params=arrays["params"], state=arrays.get("state")
        )
        epoch = header.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= config.epochs:
            raise ModelFileError(
                f"{source}: epoch must be a whole number from 0 to the run's {config.epochs} epochs, got {epoch!r}; "
                "the checkpoint is corrupted"
            )
        optimizer = make_optimizer(
            config.optimizer, momentum=config.momentum, weight_decay=config.weight_decay, decayed=net.decayed_ranges
        )
        optimizer_state = header.get("optimizer")
        if not isinstance(optimizer_state, dict):
            raise ModelFileError(f"{source}: the optimizer's state is not a mapping; the checkpoint is corrupted")
        saved = {key.removeprefix("optimizer."): v for key, v in arrays.items() if key.startswith("optimizer.")}
        optimizer_state = {**optimizer_state, **saved}
        missing = [f"optimizer.{key}" for key in optimizer.arrays if key not in optimizer_state]
        if epoch > 0 and missing:  # after a step every one exists; without them the run would restart the optimiser
            raise ModelFileError(
                f"{source} is missing {', '.join(missing)} after {epoch} epochs of {config.optimizer}; "
                "the checkpoint is incomplete"
            )
        try:
            optimizer.load_state(optimizer_state)
        except SpecError as exc:
            raise ModelFileError(f"{source}: {exc}; the checkpoint is corrupted") from None
        for name in ("best_params", "best_state", "ema_params", "ema_state"):
            if name in arrays:
                check_finite(arrays[name], source, name)
        average = None
        if config.ema:
            steps = header.get("ema_steps")
            if "ema_params" not in arrays or not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
                raise ModelFileError(
                    f"{source}: the weight average of --ema {config.ema:g} is missing or its step count is not a "
                    "whole number >= 0; the checkpoint is incomplete"
                )
            ema_state = arrays.get("ema_state", np.zeros(0, architecture.dtype))
            average = Average(arrays["ema_params"].copy(), ema_state.copy(), steps)
        if "best_state" in arrays:
            check_state(arrays["best_state"], net.state_layout, source, "best_state")
        rng = _generator(header.get("rng"), source, "rng")
        augment_rng = None
        if header.get("augment_rng") is not None or config.augmentation().active:
            augment_rng = _generator(header.get("augment_rng"), source, "augment_rng")
        attack_rng = None
        if config.adversarial != "none":
            attack_rng = _generator(header.get("attack_rng"), source, "attack_rng")
        waited, best_loss = header.get("waited"), header.get("best_loss")
        if not isinstance(waited, int) or isinstance(waited, bool) or not 0 <= waited <= epoch:
            raise ModelFileError(f"{source}: waited must be a whole number from 0 to the epoch, got {waited!r}")
        if best_loss is not None and not (
            isinstance(best_loss, int | float) and not isinstance(best_loss, bool) and math.isfinite(best_loss)
        ):
            raise ModelFileError(f"{source}: best_loss must be a finite number or null, got {best_loss!r}")
        try:
            history = History.from_dict(header["history"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(f"{source}: its history is malformed ({exc!r}); the checkpoint is corrupted") from None
        if len(history) != epoch:
            raise ModelFileError(
                f"{source}: its history records {len(history)} epochs but epoch is {epoch}; the checkpoint is corrupted"
            )
        state = TrainState(
            epoch=epoch,
            history=history,
            optimizer=optimizer,
            rng=rng,
            augment_rng=augment_rng,
            attack_rng=attack_rng,
            best_loss=math.inf if best_loss is None else float(best_loss),
            best_params=arrays.get("best_params"),
            best_state=arrays.get("best_state"),
            waited=waited,
            average=average,
        )
        try:
            trainer = cls(net, X, y, config, validation=validation, checkpoint_dir=checkpoint_dir, state=state)
        except ValueError as exc:  # the data, checked against the network: a good checkpoint, other data
            raise DataError(
                f"the data does not fit the checkpoint in {checkpoint_dir} ({exc}); resume with the data the run "
                "started with (the same --data-dir), or start a new run on this data"
            ) from None
        recorded = header.get("data")  # checkpoints written before it was recorded have none
        if recorded is not None and recorded != trainer.data_fingerprint:
            raise DataError(
                f"the data is not the data the checkpoint in {checkpoint_dir} was trained on (other images or labels "
                "of the same shape); resume with the data the run started with (the same --data-dir), or start "
                "a new run on this data"
            )
        trainer.saved_epoch = state.epoch
        return trainer
