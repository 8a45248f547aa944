"""The activation study: one architecture trained with each activation, several seeds, the same budget.

Variants: every hidden layer ReLU, Sigmoid, Tanh, SELU or Softmax (as a hidden activation), plus the
original mixed stack (``seed``: ReLU, Sigmoid, SELU, Tanh).  Each (variant, seed, learning rate) run
records its history, test accuracy, seconds per epoch, and the diagnostics of ``nnscratch.diagnostics``
measured after every epoch on a fixed probe batch (through the training loop's ``on_epoch_end`` hook,
so the hot path is untouched and the per-epoch seconds exclude the diagnostics).

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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nnscratch.activations import STUDY_ACTIVATIONS
from nnscratch.diagnostics import gradient_norms, histograms, layer_statistics
from nnscratch.errors import DivergenceError, SpecError
from nnscratch.io import atomic_write
from nnscratch.metrics import accuracy
from nnscratch.network import LayerSpec, Network
from nnscratch.training import Callback, EpochRecord, TrainConfig, train

SEED_STACK = ("relu", "sigmoid", "selu", "tanh")
VARIANTS = (*STUDY_ACTIVATIONS, "seed")
TARGET = 0.97  # validation accuracy whose first epoch is reported
PROBE = 1000  # test images the diagnostics are measured on (the first ones: the same for every run)
CACHE_VERSION = 2  # bump when a run's result changes shape or meaning, so old cache entries are ignored

Run = dict[str, Any]


@dataclass(frozen=True)
class StudySettings:
    """The shared budget of every run, and how many seeds and which learning rates to try."""

    widths: tuple[int, ...] = (32, 32, 64, 64)
    epochs: int = 10
    optimizer: str = "adam"
    schedule: str = "wsd"
    batch_size: int = 128
    seeds: int = 3
    learning_rates: tuple[float, ...] = (1e-3,)

    def __post_init__(self) -> None:
        if not self.widths or any(not isinstance(w, int) or w < 1 for w in self.widths):
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
        )

    def run_settings(self) -> dict[str, Any]:
        """The settings that determine one run (not how many seeds or which rates the study has)."""
        return {
            "widths": list(self.widths),
            "epochs": self.epochs,
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "batch_size": self.batch_size,
        }


def hidden_layers(variant: str, widths: tuple[int, ...]) -> list[LayerSpec]:
    """The hidden layers of a variant: one activation everywhere, or the seed stack's (cycled)."""
    if variant == "seed":
        return [LayerSpec(w, SEED_STACK[i % len(SEED_STACK)]) for i, w in enumerate(widths)]
    if variant not in STUDY_ACTIVATIONS:
        raise SpecError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return [LayerSpec(w, variant) for w in widths]


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


def data_fingerprint(*arrays: npt.NDArray) -> str:
    """A short hash of the data (shapes, every label, a sample of the pixels), to key the cache by."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.shape}{a.dtype}".encode())
        step = max(1, len(a) // 500) if a.ndim > 1 else 1
        h.update(np.ascontiguousarray(a[::step]).tobytes())
    return h.hexdigest()[:16]


class _Diagnose(Callback):
    """After each epoch: the record, gradient norms and layer statistics on the probe batch."""

    def __init__(self, X_probe: npt.NDArray, y_probe: npt.NDArray) -> None:
        self.X, self.y = X_probe, y_probe
        self.records: list[dict[str, Any]] = []
        self.grad_norms: list[list[float]] = []
        self.stats: list[list[dict[str, Any]]] = []

    def on_epoch_end(self, net: Network, record: EpochRecord) -> None:
        self.records.append(asdict(record))
        self.grad_norms.append(gradient_norms(net, self.X, self.y))
        self.stats.append(layer_statistics(net, self.X))


def run_one(
    variant: str, seed: int, learning_rate: float, settings: StudySettings, X_train, y_train, X_test, y_test
) -> Run:
    """Train one variant with one seed and learning rate; return everything the study reports.

    A run that diverges is recorded as such (``"diverged"`` holds the message, ``"test_accuracy"`` is
    None) rather than stopping the whole study.
    """
    # Arrays that arrive through Dask's serialisation can be unaligned views into a network buffer;
    # NumPy's row gather (X.take, once per batch) is thousands of times slower on them, so align first.
    # This copies nothing for ordinary arrays.
    X_train, y_train, X_test, y_test = (
        np.require(a, requirements=("C_CONTIGUOUS", "ALIGNED")) for a in (X_train, y_train, X_test, y_test)
    )
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    layers = [*hidden_layers(variant, settings.widths), LayerSpec(n_classes, "softmax")]
    net = Network.from_layers(X_train.shape[1], layers, seed=seed)
    probe = min(PROBE, len(X_test))
    diagnose = _Diagnose(X_test[:probe], y_test[:probe])
    result: Run = {"variant": variant, "seed": seed, "learning_rate": learning_rate, "spec": net.spec}
    try:
        history = train(net, X_train, y_train, settings.train_config(learning_rate, seed), callback=diagnose)
    except DivergenceError as exc:
        records = diagnose.records
        return result | {
            "diverged": str(exc),
            "history": {"epochs": records, "best_epoch": None, "stopped_early": False},
            "test_accuracy": None,
            "epochs_to_97": None,
            "seconds_per_epoch": _mean([r["seconds"] for r in records]) if records else None,
            "grad_norms": diagnose.grad_norms,
            "layer_stats": diagnose.stats,
            "histograms": None,
            "model": None,
        }
    val = history["val_accuracy"]
    return result | {
        "diverged": None,
        "history": history.to_dict(),
        "test_accuracy": accuracy(y_test, net.predict(X_test)),
        "epochs_to_97": next((i + 1 for i, acc in enumerate(val) if acc >= TARGET), None),
        "seconds_per_epoch": history.seconds / len(history),
        "grad_norms": diagnose.grad_norms,
        "layer_stats": diagnose.stats,
        "histograms": histograms(net, X_test[:probe]),
        # Enough of seed 0's model to draw its confusion matrix, mistakes and first-layer weights.
        "model": _model_summary(net, X_test) if seed == 0 else None,
    }


def _model_summary(net: Network, X_test) -> dict[str, Any]:
    P = net.predict_proba(X_test)
    return {
        "predicted": P.argmax(axis=1).tolist(),
        "confidence": np.round(P.max(axis=1).astype(float), 4).tolist(),
        "first_layer": np.round(net.layers[0].W[:, :32].astype(float), 4).tolist(),
    }


def _read_cached(path: Path) -> Run | None:
    """The run cached at ``path``, or None if there is none (a damaged entry counts as none)."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


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
    on_result: Callable[[Run, bool, int, int], None] | None = None,
) -> list[Run]:
    """Every (variant, seed, learning rate) run, from the cache where present; the rest in parallel.

    Runs go through joblib: ``backend`` is any joblib backend name (``"loky"`` by default; ``"dask"``
    inside a ``dask.distributed.Client`` context runs on that cluster).  Only this process reads and
    writes ``cache_dir``, each result as soon as it arrives, so workers need no shared disk and an
    interrupted study keeps every run that finished.  ``on_result(run, cached, done, total)`` is called
    for each run, cached ones first, the others as they finish.  Returns the runs ordered by learning
    rate, variant, then seed.
    """
    from joblib import Parallel, delayed, parallel_config

    variants = tuple(dict.fromkeys(variants))  # a variant named twice is run once
    for variant in variants:
        hidden_layers(variant, settings.widths)  # validates the name before anything runs
    if n_jobs == 0 or n_jobs < -1:
        raise SpecError(f"jobs must be a positive number of parallel runs or -1 for one per core, got {n_jobs}")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    data_id = data_fingerprint(X_train, y_train, X_test, y_test)
    jobs = [
        (variant, seed, lr) for lr in settings.learning_rates for variant in variants for seed in range(settings.seeds)
    ]
    paths = {job: cache_dir / f"{run_key(*job, settings, data_id)}.json" for job in jobs}
    finished: dict[tuple[str, int, float], Run] = {}

    def record(job: tuple[str, int, float], run: Run, cached: bool) -> None:
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
    tasks = [delayed(run_one)(*job, settings, X_train, y_train, X_test, y_test) for job in todo]
    with parallel_config(backend=backend) if backend else contextlib.nullcontext():
        for run in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks):
            job = (run["variant"], run["seed"], run["learning_rate"])
            atomic_write(paths[job], lambda f, run=run: f.write(json.dumps(run).encode()))
            record(job, run, False)
    return [finished[job] for job in jobs]


def _mean(values: list[float]) -> float:
    return float(statistics.fmean(values)) if values else math.nan


def _final_val_accuracy(run: Run) -> float:
    """The last epoch's validation accuracy; 0 for a run that diverged, so its rate is never the best."""
    if run.get("diverged"):
        return 0.0
    return run["history"]["epochs"][-1]["val_accuracy"]


def summarise(runs: list[Run]) -> list[dict[str, Any]]:
    """One entry per variant, at its best learning rate (highest mean final validation accuracy).

    Means are over the seeds that did not diverge; ``diverged`` counts those that did.  Per-layer
    diagnostics (lists, one value per hidden layer) are from the probe batch after the last epoch.
    """
    by_variant: dict[str, dict[float, list[Run]]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], {}).setdefault(run["learning_rate"], []).append(run)
    summary = []
    for variant, by_lr in by_variant.items():
        scores = {lr: _mean([_final_val_accuracy(r) for r in group]) for lr, group in by_lr.items()}
        best_lr = max(scores, key=scores.get)
        group = sorted(by_lr[best_lr], key=lambda r: r["seed"])
        ok = [r for r in group if not r.get("diverged")]
        entry: dict[str, Any] = {
            "variant": variant,
            "spec": group[0]["spec"],
            "learning_rate": best_lr,
            "learning_rates_tried": {f"{lr:g}": scores[lr] for lr in sorted(scores)},
            "seeds": len(group),
            "diverged": len(group) - len(ok),
            "epochs_to_97": [None if r.get("diverged") else r["epochs_to_97"] for r in group],
        }
        summary.append(entry | (_run_statistics(ok) if ok else _EMPTY_STATISTICS))
    order = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(summary, key=lambda s: order.get(s["variant"], len(order)))


_EMPTY_STATISTICS: dict[str, Any] = dict.fromkeys(
    (
        "test_accuracy_mean",
        "test_accuracy_std",
        "train_loss",
        "val_loss",
        "seconds_per_epoch",
        "dead",
        "saturated",
        "saturated_units",
        "activation_mean",
        "activation_std",
        "grad_norm_first_epoch",
        "grad_norm_last_epoch",
    )
)


def _run_statistics(group: list[Run]) -> dict[str, Any]:
    """Means over the runs of one variant at one rate (none of them diverged)."""
    accuracies = [r["test_accuracy"] for r in group]
    last_stats = [r["layer_stats"][-1] for r in group]
    n_layers = len(last_stats[0])

    def per_layer(key: str) -> list[float | None]:
        values = [[s[i][key] for s in last_stats if s[i][key] is not None] for i in range(n_layers)]
        return [_mean(v) if v else None for v in values]

    return {
        "test_accuracy_mean": _mean(accuracies),
        "test_accuracy_std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
        "train_loss": _mean([r["history"]["epochs"][-1]["train_loss"] for r in group]),
        "val_loss": _mean([r["history"]["epochs"][-1]["val_loss"] for r in group]),
        "seconds_per_epoch": _mean([r["seconds_per_epoch"] for r in group]),
        "dead": per_layer("dead"),
        "saturated": per_layer("saturated_activations"),
        "saturated_units": per_layer("saturated_units"),
        "activation_mean": per_layer("mean"),
        "activation_std": per_layer("std"),
        "grad_norm_first_epoch": np.mean([r["grad_norms"][0] for r in group], axis=0).tolist(),
        "grad_norm_last_epoch": np.mean([r["grad_norms"][-1] for r in group], axis=0).tolist(),
    }
