"""Hyper-parameter search with Optuna: the search space, one trial, the study, and what a search leaves behind.

Legend: m = training samples, n = values per sample, k = classes.

A trial trains the MLP its hyper-parameters describe exactly as ``nnscratch train`` would with those
options (the default preset's network with the trial's hidden layers, the same validation split
drawn from the same seed, the same schedule) and scores it by its last epoch's validation accuracy.
Only the training set goes in: the validation split is carved out of it, and the test set is never
seen.  So ``nnscratch train --config DIR/best.json`` trains the best trial's network again, and reports
its test accuracy for the first time.

Optuna does the searching; none of it is written here:

* its TPE sampler proposes each trial's hyper-parameters (``constant_liar`` keeps parallel trials apart);
* its median pruner stops a trial whose validation accuracy after an epoch is below the median of the
  finished trials after that epoch (from the second epoch on, once 5 trials have finished);
* its storage, e.g. ``sqlite:///tune.db``, keeps every finished trial, so a study run again under the
  same name resumes where it stopped;
* its fANOVA evaluator (on scikit-learn's random forests) weighs the parameters' importances.

Trials run through joblib, as the activation study's runs do: one after another, in parallel processes
(``n_jobs``), or on a Dask cluster (``backend="dask"`` inside a ``dask.distributed.Client``).  Only this
process talks to the study (ask, tell): a worker trains, and decides its own pruning against a copy
of the finished trials sent with its job, so workers need neither the storage nor a shared disk.

Optuna (with scikit-learn) is an optional dependency (``pip install 'nnscratch[tune]'``); ``import nnscratch``
never imports it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from nnscratch.activations import ACTIVATIONS, STUDY_ACTIVATIONS
from nnscratch.data import data_fingerprint
from nnscratch.errors import DivergenceError, NNScratchError, SpecError, check_name
from nnscratch.io import atomic_write
from nnscratch.network import Network
from nnscratch.optimizers import OPTIMIZER_NAMES
from nnscratch.presets import DEFAULT_PRESET, PRESETS
from nnscratch.recipe import Recipe
from nnscratch.schedules import SCHEDULES
from nnscratch.training import Callback, EpochRecord, TrainConfig, Trainer

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

MOMENTUM = TrainConfig.momentum  # of the momentum and nesterov optimisers: nnscratch train's default
STARTUP_TRIALS = 5  # finished trials before the median pruner prunes anything
WARMUP_EPOCHS = 1  # epochs a trial runs before the pruner judges it (from its second epoch on)


def require_optuna() -> Any:
    """The ``optuna`` module, or an :class:`NNScratchError` that says how to install it."""
    try:
        import optuna
    except ImportError:
        raise NNScratchError("tuning needs Optuna: pip install 'nnscratch[tune]'") from None
    return optuna


# -- the search space ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSpace:
    """Where the search looks.  Ranges are (low, high), both included; low == high fixes a value.

    The learning rate, widths and L2 are searched on a log scale; (0, 0) turns L2 off.  Each hidden
    layer (there are ``depth`` of them) gets its own width and activation.
    """

    learning_rate: tuple[float, float] = (1e-4, 1e-2)
    depth: tuple[int, int] = (1, 3)
    width: tuple[int, int] = (16, 512)
    activations: tuple[str, ...] = STUDY_ACTIVATIONS  # relu, sigmoid, tanh, selu, softmax
    dropout: tuple[float, float] = (0.0, 0.5)
    l2: tuple[float, float] = (1e-6, 1e-3)
    batch_sizes: tuple[int, ...] = (32, 64, 128, 256)
    optimizers: tuple[str, ...] = ("sgd", "momentum", "nesterov", "adam")  # adamw: adam, as no decay is tuned

    def __post_init__(self) -> None:
        _check_range("learning rate", self.learning_rate, low=0.0, low_open=True)
        _check_range("depth", self.depth, low=0, integer=True)
        _check_range("width", self.width, low=1, integer=True)
        _check_range("dropout", self.dropout, low=0.0, high=1.0)
        if tuple(self.l2) != (0.0, 0.0):
            _check_range("l2", self.l2, low=0.0, low_open=True, hint="; give 0 to turn it off")
        _check_choices("activations", self.activations, ACTIVATIONS)
        _check_choices("optimizers", self.optimizers, OPTIMIZER_NAMES)
        if not self.batch_sizes or any(not _is_int(b) or b < 1 for b in self.batch_sizes):
            raise SpecError(f"batch sizes must be positive integers such as 64,128, got {self.batch_sizes!r}")

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's hyper-parameters as train options: hidden, optimizer, lr, batch-size, dropout, l2."""
        hidden = []
        for i in range(1, _suggest_int(trial, "depth", self.depth) + 1):
            width = _suggest_int(trial, f"width_{i}", self.width, log=True)
            hidden.append(f"{width}:{_suggest_choice(trial, f'activation_{i}', self.activations)}")
        return {
            "hidden": ",".join(hidden),
            "optimizer": _suggest_choice(trial, "optimizer", self.optimizers),
            "lr": _suggest_float(trial, "lr", self.learning_rate, log=True),
            "batch-size": _suggest_choice(trial, "batch_size", self.batch_sizes),
            "dropout": _suggest_float(trial, "dropout", self.dropout),
            "l2": _suggest_float(trial, "l2", self.l2, log=True),
        }


def _suggest_float(trial: optuna.Trial, name: str, bounds: tuple[float, float], *, log: bool = False) -> float:
    low, high = float(bounds[0]), float(bounds[1])
    return low if low == high else trial.suggest_float(name, low, high, log=log)  # a fixed value is no parameter


def _suggest_int(trial: optuna.Trial, name: str, bounds: tuple[int, int], *, log: bool = False) -> int:
    low, high = int(bounds[0]), int(bounds[1])
    return low if low == high else trial.suggest_int(name, low, high, log=log)


def _suggest_choice(trial: optuna.Trial, name: str, choices: Sequence[Any]) -> Any:
    return choices[0] if len(choices) == 1 else trial.suggest_categorical(name, list(choices))


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_range(
    name: str,
    bounds: Sequence[float],
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    integer: bool = False,
    hint: str = "",
) -> None:
    ok = len(bounds) == 2 and all(_is_int(v) if integer else isinstance(v, int | float) for v in bounds)
    ok = ok and all(math.isfinite(v) and (v > low if low_open else v >= low) and v < high for v in bounds)
    if not ok or bounds[0] > bounds[1]:
        kind = "integers" if integer else "numbers"
        raise SpecError(
            f"the {name} range must be LOW:HIGH {kind} with {low:g} <{'' if low_open else '='} LOW <= HIGH"
            f"{'' if high == math.inf else f' < {high:g}'}, got {bounds!r}{hint}"
        )


def _check_choices(name: str, chosen: Sequence[str], known: Collection[str]) -> None:
    unknown = [c for c in chosen if c not in known]
    if not chosen or unknown:
        raise SpecError(f"{name} must be some of {', '.join(known)}; got {', '.join(map(str, chosen)) or 'none'}")


# -- one trial ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TuneSettings:
    """What every trial shares: its epochs, seed, precision and learning-rate schedule, and whether to prune."""

    epochs: int = 5
    seed: int = 0
    dtype: str = "float32"
    schedule: str = PRESETS[DEFAULT_PRESET].training["schedule"]
    pruning: bool = True

    def __post_init__(self) -> None:
        if not _is_int(self.epochs) or self.epochs < 1:
            raise SpecError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not _is_int(self.seed):
            raise SpecError(f"the seed must be an integer, got {self.seed!r}")
        check_name(SCHEDULES, self.schedule, "schedule")

    def train_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """A trial's options with these settings: every ``nnscratch train`` option that decides the run."""
        extra = {"momentum": MOMENTUM} if options["optimizer"] in ("momentum", "nesterov") else {}
        fixed = {"epochs": self.epochs, "schedule": self.schedule, "seed": self.seed, "dtype": self.dtype}
        return {**options, **extra, **fixed}


def trial_run(options: dict[str, Any], n_features: int, n_classes: int) -> tuple[Network, TrainConfig]:
    """The network and config ``nnscratch train`` builds from these options (see ``TuneSettings.train_options``):
    both go through the same :class:`~nnscratch.recipe.Recipe`."""
    recipe = Recipe.from_options(options)
    return recipe.network(n_features, n_classes), recipe.config


@dataclass(frozen=True)
class TrialOutcome:
    """How one trial ended: "complete", "pruned" or "diverged", with its validation accuracy after each epoch."""

    number: int
    state: str
    val_accuracy: list[float]
    seconds: float
    message: str = ""

    @property
    def value(self) -> float | None:
        return self.val_accuracy[-1] if self.state == "complete" else None


class _Reporter(Callback):
    """Reports each epoch's validation accuracy to the (local) trial and stops the run when it is pruned."""

    def __init__(self, trial: optuna.Trial | None) -> None:
        self.trial = trial
        self.values: list[float] = []

    def on_epoch_end(self, net: Network, record: EpochRecord) -> None:
        self.values.append(record.val_accuracy)
        if self.trial is not None:
            self.trial.report(record.val_accuracy, record.epoch)
            if self.trial.should_prune():
                raise require_optuna().TrialPruned(f"pruned after epoch {record.epoch}")


def run_trial(
    number: int,
    options: dict[str, Any],
    n_classes: int,
    X: npt.NDArray[np.floating],
    y: npt.NDArray[np.integer],
    finished: list[optuna.trial.FrozenTrial] | None,
) -> TrialOutcome:
    """Train trial ``number`` with ``options`` (every train option: ``TuneSettings.train_options``) on X (m, n), y (m,).

    ``finished`` is the study's finished trials when the job was sent; the median pruner judges the run
    against them after every epoch.  None turns pruning off.
    """
    optuna = require_optuna()
    net, config = trial_run(options, X.shape[1], n_classes)
    trial = _pruning_trial(optuna, finished) if finished is not None else None
    reporter = _Reporter(trial)
    started = time.perf_counter()
    try:
        Trainer(net, X, y, config).run(reporter)
    except optuna.TrialPruned:
        return TrialOutcome(number, "pruned", reporter.values, time.perf_counter() - started)
    except DivergenceError as exc:
        return TrialOutcome(number, "diverged", reporter.values, time.perf_counter() - started, str(exc))
    return TrialOutcome(number, "complete", reporter.values, time.perf_counter() - started)


def make_pruner(optuna: Any) -> optuna.pruners.BasePruner:
    """The median pruner.  Steps are epochs, numbered from 1; Optuna judges a step >= n_warmup_steps."""
    return optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=WARMUP_EPOCHS + 1)


def _pruning_trial(optuna: Any, finished: list[optuna.trial.FrozenTrial]) -> optuna.Trial:
    """A trial in a study of its own, in memory, holding copies of ``finished``: the median pruner's view."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "a new study created" line per trial
    try:
        study = optuna.create_study(
            direction="maximize", pruner=make_pruner(optuna), sampler=optuna.samplers.RandomSampler()
        )
    finally:
        optuna.logging.set_verbosity(verbosity)
    study.add_trials(finished)
    return study.ask()


# -- the study ----------------------------------------------------------------------------------


def open_study(*, settings: TuneSettings, storage: str | None, study_name: str | None, data_id: str) -> optuna.Study:
    """The study named ``study_name`` in ``storage`` (created if new; None keeps it in memory).

    A study keeps the settings it was started with; resuming it with others (epochs, seed, data, ...)
    is refused, since its trials would no longer be comparable.
    """
    optuna = require_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=study_name,
                direction="maximize",
                pruner=make_pruner(optuna),
                load_if_exists=True,
            )
        except Exception as exc:  # the database layer's errors (SQLAlchemy's) share no base class with ours
            reason = " ".join(str(exc).split("\n")[0].split())
            raise NNScratchError(
                f"cannot open the study storage {storage!r} ({reason}); give a URL such as sqlite:///tune.db "
                "in an existing directory"
            ) from None
        # Seeded anew on every resumption, past the trials already there, so that a resumed study does
        # not replay the random proposals of its first session.
        study.sampler = optuna.samplers.TPESampler(seed=settings.seed + len(study.trials), constant_liar=True)
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise SpecError(f"study {study.study_name!r} does not maximise; it was not made by nnscratch tune")
    recorded = {**asdict(settings), "data": data_id}
    del recorded["pruning"]  # pruning or not, the trials stay comparable
    previous = study.user_attrs.get("nnscratch")
    if previous is None:
        study.set_user_attr("nnscratch", recorded)
    else:
        changed = [f"{key}={previous.get(key)!r}" for key in recorded if previous.get(key) != recorded[key]]
        if changed:
            raise SpecError(
                f"study {study.study_name!r} was run with {', '.join(changed)}; resume it with the same settings "
                "and data, or start a new one with another --study-name"
            )
    return study


def tune(
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    n_trials: int = 20,
    space: SearchSpace | None = None,
    settings: TuneSettings | None = None,
    n_classes: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    n_jobs: int = 1,
    backend: str | None = None,
    on_trial: Callable[[TrialOutcome, dict[str, Any], int, int], None] | None = None,
) -> optuna.Study:
    """Run the study until it holds ``n_trials`` finished (complete or pruned) trials; returns it.

    X (m, n) and y (m,) are the training set; each trial holds its validation split out of them.
    ``on_trial(outcome, options, done, n_trials)`` is called as each trial finishes.  On an exception
    (Ctrl-C included) the running trials are marked failed and the exception goes on; every finished
    trial stays in the storage.
    """
    from joblib import Parallel, delayed, parallel_config

    require_optuna()  # says how to install Optuna
    from optuna.trial import TrialState

    space, settings = space or SearchSpace(), settings or TuneSettings()
    if not _is_int(n_trials) or n_trials < 1:
        raise SpecError(f"the number of trials must be a positive integer, got {n_trials!r}")
    if n_jobs == 0 or n_jobs < -1:
        raise SpecError(f"jobs must be a positive number of parallel trials or -1 for one per core, got {n_jobs}")
    X, y = np.asarray(X), np.asarray(y)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    if TrainConfig().validation_count(len(y)) < 1:
        raise SpecError(f"tuning needs a validation split, and {len(y)} samples are too few to hold one out")
    study = open_study(settings=settings, storage=storage, study_name=study_name, data_id=data_fingerprint(X, y))
    done = [len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))]
    running: dict[int, tuple[optuna.Trial, dict[str, Any]]] = {}
    # joblib draws the next job from ``jobs()`` in its own thread as a worker frees up, while this thread
    # tells the study how trials ended: the lock keeps the count and the study consistent between them.
    lock = threading.RLock()

    def jobs():
        while True:
            with lock:
                if done[0] + len(running) >= n_trials:
                    return
                trial = study.ask()
                options = settings.train_options(space.suggest(trial))
                trial.set_user_attr("options", options)
                running[trial.number] = (trial, options)
                finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if settings.pruning else None
            # The arrays are top-level arguments so that joblib's Dask backend scatters them once.
            yield delayed(run_trial)(trial.number, options, n_classes, X, y, finished)

    try:
        with parallel_config(backend=backend) if backend else contextlib.nullcontext():
            parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered", pre_dispatch="n_jobs", batch_size=1)
            for outcome in parallel(jobs()):
                with lock:
                    trial, options = running.pop(outcome.number)
                    _tell(study, trial, outcome, TrialState)
                    done[0] += 1
                if on_trial is not None:
                    on_trial(outcome, options, done[0], n_trials)
    except BaseException:
        with lock:
            for trial, _ in running.values():
                trial.set_user_attr("interrupted", True)
                study.tell(trial, state=TrialState.FAIL)
            running.clear()
        raise
    return study


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: TrialOutcome, TrialState: Any) -> None:
    for epoch, value in enumerate(outcome.val_accuracy, start=1):
        trial.report(value, epoch)
    trial.set_user_attr("seconds", round(outcome.seconds, 3))
    trial.set_user_attr("epochs", len(outcome.val_accuracy))
    if outcome.state == "complete":
        study.tell(trial, outcome.value)
    else:
        # A diverged trial is pruned too: TPE then counts its region as bad rather than ignoring it.
        if outcome.message:
            trial.set_user_attr("diverged", outcome.message)
        study.tell(trial, state=TrialState.PRUNED)


# -- what a search leaves behind -------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRow:
    """One line of the trials table."""

    trial: int
    state: str  # complete, pruned, diverged, failed, running
    val_accuracy: float | None  # the last epoch's (pruned: when it was stopped)
    epochs: int | None
    seconds: float | None
    options: dict[str, Any] = field(default_factory=dict)


TABLE_OPTIONS = ("hidden", "optimizer", "lr", "batch-size", "dropout", "l2")


def trial_rows(study: optuna.Study) -> list[TrialRow]:
    """Every trial of the study, in order of number."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        state = t.state.name.lower()
        if state == "pruned" and "diverged" in t.user_attrs:
            state = "diverged"
        elif state == "fail":
            state = "failed"
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
        value = t.value if t.value is not None else last
        rows.append(
            TrialRow(
                t.number,
                state,
                value,
                t.user_attrs.get("epochs"),
                t.user_attrs.get("seconds"),
                dict(t.user_attrs.get("options", {})),
            )
        )
    return rows


def best_config(study: optuna.Study) -> dict[str, Any]:
    """``best.json``: the best trial's ``nnscratch train`` options, and a ``tuning`` note that train ignores."""
    optuna = require_optuna()
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise NNScratchError("no trial has finished yet, so there is no best one; run more trials")
    best = study.best_trial
    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
    note = {
        "study": study.study_name,
        "trial": best.number,
        "val_accuracy": best.value,
        "trials": {k: v for k, v in counts.items() if v},
        "optuna": optuna.__version__,
    }
    return {**best.user_attrs["options"], "tuning": note}


def write_results(study: optuna.Study, directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``best.json``, ``trials.csv`` and the plots into ``directory``; returns the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    best = best_config(study)
    written = [atomic_write(directory / "best.json", lambda f: f.write(json.dumps(best, indent=2).encode() + b"\n"))]
    rows = trial_rows(study)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", "state", "val_accuracy", "epochs", "seconds", *TABLE_OPTIONS])
    for row in rows:
        value = "" if row.val_accuracy is None else row.val_accuracy
        writer.writerow(
            [
                row.trial,
                row.state,
                value,
                row.epochs or "",
                row.seconds or "",
                *(row.options.get(key, "") for key in TABLE_OPTIONS),
            ]
        )
    written.append(atomic_write(directory / "trials.csv", lambda f: f.write(buffer.getvalue().encode())))
    written.append(plot_history(rows, directory / "optimization_history.png"))
    importances = parameter_importances(study)
    if importances:
        written.append(plot_importances(importances, directory / "param_importances.png"))
    return written


def parameter_importances(study: optuna.Study) -> dict[str, float]:
    """Each hyper-parameter's importance for the validation accuracy, by Optuna's fANOVA evaluator (a random
    forest fitted to the finished trials; seeded, so the same study gives the same figures).

    Only parameters that every finished trial has are weighed (``width_2`` exists only for deeper
    networks).  Returns {} while too few trials vary.
    """
    optuna = require_optuna()
    seed = study.user_attrs.get("nnscratch", {}).get("seed", 0)
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        return {
            name: float(value)
            for name, value in optuna.importance.get_param_importances(study, evaluator=evaluator).items()
        }
    except (ValueError, RuntimeError):
        return {}


def plot_history(rows: Sequence[TrialRow], path: Path) -> Path:
    """Write :func:`history_figure` to ``path`` (PNG)."""
    from nnscratch.plots import save_png

    return save_png(history_figure(rows), path)


def plot_importances(importances: dict[str, float], path: Path) -> Path:
    """Write :func:`importances_figure` to ``path`` (PNG)."""
    from nnscratch.plots import save_png

    return save_png(importances_figure(importances), path)


def history_figure(rows: Sequence[TrialRow]) -> Figure:
    """Optimisation history: each trial's validation accuracy, pruned trials where they stopped, the best so far."""
    from nnscratch.plots import figure

    fig = figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for state, colour, marker in (("complete", "C0", "o"), ("pruned", "0.6", "x")):
        points = [(r.trial, r.val_accuracy) for r in rows if r.state == state and r.val_accuracy is not None]
        if points:
            ax.scatter(*zip(*points, strict=True), label=f"{state} trial", zorder=3, color=colour, marker=marker)
    best, line = -math.inf, []
    for r in rows:
        if r.state == "complete" and r.val_accuracy is not None:
            best = max(best, r.val_accuracy)
            line.append((r.trial, best))
    if line:
        ax.step(*zip(*line, strict=True), where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.set_title("optimisation history")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def importances_figure(importances: dict[str, float]) -> Figure:
    """Hyper-parameter importances as horizontal bars, the most important at the top."""
    from nnscratch.plots import figure

    names = list(importances)[::-1]
    fig = figure(figsize=(7, 0.4 * len(names) + 1.2))
    ax = fig.add_subplot()
    ax.barh(names, [importances[n] for n in names], color="C0")
    ax.set_xlabel("importance for the validation accuracy")
    ax.set_title("hyper-parameter importances")
    ax.grid(axis="x", alpha=0.3)
    return fig
