"""Plots of training runs, activations and models, written as PNG files with matplotlib.

Every function takes plain data (histories as dicts, arrays) plus an output path, writes one PNG
atomically and returns its path.  ``save_training_plots`` and ``save_evaluation_plots`` write the set
that ``nnscratch train --plots DIR`` and ``nnscratch evaluate MODEL --plots DIR`` produce.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no window, no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator  # noqa: E402

from nnscratch.activations import get_activation  # noqa: E402
from nnscratch.diagnostics import gradient_norms as layer_gradient_norms  # noqa: E402
from nnscratch.diagnostics import histograms  # noqa: E402
from nnscratch.io import atomic_write  # noqa: E402
from nnscratch.metrics import confusion_matrix  # noqa: E402
from nnscratch.network import Network  # noqa: E402

PathLike = str | os.PathLike[str]
COLOURS = plt.get_cmap("tab10").colors
PROBE = 2000  # test images the per-layer plots of one model are computed on


def _save(fig: plt.Figure, path: PathLike) -> Path:
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def _integer_epochs(ax: plt.Axes) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _plain_log_y(ax: plt.Axes) -> None:
    """Label a log-scaled y axis with plain numbers (0.1, 1, 10), and at 2 and 5 times each power of ten
    too when the axis spans less than a factor of 30 (a wider one would be crowded)."""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))

    def minor(value: float, _) -> str:
        low, high = ax.get_ylim()
        return f"{value:g}" if 0 < low and high / low < 30 else ""

    ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))
    ax.tick_params(axis="y", which="minor", labelsize=8)


def image_shape(n_features: int) -> tuple[int, int]:
    """How to show n features as an image: square when n is a square (28×28 for MNIST), otherwise the
    most nearly square rows × columns that hold them exactly (1 × n for a prime n)."""
    rows = max(d for d in range(1, math.isqrt(n_features) + 1) if n_features % d == 0)
    return rows, n_features // rows


def learning_curves(
    histories: Mapping[str, Mapping[str, Any]], path: PathLike, *, title: str = "Learning curves"
) -> Path:
    """Loss, accuracy and error rate per epoch, training (dashed) and validation (solid), one colour per run.

    ``histories`` maps a label to a History dict (``History.to_dict()``).  The error-rate panel is on a
    log scale, so runs that all sit above 95% accuracy are still told apart.
    """
    fig, (ax_loss, ax_acc, ax_err) = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (label, history) in enumerate(histories.items()):
        records = history["epochs"]
        epochs = [r["epoch"] for r in records]
        colour = COLOURS[i % len(COLOURS)]
        has_val = any(math.isfinite(r["val_loss"]) for r in records)  # False when nothing was held out
        curves = (("train", "--", 0.7, None if has_val else label), ("val", "-", 1.0, label if has_val else None))
        for key, style, alpha, name in curves:
            accuracy = 100 * np.array([r[f"{key}_accuracy"] for r in records], dtype=float)
            error = 100 - accuracy
            error[error <= 0] = np.nan  # a perfect epoch has no place on a log axis
            ax_loss.plot(epochs, [r[f"{key}_loss"] for r in records], style, color=colour, alpha=alpha, label=name)
            ax_acc.plot(epochs, accuracy, style, color=colour, alpha=alpha)
            ax_err.plot(epochs, error, style, color=colour, alpha=alpha)
    ax_loss.set(title="Cross-entropy loss", xlabel="epoch", ylabel="loss (log scale)", yscale="log")
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    ax_err.set(title="Error rate (lower is better)", xlabel="epoch", ylabel="error (%, log scale)", yscale="log")
    for ax in (ax_loss, ax_acc, ax_err):
        ax.grid(alpha=0.3, which="both")
        _integer_epochs(ax)
    _plain_log_y(ax_loss)
    _plain_log_y(ax_err)
    if len(histories) == 1:  # one run: its name is in the title; the legend only says which line is which
        train_line, val_line = ax_acc.get_lines()
        if has_val:
            ax_acc.legend([val_line, train_line], ["validation", "training"], fontsize=9)
        else:
            ax_acc.legend([train_line], ["training"], fontsize=9)
    else:
        fig.legend(
            *ax_loss.get_legend_handles_labels(),
            title="solid: validation\ndashed: training",
            fontsize=9,
            title_fontsize=9,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
        )
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def activation_functions(names: Sequence[str], path: PathLike) -> Path:
    """Each activation (solid) with its derivative (dashed) on z in [-5, 5].

    The derivative is the activation's own ``backward`` with da = 1, so the plot shows what the code
    computes.  Softmax mixes a row's units: its panel varies z₁ with four other logits at 0 and shows
    a₁ and ∂a₁/∂z₁ = a₁(1 − a₁).
    """
    z = np.linspace(-5, 5, 401).reshape(1, -1)
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        act = get_activation(name)
        if name == "softmax":
            Z = np.zeros((z.size, 5))
            Z[:, 0] = z[0]
            a = act.forward(Z)
            da = np.zeros_like(a)
            da[:, 0] = 1.0
            y, dy = a[:, 0], act.backward(Z, a, da)[:, 0]
            ax.set_xlabel("z₁ (the other 4 logits at 0)")
            ax.set_title("softmax (a₁ and ∂a₁/∂z₁)")
        else:
            a = act.forward(z)
            y, dy = a[0], act.backward(z, a, np.ones_like(z))[0]
            ax.set_xlabel("z")
            ax.set_title(name)
        ax.plot(z[0], y, label="f(z)", color=COLOURS[0], lw=2)
        ax.plot(z[0], dy, "--", label="f′(z)", color=COLOURS[1], lw=2)
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="upper left")
    fig.suptitle("Activations (solid) and their derivatives (dashed)")
    fig.tight_layout()
    return _save(fig, path)


def gradient_norms(norms: Mapping[str, Sequence[Sequence[float]]], path: PathLike) -> Path:
    """‖dW‖ of each layer per epoch (log scale), one panel per run; ``norms[label][epoch][layer]``.

    The last layer is the softmax output layer.
    """
    n = len(norms)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.3 * rows), squeeze=False, sharey=True)
    handles, labels = [], []
    for ax, (label, per_epoch) in zip(axes.flat, norms.items(), strict=False):
        values = np.asarray(per_epoch, dtype=float)
        if values.size == 0:  # a run that diverged before its first epoch ended
            ax.set_title(f"{label} (no finished epoch)")
            continue
        n_layers = values.shape[1]
        for layer in range(n_layers):
            name = f"layer {layer + 1}" + (" (output)" if layer == n_layers - 1 else "")
            ax.plot(np.arange(1, len(values) + 1), values[:, layer], marker="o", ms=3, label=name)
        ax.set(title=label, xlabel="epoch", ylabel="‖dW‖ (log scale)", yscale="log")
        ax.grid(alpha=0.3)
        _integer_epochs(ax)
        if len(ax.get_legend_handles_labels()[1]) > len(labels):
            handles, labels = ax.get_legend_handles_labels()
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Gradient norm of each layer's weights, after each epoch, on a fixed probe batch")
    fig.tight_layout()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9)
    return _save(fig, path)


def activation_histograms(layers: Sequence[Mapping[str, Any]], path: PathLike, *, title: str = "") -> Path:
    """One histogram per hidden layer (log counts), from ``diagnostics.histograms`` output.

    A layer's mean and std, and its ``grad_norm`` ‖dW‖ if the dict holds one, go in its panel's title.
    """
    n = max(len(layers), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.2), squeeze=False)
    for i, (ax, layer) in enumerate(zip(axes[0], layers, strict=False)):
        edges = np.asarray(layer["edges"])
        ax.bar(edges[:-1], layer["counts"], width=np.diff(edges), align="edge", color=COLOURS[i % 10], alpha=0.8)
        heading = f"layer {i + 1}: {layer['activation']}"
        if "mean" in layer:
            heading += f"\nmean {layer['mean']:.2f}, std {layer['std']:.2f}"
        if "grad_norm" in layer:
            heading += f"\n‖dW‖ {layer['grad_norm']:.3g}"
        ax.set(title=heading, xlabel="activation", ylabel="count (log scale)" if i == 0 else "")
        ax.set_yscale("log")
        _plain_log_y(ax)
        ax.grid(alpha=0.3)
    fig.suptitle(title or "Activation histograms per hidden layer")
    fig.tight_layout()
    return _save(fig, path)


def layer_profiles(profiles: Mapping[str, Mapping[str, Sequence[float]]], path: PathLike, *, title: str = "") -> Path:
    """Per layer: the mean and std of the hidden activations, and ‖dW‖ (log), one line per run.

    ``profiles[label]`` holds ``activation_mean`` and ``activation_std`` (one value per hidden layer)
    and ``grad_norm`` (one per layer, the output layer last); optionally ``activations``, the hidden
    layers' activation names, which label the layers when there is a single profile.
    """
    fig, (ax_mean, ax_std, ax_grad) = plt.subplots(1, 3, figsize=(14, 3.8))
    for i, (label, p) in enumerate(profiles.items()):
        style = dict(color=COLOURS[i % len(COLOURS)], marker="o", label=label)
        hidden = np.arange(1, len(p["activation_mean"]) + 1)
        ax_mean.plot(hidden, p["activation_mean"], **style)
        ax_std.plot(hidden, p["activation_std"], **style)
        ax_grad.plot(np.arange(1, len(p["grad_norm"]) + 1), p["grad_norm"], **style)
    ax_mean.axhline(0, color="grey", lw=0.8)
    ax_std.axhline(1, color="grey", lw=0.8, ls=":")
    ax_mean.set(title="Mean activation", xlabel="hidden layer", ylabel="mean")
    ax_std.set(title="Std of activations (dotted: 1)", xlabel="hidden layer", ylabel="std")
    ax_grad.set(title="Gradient norm ‖dW‖", xlabel="layer (last: output)", ylabel="‖dW‖ (log scale)", yscale="log")
    for ax in (ax_mean, ax_std, ax_grad):
        ax.grid(alpha=0.3)
        _integer_epochs(ax)
    _plain_log_y(ax_grad)
    if len(profiles) == 1:
        (only,) = profiles.values()
        names = list(only.get("activations", []))
        if names:
            for ax, layers in ((ax_mean, names), (ax_std, names), (ax_grad, [*names, "output"])):
                ax.set_xticks(range(1, len(layers) + 1), [f"{i}\n{a}" for i, a in enumerate(layers, 1)])
    else:
        fig.legend(*ax_mean.get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9)
    fig.suptitle(title or "Activation statistics and gradient norm per layer")
    fig.tight_layout()
    return _save(fig, path)


def confusion(C: npt.ArrayLike, path: PathLike, *, title: str = "Confusion matrix") -> Path:
    """The confusion matrix, counts in each cell; rows true class, columns predicted."""
    C = np.asarray(C)
    k = C.shape[0]
    total = C.sum()
    heading = f"{title}: {100 * np.trace(C) / total:.2f}% correct" if total else title
    fig, ax = plt.subplots(figsize=(0.55 * k + 1.5, 0.5 * k + 1))
    shade = np.log1p(C)
    image = ax.imshow(shade, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(C[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if shade[i, j] > 0.6 * shade.max() else "black",
            )
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted class", ylabel="true class", title=heading)
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    return _save(fig, path)


def confident_mistakes(X: npt.ArrayLike, y: npt.ArrayLike, P: npt.ArrayLike, path: PathLike, *, n: int = 16) -> Path:
    """The n test digits the network got wrong with the highest confidence, with true and predicted labels."""
    X, y, P = np.asarray(X), np.asarray(y), np.asarray(P)
    predicted = P.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    order = wrong[np.argsort(-P[wrong, predicted[wrong]], kind="stable")][:n]
    cols = 8
    rows = max(1, (len(order) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 2.0 * rows + 0.4), squeeze=False)
    shape = image_shape(X.shape[1])
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order, strict=False):
        ax.imshow(X[i].reshape(shape), cmap="gray_r")
        ax.set_title(f"true {y[i]}, said {predicted[i]}\n{100 * P[i, predicted[i]]:.1f}% sure", fontsize=9)
    fig.suptitle(f"The most confidently wrong test images ({len(wrong)} wrong of {len(y)})")
    fig.tight_layout()
    return _save(fig, path)


def first_layer_weights(W: npt.ArrayLike, path: PathLike, *, n: int = 32) -> Path:
    """The first n units' incoming weights W[:, j] shown as images (28×28 for MNIST)."""
    W = np.asarray(W)
    shape = image_shape(W.shape[0])
    n = min(n, W.shape[1])
    cols = min(n, 8)
    rows = (n + cols - 1) // cols
    tile = 1.1 / max(shape)  # inches per pixel row or column
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(tile * shape[1] * cols, (tile * shape[0] + 0.2) * rows + 0.4),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.axis("off")
    for j, ax in zip(range(n), axes.flat, strict=False):
        w = W[:, j].reshape(shape)
        limit = np.abs(w).max() or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"unit {j + 1}", fontsize=7, pad=2)
    fig.suptitle(f"First-layer weights of {n} units, one image per unit (red positive, blue negative)", fontsize=10)
    return _save(fig, path)


def _make_directory(directory: PathLike) -> Path:
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(20, "exists and is not a directory; choose another plots directory", str(directory))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def save_training_plots(
    net: Network, history: Any, X_test: npt.ArrayLike, y_test: npt.ArrayLike, directory: PathLike
) -> list[Path]:
    """The plots of one training run, then those of :func:`save_evaluation_plots`.

    Learning curves from ``history`` (a History or its dict) and every activation the network uses
    with its derivative.  Creates ``directory`` if needed; raises OSError if it cannot be written.
    """
    directory = _make_directory(directory)
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
    """Confusion matrix, confidently wrong digits, first-layer weights and, for a network with hidden
    layers, activation histograms with each layer's activation mean/std and gradient norm ‖dW‖ on up to
    2,000 test images.  Creates ``directory`` if needed; raises OSError if it cannot be written."""
    directory = _make_directory(directory)
    X_test = net.check_input(X_test)
    y_test = net.check_labels(y_test, X_test.shape[0])
    P = net.predict_proba(X_test)
    paths = [
        confusion(confusion_matrix(y_test, P.argmax(axis=1), net.n_classes), directory / "confusion_matrix.png"),
        confident_mistakes(X_test, y_test, P, directory / "confident_mistakes.png"),
        first_layer_weights(net.layers[0].W, directory / "first_layer_weights.png"),
    ]
    X_probe, y_probe = X_test[:PROBE], y_test[:PROBE]
    if len(net.layers) > 1 and len(X_probe):
        layers = histograms(net, X_probe)
        for layer, norm in zip(layers, layer_gradient_norms(net, X_probe, y_probe), strict=False):
            layer["grad_norm"] = norm
        title = f"Activation histograms of {net.spec} on {len(X_probe):,} test images (‖dW‖: gradient norm)"
        paths.append(activation_histograms(layers, directory / "activation_histograms.png", title=title))
    return paths
