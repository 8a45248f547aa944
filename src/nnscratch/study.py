"""The activation study: one architecture trained with each activation, several seeds, the same budget.

The architecture is an MLP of given hidden widths (the input and output sizes come from the data),
or any base spec, a convnet included.  Variants: every hidden activation (activation layers and
dense layers' own activations, never the output) ReLU, Sigmoid, Tanh, SELU or Softmax, plus the
original mixed stack (``seed``: ReLU, Sigmoid, SELU, Tanh, cycled over the hidden activations in
order).  Each (variant, seed, learning rate) run records its history, test accuracy, seconds per
epoch, and the diagnostics of ``nnscratch.diagnostics`` measured after every epoch on a fixed probe
batch (through the training loop's ``on_epoch_end`` hook, so the hot path is untouched and the
per-epoch seconds exclude the diagnostics).  A run is a :class:`RunResult`; :func:`summarise` turns
the runs into one :class:`VariantSummary` per variant.

Runs go through joblib, so they spread over the cores, or over a cluster with joblib's Dask backend.
Each finished run is cached as JSON under ``cache_dir``, keyed by everything that determines it, so an
interrupted study resumes where it stopped and a changed setting never reuses a stale result.  The
number of seeds and the list of learning rates are not part of a run's key: adding a seed or a rate
to a finished study trains only the new runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from nnscratch import plotdata
from nnscratch.activations import STUDY_ACTIVATIONS, get_activation
from nnscratch.data import data_fingerprint
from nnscratch.diagnostics import gradient_norms, hidden_positions, layer_statistics
from nnscratch.errors import DivergenceError, SpecError, check_name
from nnscratch.io import atomic_write
from nnscratch.metrics import accuracy
from nnscratch.network import Network
from nnscratch.parallel import available_cores
from nnscratch.plotdata import Histogram
from nnscratch.spec import check_fits, compose_spec, parse_spec
from nnscratch.training import Callback, EpochRecord, History, TrainConfig, train

SEED_STACK = ("relu", "sigmoid", "selu", "tanh")
VARIANTS = (*STUDY_ACTIVATIONS, "seed")
DEFAULT_WIDTHS = (32, 32, 64, 64)
TARGET = 0.97  # validation accuracy whose first epoch is reported
PROBE = 1000  # test images the diagnostics are measured on (the first ones: the same for every run)
FIRST_UNITS = 32  # first-layer units of a dense first layer kept for the report's pictures
CACHE_VERSION = 3  # bump when a run's result changes shape or meaning, so old cache entries are ignored

Job = tuple[str, int, float]  # (variant, seed, learning rate)


# -- the settings and the networks they describe ------------------------------------------------


@dataclass(frozen=True)
class StudySettings:
    """The shared budget of every run, and how many seeds and which learning rates to try.

    The architecture is ``widths`` (an MLP's hidden layers; 32, 32, 64, 64 when neither is given) or
    ``spec`` (a whole network such as ``1x28x28-conv8k3-relu-maxpool2-flatten-32:relu-10:softmax``),
    not both.
    """

    widths: tuple[int, ...] | None = None
    spec: str | None = None
    epochs: int = 10
    optimizer: str = "adam"
    schedule: str = "wsd"
    batch_size: int = 128
    seeds: int = 3
    learning_rates: tuple[float, ...] = (1e-3,)

    def __post_init__(self) -> None:
        if self.spec is not None:
            if self.widths is not None:
                raise SpecError("give either widths (an MLP's hidden layers) or a spec (the whole network), not both")
            net = Network.from_spec(self.spec)  # the grammar, and every layer against the shape it meets
            if not hidden_positions(net.layers):
                raise SpecError(
                    f"the spec {self.spec!r} has no hidden activation for the variants to replace; add one, "
                    "such as relu after a convolution or a dense layer 32:relu before the output"
                )
        elif self.widths is None:
            object.__setattr__(self, "widths", DEFAULT_WIDTHS)  # frozen: set once, before anyone reads it
        elif not self.widths or any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise SpecError(f"widths must be positive integers such as 32,32,64,64, got {self.widths}")
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise SpecError(f"seeds must be a positive integer, got {self.seeds!r}")
        if not self.learning_rates:
            raise SpecError("give at least one learning rate")
        for lr in self.learning_rates:
            self.train_config(lr, 0)  # TrainConfig names any bad epochs, optimiser, schedule, batch or rate

    def train_config(self, learning_rate: float, seed: int) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            schedule=self.schedule,
            learning_rate=learning_rate,
            seed=seed,
            calibrate=False,  # the study compares the networks as trained
        )

    def run_settings(self) -> dict[str, Any]:
        """The settings that determine one run (not how many seeds or which rates the study has)."""
        return {
            "widths": None if self.widths is None else list(self.widths),
            "spec": self.spec,
            "epochs": self.epochs,
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "batch_size": self.batch_size,
        }

    def base_spec(self, n_features: int, n_classes: int) -> str:
        """The architecture every variant starts from, for data of ``n_features`` values per image and
        labels in [0, ``n_classes``); raises SpecError if the given spec does not fit that data."""
        if self.spec is None:
            return compose_spec(n_features, [f"{w}:relu" for w in self.widths or ()], n_classes)
        input_shape, layers = parse_spec(self.spec)
        check_fits(input_shape, layers, n_features, n_classes, exact_classes=False)
        return self.spec


def variant_activations(variant: str, n: int) -> list[str]:
    """The activation of each of a network's n hidden activations in a variant: one name everywhere, or
    the seed stack's, cycled."""
    if check_name(VARIANTS, variant, "variant") == "seed":
        return [SEED_STACK[i % len(SEED_STACK)] for i in range(n)]
    return [variant] * n


def variant_network(base_spec: str, variant: str, *, seed: int | None = None, threads: int | None = None) -> Network:
    """The network of ``base_spec`` with every hidden activation replaced by the variant's.

    The layers are changed before the network is built, so each layer's initialiser suits the
    activation it now feeds (He for ReLU, Glorot for sigmoid and tanh, LeCun for SELU).
    """
    input_shape, layers = parse_spec(base_spec)
    hidden = hidden_positions(layers)
    for i, name in zip(hidden, variant_activations(variant, len(hidden)), strict=True):
        layers[i].activation = get_activation(name)
    return Network(input_shape, layers, seed=seed, threads=threads)


def run_key(variant: str, seed: int, learning_rate: float, settings: StudySettings, data_id: str) -> str:
    """A name for the cached result that changes whenever anything that determines the run changes."""
    blob = json.dumps(
        {
            "variant": variant,
            "seed": seed,
            "lr": learning_rate,
            "settings": settings.run_settings(),
            "data": data_id,
            "probe": PROBE,
            "target": TARGET,
            "version": CACHE_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


# -- what one run records -----------------------------------------------------------------------


@dataclass(frozen=True)
class LayerStats:
    """One hidden layer's activations on the probe batch (``diagnostics.layer_statistics``): mean and
    std; the share of dead units (ReLU family) and of saturated units and activations (sigmoid, tanh),
    None where they do not apply."""

    activation: str
    mean: float
    std: float
    dead: float | None
    saturated_units: float | None
    saturated_activations: float | None


@dataclass(frozen=True, eq=False)
class ModelSummary:
    """Enough of one trained model to draw its confusion matrix, confident mistakes and first layer.

    ``predicted`` (m,) and ``confidence`` (m,) are the label and its probability for every test image;
    ``first_layer_weights`` (n, ≤ 32) or ``filters`` (kh, kw, C, F) as in ``plotdata.first_layer``.
    """

    predicted: npt.NDArray[np.integer]
    confidence: npt.NDArray[np.floating]
    first_layer_weights: npt.NDArray[np.floating] | None = None
    filters: npt.NDArray[np.floating] | None = None

    @classmethod
    def of(cls, net: Network, X_test: npt.NDArray) -> ModelSummary:
        P = net.predict_proba(X_test)
        weights, filters = plotdata.first_layer(net)
        return cls(
            P.argmax(axis=1),
            np.round(P.max(axis=1).astype(np.float64), 4),
            None if weights is None else np.round(weights[:, :FIRST_UNITS], 4),
            None if filters is None else np.round(filters, 4),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: None if v is None else v.tolist() for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSummary:
        def array(key: str, dtype: type) -> npt.NDArray | None:
            return None if data.get(key) is None else np.asarray(data[key], dtype=dtype)

        return cls(
            array("predicted", np.intp),  # type: ignore[arg-type]
            array("confidence", np.float64),  # type: ignore[arg-type]
            array("first_layer_weights", np.float64),
            array("filters", np.float64),
        )


@dataclass(frozen=True, eq=False)
class RunResult:
    """Everything one (variant, seed, learning rate) run measured.

    ``grad_norms[epoch][j]`` is ‖dW‖ of the j-th layer with weights (named by ``weight_layers``, the
    output last) and ``layer_stats[epoch][i]`` describes the i-th hidden activation (the network's
    layer ``hidden_layers[i]``, counted from 1, fed by the layer with weights ``fed_by[i]``), both
    after each epoch on the probe batch.  A run that
    diverged says why in ``diverged``, has no test accuracy, histograms or model, and keeps the epochs
    it finished.  ``model`` is kept for seed 0 only.
    """

    variant: str
    seed: int
    learning_rate: float
    spec: str
    input_shape: tuple[int, ...]
    hidden_layers: tuple[int, ...]
    fed_by: tuple[int | None, ...]
    weight_layers: tuple[str, ...]
    history: History
    test_accuracy: float | None
    epochs_to_target: int | None
    seconds_per_epoch: float | None
    grad_norms: tuple[tuple[float, ...], ...]
    layer_stats: tuple[tuple[LayerStats, ...], ...]
    histograms: tuple[Histogram, ...] | None = None
    model: ModelSummary | None = None
    diverged: str | None = None

    @property
    def job(self) -> Job:
        return (self.variant, self.seed, self.learning_rate)

    @property
    def final_val_accuracy(self) -> float:
        """The last epoch's validation accuracy; 0 for a run that diverged, so its rate is never the best."""
        return 0.0 if self.diverged else self.history.epochs[-1].val_accuracy

    def to_dict(self, *, slim: bool = False) -> dict[str, Any]:
        """A JSON-ready dict; ``slim`` leaves out the bulky histograms and model (for ``results.json``)."""
        data: dict[str, Any] = {
            "variant": self.variant,
            "seed": self.seed,
            "learning_rate": self.learning_rate,
            "spec": self.spec,
            "input_shape": list(self.input_shape),
            "hidden_layers": list(self.hidden_layers),
            "fed_by": list(self.fed_by),
            "weight_layers": list(self.weight_layers),
            "diverged": self.diverged,
            "history": self.history.to_dict(),
            "test_accuracy": self.test_accuracy,
            "epochs_to_target": self.epochs_to_target,
            "seconds_per_epoch": self.seconds_per_epoch,
            "grad_norms": [list(norms) for norms in self.grad_norms],
            "layer_stats": [[asdict(s) for s in epoch] for epoch in self.layer_stats],
        }
        if not slim:
            data["histograms"] = None if self.histograms is None else [h.to_dict() for h in self.histograms]
            data["model"] = None if self.model is None else self.model.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        histograms, model = data.get("histograms"), data.get("model")
        return cls(
            variant=data["variant"],
            seed=data["seed"],
            learning_rate=data["learning_rate"],
            spec=data["spec"],
            input_shape=tuple(data["input_shape"]),
            hidden_layers=tuple(data["hidden_layers"]),
            fed_by=tuple(data["fed_by"]),
            weight_layers=tuple(data["weight_layers"]),
            history=History.from_dict(data["history"]),
            test_accuracy=data["test_accuracy"],
            epochs_to_target=data["epochs_to_target"],
            seconds_per_epoch=data["seconds_per_epoch"],
            grad_norms=tuple(tuple(norms) for norms in data["grad_norms"]),
            layer_stats=tuple(tuple(LayerStats(**s) for s in epoch) for epoch in data["layer_stats"]),
            histograms=None if histograms is None else tuple(Histogram.from_dict(h) for h in histograms),
            model=None if model is None else ModelSummary.from_dict(model),
            diverged=data["diverged"],
        )


class _Diagnose(Callback):
    """After each epoch: the record, gradient norms and layer statistics on the probe batch."""

    def __init__(self, X_probe: npt.NDArray, y_probe: npt.NDArray) -> None:
        self.X, self.y = X_probe, y_probe
        self.records: list[EpochRecord] = []
        self.grad_norms: list[tuple[float, ...]] = []
        self.stats: list[tuple[LayerStats, ...]] = []

    def on_epoch_end(self, net: Network, record: EpochRecord) -> None:
        self.records.append(record)
        self.grad_norms.append(tuple(gradient_norms(net, self.X, self.y)))
        self.stats.append(tuple(LayerStats(**s) for s in layer_statistics(net, self.X)))


def run_one(
    variant: str,
    seed: int,
    learning_rate: float,
    settings: StudySettings,
    X_train,
    y_train,
    X_test,
    y_test,
    threads: int | None = None,
) -> RunResult:
    """Train one variant with one seed and learning rate; return everything the study reports.

    ``threads`` is how many threads the run computes with (None: every core of the machine it runs on).
    A run that diverges is recorded as such rather than stopping the whole study.
    """
    # Arrays that arrive through Dask's serialisation can be unaligned views into a network buffer;
    # NumPy's row gather (X.take, once per batch) is thousands of times slower on them, so align first.
    # This copies nothing for ordinary arrays.
    X_train, y_train, X_test, y_test = (
        np.require(a, requirements=("C_CONTIGUOUS", "ALIGNED")) for a in (X_train, y_train, X_test, y_test)
    )
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    net = variant_network(settings.base_spec(X_train.shape[1], n_classes), variant, seed=seed, threads=threads)
    probe = min(PROBE, len(X_test))
    diagnose = _Diagnose(X_test[:probe], y_test[:probe])

    def result(**outcome: Any) -> RunResult:
        """This run (its variant, seed, rate and network) with what its training gave."""
        return RunResult(
            variant=variant,
            seed=seed,
            learning_rate=learning_rate,
            spec=net.spec,
            input_shape=net.input_shape,
            hidden_layers=tuple(i + 1 for i in hidden_positions(net.layers)),
            fed_by=tuple(plotdata.fed_by(net)),
            weight_layers=tuple(plotdata.weight_names(net)),
            **outcome,
        )

    try:
        history = train(net, X_train, y_train, settings.train_config(learning_rate, seed), callback=diagnose)
    except DivergenceError as exc:
        records = diagnose.records
        return result(
            history=History(list(records)),
            test_accuracy=None,
            epochs_to_target=None,
            seconds_per_epoch=_mean([r.seconds for r in records]) if records else None,
            grad_norms=tuple(diagnose.grad_norms),
            layer_stats=tuple(diagnose.stats),
            diverged=str(exc),
        )
    val = history["val_accuracy"]
    return result(
        history=history,
        test_accuracy=accuracy(y_test, net.predict(X_test)),
        epochs_to_target=next((i + 1 for i, acc in enumerate(val) if acc >= TARGET), None),
        seconds_per_epoch=history.seconds / len(history),
        grad_norms=tuple(diagnose.grad_norms),
        layer_stats=tuple(diagnose.stats),
        histograms=tuple(plotdata.histogram_panels(net, X_test[:probe])),
        # Enough of seed 0's model to draw its confusion matrix, mistakes and first layer.
        model=ModelSummary.of(net, X_test) if seed == 0 else None,
    )


def threads_per_run(threads: int | None, backend: str | None, n_jobs: int, runs: int) -> int | None:
    """The threads each of ``runs`` runs computes with: ``threads`` if given; for runs side by side on this
    machine (joblib's own backends), their share of its cores; else (a cluster's workers) None, each
    worker's default."""
    if threads is None and backend in (None, "loky", "threading", "multiprocessing") and runs:
        at_once = min(runs, available_cores() if n_jobs == -1 else n_jobs)
        return max(1, available_cores() // at_once)
    return threads


def _read_cached(path: Path) -> RunResult | None:
    """The run cached at ``path``, or None if there is none (a damaged entry counts as none)."""
    try:
        return RunResult.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):  # ValueError covers a JSONDecodeError
        return None


def check_variants(variants: Sequence[str]) -> None:
    """Raise SpecError naming the first unknown variant."""
    for variant in variants:
        variant_activations(variant, 0)


def run_study(
    settings: StudySettings,
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    cache_dir: str | os.PathLike[str],
    variants: tuple[str, ...] = VARIANTS,
    n_jobs: int = -1,
    backend: str | None = None,
    on_result: Callable[[RunResult, bool, int, int], None] | None = None,
    threads: int | None = None,
) -> list[RunResult]:
    """Every (variant, seed, learning rate) run, from the cache where present; the rest in parallel.

    ``threads`` is how many threads each run computes with (default: the cores divided between the runs
    that go at once on this machine, and all of a Dask worker's).  Runs go through joblib: ``backend`` is
    any joblib backend name (``"loky"`` by default; ``"dask"``
    inside a ``dask.distributed.Client`` context runs on that cluster).  Only this process reads and
    writes ``cache_dir``, each result as soon as it arrives, so workers need no shared disk and an
    interrupted study keeps every run that finished.  ``on_result(run, cached, done, total)`` is called
    for each run, cached ones first, the others as they finish.  Returns the runs ordered by learning
    rate, variant, then seed.
    """
    from joblib import Parallel, delayed, parallel_config

    variants = tuple(dict.fromkeys(variants))  # a variant named twice is run once
    check_variants(variants)  # before anything runs
    if n_jobs == 0 or n_jobs < -1:
        raise SpecError(f"jobs must be a positive number of parallel runs or -1 for one per core, got {n_jobs}")
    settings.base_spec(X_train.shape[1], int(max(y_train.max(), y_test.max())) + 1)  # the spec fits the data
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    data_id = data_fingerprint(X_train, y_train, X_test, y_test)
    jobs: list[Job] = [
        (variant, seed, lr) for lr in settings.learning_rates for variant in variants for seed in range(settings.seeds)
    ]
    paths = {job: cache_dir / f"{run_key(*job, settings, data_id)}.json" for job in jobs}
    finished: dict[Job, RunResult] = {}

    def record(job: Job, run: RunResult, cached: bool) -> None:
        finished[job] = run
        if on_result is not None:
            on_result(run, cached, len(finished), len(jobs))

    todo = []
    for job in jobs:
        run = _read_cached(paths[job])
        if run is None:
            todo.append(job)
        else:
            record(job, run, True)
    # The arrays are top-level arguments so that joblib's Dask backend scatters them to the workers
    # once, rather than shipping them with every task.
    each = threads_per_run(threads, backend, n_jobs, len(todo))
    tasks = [delayed(run_one)(*job, settings, X_train, y_train, X_test, y_test, each) for job in todo]
    with parallel_config(backend=backend) if backend else contextlib.nullcontext():
        for run in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks):
            atomic_write(paths[run.job], _json_writer(run))
            record(run.job, run, False)
    return [finished[job] for job in jobs]


def _json_writer(run: RunResult) -> Callable[[IO[bytes]], int]:
    """What writes ``run`` as JSON to the file :func:`atomic_write` hands it."""
    return lambda f: f.write(json.dumps(run.to_dict()).encode())


# -- the summary of each variant ----------------------------------------------------------------


@dataclass(frozen=True)
class VariantStatistics:
    """Means over the seeds of one variant at one rate that did not diverge.

    Per-layer tuples hold one value per hidden activation (None where a diagnostic does not apply),
    measured after the last epoch; the gradient norms one per layer with weights, the output last.
    """

    test_accuracy_mean: float
    test_accuracy_std: float
    train_loss: float
    val_loss: float
    seconds_per_epoch: float
    dead: tuple[float | None, ...]
    saturated: tuple[float | None, ...]
    saturated_units: tuple[float | None, ...]
    activation_mean: tuple[float | None, ...]
    activation_std: tuple[float | None, ...]
    grad_norm_first_epoch: tuple[float, ...]
    grad_norm_last_epoch: tuple[float, ...]


@dataclass(frozen=True)
class VariantSummary:
    """One variant at its best learning rate (the highest mean final validation accuracy).

    ``learning_rates_tried`` maps each rate tried (as text, ``1e-03`` → ``"0.001"``) to its mean
    final validation accuracy; ``epochs_to_target`` has one entry per seed (None: never reached, or
    diverged); ``statistics`` is None when every seed diverged.  ``hidden_layers``, ``activations``
    and ``fed_by`` say, for each hidden activation, which layer it is, what it is in this variant and
    which layer with weights feeds it (as in :class:`RunResult`).
    """

    variant: str
    spec: str
    input_shape: tuple[int, ...]
    learning_rate: float
    learning_rates_tried: dict[str, float]
    seeds: int
    diverged: int
    epochs_to_target: tuple[int | None, ...]
    hidden_layers: tuple[int, ...]
    activations: tuple[str, ...]
    fed_by: tuple[int | None, ...]
    weight_layers: tuple[str, ...]
    statistics: VariantStatistics | None


def _mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else math.nan


def summarise(runs: Sequence[RunResult]) -> list[VariantSummary]:
    """One summary per variant, at its best learning rate, in the order of ``VARIANTS``."""
    by_variant: dict[str, dict[float, list[RunResult]]] = {}
    for run in runs:
        by_variant.setdefault(run.variant, {}).setdefault(run.learning_rate, []).append(run)
    summary = []
    for variant, by_lr in by_variant.items():
        scores = {lr: _mean([r.final_val_accuracy for r in group]) for lr, group in by_lr.items()}
        best_lr = max(scores, key=scores.__getitem__)
        group = sorted(by_lr[best_lr], key=lambda r: r.seed)
        ok = [r for r in group if not r.diverged]
        first = group[0]
        summary.append(
            VariantSummary(
                variant=variant,
                spec=first.spec,
                input_shape=first.input_shape,
                learning_rate=best_lr,
                learning_rates_tried={f"{lr:g}": scores[lr] for lr in sorted(scores)},
                seeds=len(group),
                diverged=len(group) - len(ok),
                epochs_to_target=tuple(None if r.diverged else r.epochs_to_target for r in group),
                hidden_layers=first.hidden_layers,
                activations=tuple(variant_activations(variant, len(first.hidden_layers))),
                fed_by=first.fed_by,
                weight_layers=first.weight_layers,
                statistics=_statistics(ok) if ok else None,
            )
        )
    order = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(summary, key=lambda s: order.get(s.variant, len(order)))


def _statistics(group: list[RunResult]) -> VariantStatistics:
    """Means over the runs of one variant at one rate (none of them diverged)."""
    accuracies = [r.test_accuracy for r in group if r.test_accuracy is not None]
    last_stats = [r.layer_stats[-1] for r in group]
    n_layers = len(last_stats[0])

    def per_layer(key: str) -> tuple[float | None, ...]:
        values = [[getattr(s[i], key) for s in last_stats if getattr(s[i], key) is not None] for i in range(n_layers)]
        return tuple(_mean(v) if v else None for v in values)

    return VariantStatistics(
        test_accuracy_mean=_mean(accuracies),
        test_accuracy_std=float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
        train_loss=_mean([r.history.epochs[-1].train_loss for r in group]),
        val_loss=_mean([r.history.epochs[-1].val_loss for r in group]),
        seconds_per_epoch=_mean([r.seconds_per_epoch for r in group if r.seconds_per_epoch is not None]),
        dead=per_layer("dead"),
        saturated=per_layer("saturated_activations"),
        saturated_units=per_layer("saturated_units"),
        activation_mean=per_layer("mean"),
        activation_std=per_layer("std"),
        grad_norm_first_epoch=tuple(np.mean([r.grad_norms[0] for r in group], axis=0).tolist()),
        grad_norm_last_epoch=tuple(np.mean([r.grad_norms[-1] for r in group], axis=0).tolist()),
    )
