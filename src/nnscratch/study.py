"""The activation study: one architecture trained with each activation, several seeds, the same budget.

Variants: every hidden layer ReLU, Sigmoid, Tanh, SELU or Softmax (as a hidden activation), plus the
original mixed stack (``seed``: ReLU, Sigmoid, SELU, Tanh).  Each (variant, seed, learning rate) run
records its history, test accuracy, seconds per epoch, and the diagnostics of ``nnscratch.diagnostics``
measured after every epoch on a fixed probe batch.

Runs go through joblib, so they spread over the cores, or over a cluster with joblib's Dask backend.
Each finished run is cached as JSON under ``cache_dir``, keyed by everything that determines it, so an
interrupted study resumes where it stopped and a changed setting never reuses a stale result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nnscratch.activations import STUDY_ACTIVATIONS
from nnscratch.diagnostics import gradient_norms, histograms, layer_statistics
from nnscratch.errors import SpecError
from nnscratch.io import atomic_write
from nnscratch.network import LayerSpec, Network
from nnscratch.training import Callback, EpochRecord, TrainConfig, train

SEED_STACK = ("relu", "sigmoid", "selu", "tanh")
VARIANTS = (*STUDY_ACTIVATIONS, "seed")
TARGET = 0.97  # validation accuracy whose first epoch is reported
PROBE = 1000  # validation images the diagnostics are measured on


@dataclass(frozen=True)
class StudySettings:
    """The shared budget of every run."""

    widths: tuple[int, ...] = (32, 32, 64, 64)
    epochs: int = 10
    optimizer: str = "adam"
    schedule: str = "wsd"
    batch_size: int = 128
    seeds: int = 3
    learning_rates: tuple[float, ...] = (1e-3,)

    def __post_init__(self) -> None:
        if not self.widths or any(w < 1 for w in self.widths):
            raise SpecError(f"widths must be positive, got {self.widths}")
        if self.seeds < 1:
            raise SpecError(f"seeds must be at least 1, got {self.seeds}")
        if not self.learning_rates or any(not lr > 0 for lr in self.learning_rates):
            raise SpecError(f"learning rates must be positive, got {self.learning_rates}")


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
            "settings": asdict(settings),
            "data": data_id,
            "version": 1,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def data_fingerprint(X: npt.NDArray, y: npt.NDArray) -> str:
    """A short hash of a dataset (shape, labels and a sample of pixels), to key the cache by."""
    h = hashlib.sha256()
    h.update(repr(X.shape).encode())
    h.update(np.ascontiguousarray(y).tobytes())
    h.update(np.ascontiguousarray(X[:: max(1, len(X) // 500)]).tobytes())
    return h.hexdigest()[:16]


class _Diagnose(Callback):
    """After each epoch: gradient norms and layer statistics on the probe batch."""

    def __init__(self, X_probe: npt.NDArray, y_probe: npt.NDArray) -> None:
        self.X, self.y = X_probe, y_probe
        self.grad_norms: list[list[float]] = []
        self.stats: list[list[dict[str, Any]]] = []

    def on_epoch_end(self, net: Network, record: EpochRecord) -> None:
        self.grad_norms.append(gradient_norms(net, self.X, self.y))
        self.stats.append(layer_statistics(net, self.X))


def run_one(
    variant: str, seed: int, learning_rate: float, settings: StudySettings, X_train, y_train, X_test, y_test
) -> dict[str, Any]:
    """Train one variant with one seed and learning rate; return everything the study reports."""
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    layers = [*hidden_layers(variant, settings.widths), LayerSpec(n_classes, "softmax")]
    net = Network.from_layers(X_train.shape[1], layers, seed=seed)
    config = TrainConfig(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        optimizer=settings.optimizer,
        schedule=settings.schedule,
        learning_rate=learning_rate,
        seed=seed,
    )
    # The probe batch comes from the test set's start: fixed across variants and seeds.
    probe = min(PROBE, len(X_test))
    diagnose = _Diagnose(X_test[:probe], y_test[:probe])
    history = train(net, X_train, y_train, config, callback=diagnose)
    val = history["val_accuracy"]
    reached = next((i + 1 for i, acc in enumerate(val) if acc >= TARGET), None)
    return {
        "variant": variant,
        "seed": seed,
        "learning_rate": learning_rate,
        "spec": net.spec,
        "history": history.to_dict(),
        "test_accuracy": float(np.mean(net.predict(X_test) == y_test)),
        "epochs_to_97": reached,
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


def _cached_run(cache_dir: str, key: str, args: tuple) -> dict[str, Any]:
    path = Path(cache_dir) / f"{key}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            pass  # a damaged cache entry is simply recomputed
    result = run_one(*args)
    atomic_write(path, lambda f: f.write(json.dumps(result).encode()))
    return result


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
) -> list[dict[str, Any]]:
    """Every (variant, seed, learning rate) run, from the cache where present; in parallel with joblib.

    ``backend`` is any joblib backend name (``"loky"`` by default; ``"dask"`` inside a
    ``dask.distributed.Client`` context runs on that cluster).
    """
    from joblib import Parallel, delayed, parallel_config

    for variant in variants:
        hidden_layers(variant, settings.widths)  # validates the name before anything runs
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    data_id = data_fingerprint(X_train, y_train)
    jobs = [
        (variant, seed, lr) for lr in settings.learning_rates for variant in variants for seed in range(settings.seeds)
    ]
    tasks = [
        delayed(_cached_run)(
            str(cache_dir),
            run_key(variant, seed, lr, settings, data_id),
            (variant, seed, lr, settings, X_train, y_train, X_test, y_test),
        )
        for variant, seed, lr in jobs
    ]
    with parallel_config(backend=backend) if backend else contextlib.nullcontext():
        return list(Parallel(n_jobs=n_jobs)(tasks))


def _mean(values: list[float]) -> float:
    return float(statistics.fmean(values)) if values else math.nan


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per variant, at its best learning rate (highest mean final validation accuracy)."""
    by_variant: dict[str, dict[float, list[dict[str, Any]]]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], {}).setdefault(run["learning_rate"], []).append(run)
    summary = []
    for variant, by_lr in by_variant.items():

        def final_val(group):
            return _mean([r["history"]["epochs"][-1]["val_accuracy"] for r in group])

        best_lr = max(by_lr, key=lambda lr: final_val(by_lr[lr]))
        group = sorted(by_lr[best_lr], key=lambda r: r["seed"])
        accuracies = [r["test_accuracy"] for r in group]
        reached = [r["epochs_to_97"] for r in group]
        last_stats = [r["layer_stats"][-1] for r in group]
        n_layers = len(last_stats[0])

        def layer_mean(key, i, stats=last_stats):
            values = [s[i][key] for s in stats if s[i][key] is not None]
            return _mean(values) if values else None

        summary.append(
            {
                "variant": variant,
                "spec": group[0]["spec"],
                "learning_rate": best_lr,
                "learning_rates_tried": {str(lr): final_val(g) for lr, g in sorted(by_lr.items())},
                "seeds": len(group),
                "test_accuracy_mean": _mean(accuracies),
                "test_accuracy_std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
                "train_loss": _mean([r["history"]["epochs"][-1]["train_loss"] for r in group]),
                "val_loss": _mean([r["history"]["epochs"][-1]["val_loss"] for r in group]),
                "epochs_to_97": reached,
                "seconds_per_epoch": _mean([r["seconds_per_epoch"] for r in group]),
                "dead": [layer_mean("dead", i) for i in range(n_layers)],
                "saturated": [layer_mean("saturated_activations", i) for i in range(n_layers)],
            "saturated_units": [layer_mean("saturated_units", i) for i in range(n_layers)],
                "activation_mean": [layer_mean("mean", i) for i in range(n_layers)],
                "activation_std": [layer_mean("std", i) for i in range(n_layers)],
                "grad_norm_first_epoch": np.mean([r["grad_norms"][0] for r in group], axis=0).tolist(),
                "grad_norm_last_epoch": np.mean([r["grad_norms"][-1] for r in group], axis=0).tolist(),
            }
        )
    order = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(summary, key=lambda s: order.get(s["variant"], len(order)))
