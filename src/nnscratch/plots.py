"""Plots of training runs, activations and models, written as PNG files with matplotlib.

Every function takes plain data (histories as dicts, arrays) plus an output path, writes one PNG
atomically and returns its path.  ``save_training_plots`` and ``save_evaluation_plots`` write the set
that ``nnscratch train --plots DIR`` and ``nnscratch evaluate MODEL --plots DIR`` produce.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no window, no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from nnscratch.activations import get_activation  # noqa: E402
from nnscratch.diagnostics import histograms  # noqa: E402
from nnscratch.io import atomic_write  # noqa: E402
from nnscratch.metrics import confusion_matrix  # noqa: E402
from nnscratch.network import Network  # noqa: E402

PathLike = str | os.PathLike[str]
COLOURS = plt.get_cmap("tab10").colors


def _save(fig: plt.Figure, path: PathLike) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def learning_curves(
    histories: Mapping[str, Mapping[str, Any]], path: PathLike, *, title: str = "Learning curves"
) -> Path:
    """Loss and accuracy per epoch, training (dashed) and validation (solid), one colour per run.

    ``histories`` maps a label to a History dict (``History.to_dict()``).
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (label, history) in enumerate(histories.items()):
        records = history["epochs"]
        epochs = [r["epoch"] for r in records]
        colour = COLOURS[i % len(COLOURS)]
        ax_loss.plot(epochs, [r["train_loss"] for r in records], "--", color=colour, alpha=0.7)
        ax_loss.plot(epochs, [r["val_loss"] for r in records], "-", color=colour, label=label)
        ax_acc.plot(epochs, [100 * r["train_accuracy"] for r in records], "--", color=colour, alpha=0.7)
        ax_acc.plot(epochs, [100 * r["val_accuracy"] for r in records], "-", color=colour, label=label)
    ax_loss.set(title="Cross-entropy loss", xlabel="epoch", ylabel="loss", yscale="log")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(title="solid: validation\ndashed: training", fontsize=9, title_fontsize=9, loc="center left",
                  bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title)
    return _save(fig, path)


def activation_functions(names: Sequence[str], path: PathLike) -> Path:
    """Each activation (solid) with its derivative (dashed) on z in [-5, 5]."""
    z = np.linspace(-5, 5, 401).reshape(1, -1)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        act = get_activation(name)
        if name == "softmax":  # a row of 5 logits where one varies: its probability and ∂a/∂z of itself
            Z = np.zeros((z.size, 5))
            Z[:, 0] = z[0]
            a = act.forward(Z)
            da = np.zeros_like(a)
            da[:, 0] = 1.0
            y, dy = a[:, 0], act.backward(Z, a, da)[:, 0]
            ax.set_xlabel("z₁ (other 4 logits at 0)")
        else:
            a = act.forward(z)
            y, dy = a[0], act.backward(z, a, np.ones_like(z))[0]
            ax.set_xlabel("z")
        ax.plot(z[0], y, label="f(z)", color=COLOURS[0], lw=2)
        ax.plot(z[0], dy, "--", label="f′(z)", color=COLOURS[1], lw=2)
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="upper left")
    fig.suptitle("Activations and their derivatives", y=1.04)
    return _save(fig, path)


def gradient_norms(norms: Mapping[str, Sequence[Sequence[float]]], path: PathLike) -> Path:
    """‖dW‖ of each layer per epoch (log scale), one panel per run; ``norms[label][epoch][layer]``."""
    n = len(norms)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.5 * rows), squeeze=False, sharey=True)
    for ax, (label, per_epoch) in zip(axes.flat, norms.items(), strict=False):
        values = np.asarray(per_epoch, dtype=float)
        for layer in range(values.shape[1]):
            ax.plot(np.arange(1, len(values) + 1), values[:, layer], marker="o", ms=3, label=f"layer {layer + 1}")
        ax.set(title=label, xlabel="epoch", ylabel="‖dW‖", yscale="log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Gradient norm per layer (on a fixed probe batch)")
    fig.tight_layout()
    return _save(fig, path)


def activation_histograms(layers: Sequence[Mapping[str, Any]], path: PathLike, *, title: str = "") -> Path:
    """One histogram per hidden layer, from ``diagnostics.histograms`` output."""
    n = len(layers)
    fig, axes = plt.subplots(1, max(n, 1), figsize=(3.4 * max(n, 1), 3), squeeze=False)
    for i, (ax, layer) in enumerate(zip(axes[0], layers, strict=False)):
        edges = np.asarray(layer["edges"])
        ax.bar(edges[:-1], layer["counts"], width=np.diff(edges), align="edge", color=COLOURS[i % 10], alpha=0.8)
        ax.set(title=f"layer {i + 1}: {layer['activation']}", xlabel="activation", ylabel="count" if i == 0 else "")
        ax.set_yscale("log")
    fig.suptitle(title or "Activation histograms per hidden layer")
    fig.tight_layout()
    return _save(fig, path)


def confusion(C: npt.ArrayLike, path: PathLike, *, title: str = "Confusion matrix") -> Path:
    """The confusion matrix, counts in each cell; rows true class, columns predicted."""
    C = np.asarray(C)
    k = C.shape[0]
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(np.log1p(C), cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(C[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if np.log1p(C[i, j]) > 0.6 * np.log1p(C).max() else "black",
            )
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted class", ylabel="true class", title=title)
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    return _save(fig, path)


def confident_mistakes(X: npt.ArrayLike, y: npt.ArrayLike, P: npt.ArrayLike, path: PathLike, *, n: int = 16) -> Path:
    """The n test digits the network got wrong with the highest confidence, with true and predicted labels."""
    X, y, P = np.asarray(X), np.asarray(y), np.asarray(P)
    predicted = P.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    order = wrong[np.argsort(-P[wrong, predicted[wrong]])][:n]
    cols = 8
    rows = max(1, (len(order) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    side = int(round(np.sqrt(X.shape[1])))
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order, strict=False):
        ax.imshow(X[i].reshape(side, side), cmap="gray_r")
        ax.set_title(f"true {y[i]} → {predicted[i]}\n{100 * P[i, predicted[i]]:.0f}% sure", fontsize=8)
    fig.suptitle(f"Most confidently wrong test digits ({len(wrong)} wrong of {len(y)})")
    fig.tight_layout()
    return _save(fig, path)


def first_layer_weights(W: npt.ArrayLike, path: PathLike, *, n: int = 64) -> Path:
    """The first n units' incoming weights W[:, j] shown as images (28×28 for MNIST)."""
    W = np.asarray(W)
    side = int(round(np.sqrt(W.shape[0])))
    n = min(n, W.shape[1])
    cols = min(n, 16)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols, 0.95 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for j, ax in zip(range(n), axes.flat, strict=False):
        w = W[:, j].reshape(side, side)
        limit = np.abs(w).max() or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.suptitle(f"First-layer weights of {n} units (red positive, blue negative)")
    return _save(fig, path)


def save_training_plots(
    net: Network, history: Any, X_test: npt.ArrayLike, y_test: npt.ArrayLike, directory: PathLike
) -> list[Path]:
    """The plots of one training run: learning curves and activations, then the evaluation set."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = history.to_dict() if hasattr(history, "to_dict") else history
    names = list(dict.fromkeys(layer.activation.name for layer in net.layers))
    paths = [
        learning_curves({net.spec: record}, directory / "learning_curves.png", title=f"Learning curves of {net.spec}"),
        activation_functions(names, directory / "activations.png"),
    ]
    return paths + save_evaluation_plots(net, X_test, y_test, directory)


def save_evaluation_plots(
    net: Network, X_test: npt.ArrayLike, y_test: npt.ArrayLike, directory: PathLike
) -> list[Path]:
    """Confusion matrix, confidently wrong digits, first-layer weights and activation histograms."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    X_test, y_test = np.asarray(X_test), np.asarray(y_test)
    P = net.predict_proba(X_test)
    probe = X_test[: min(2000, len(X_test))]
    paths = [
        confusion(confusion_matrix(y_test, P.argmax(axis=1), net.n_classes), directory / "confusion_matrix.png"),
        confident_mistakes(X_test, y_test, P, directory / "confident_mistakes.png"),
        first_layer_weights(net.layers[0].W, directory / "first_layer_weights.png"),
    ]
    if len(net.layers) > 1:
        paths.append(activation_histograms(histograms(net, probe), directory / "activation_histograms.png"))
    return paths
