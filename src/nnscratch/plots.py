"""Plots of training runs, activations and models, as matplotlib figures ready for a notebook.

Every plotting function draws the plain data it is given (histories, arrays, the dataclasses of
``nnscratch.plotdata``) and returns the ``matplotlib.figure.Figure``; none of them runs a network or
writes a file.  In Jupyter or IPython a figure shows itself, as the last value of a cell::

    from nnscratch import plots
    plots.learning_curves({"run": history})

:func:`save_png` writes a figure to a PNG file, atomically:
``plots.save_png(plots.learning_curves({"run": history}), "curves.png")``.  ``save_training_plots`` and
``save_evaluation_plots`` write the set of PNGs that ``nnscratch train --plots DIR`` and
``nnscratch evaluate MODEL --plots DIR`` produce, from what ``plotdata.measure`` measured.

Figures are drawn by the Agg canvas, never pyplot's: importing this module selects no backend and keeps
no registry of open figures, so a figure is freed once nothing refers to it.  Each one (made by
:func:`figure`) renders itself as a PNG for IPython's display, whether or not pyplot's inline backend is
loaded.

Legend: m = images, n = values per image, k = classes, kh×kw = a filter, C = channels, F = filters.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from nnscratch.activations import get_activation
from nnscratch.io import atomic_write
from nnscratch.metrics import confusion_matrix
from nnscratch.plotdata import FeatureMaps, Histogram, LayerProfile, ModelPlotData
from nnscratch.training import History

PathLike = str | os.PathLike[str]
# tab10 is a ListedColormap, whose colours are a list of 10 (r, g, b)
COLOURS: Sequence[Any] = cast(ListedColormap, matplotlib.colormaps["tab10"]).colors  # type: ignore[assignment]


def _png(fig: Figure) -> bytes:
    """``fig`` as the bytes of a PNG file (100 dpi, tight)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


class _NotebookFigure(Figure):
    """A Figure that IPython and Jupyter display as an image.

    IPython draws a plain Figure only through the formatter that pyplot's inline backend registers when
    pyplot is imported; a figure made without pyplot would show as its text ``<Figure size ...>``.
    Lacking a registered formatter, IPython calls ``_repr_png_``; with one (``%matplotlib inline``),
    that formatter is used and its settings hold.
    """

    def _repr_png_(self) -> bytes:
        return _png(self)  # the image save_png writes


def figure(**kwargs) -> Figure:
    """A matplotlib figure of its own (no pyplot, no global figure registry), with its Agg canvas.

    ``kwargs`` go to ``Figure``.  The figure displays itself as a PNG in Jupyter and IPython (it has a
    ``_repr_png_``), whether or not pyplot has been imported.
    """
    fig = _NotebookFigure(**kwargs)
    FigureCanvasAgg(fig)  # a renderer of its own: tight layouts measure text with it, and savefig draws with it
    return fig


def save_png(fig: Figure, path: PathLike) -> Path:
    """Write ``fig`` to ``path`` as a PNG (100 dpi, tight), atomically; returns the path.

    This is how a figure of this module becomes a file: ``save_png(learning_curves(...), path)``.
    """
    data = _png(fig)
    return atomic_write(path, lambda f: f.write(data))


def _integer_epochs(ax: Axes) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _plain_log_y(ax: Axes) -> None:
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


def picture(row: npt.ArrayLike, shape: Sequence[int]) -> npt.NDArray[np.floating]:
    """One flat row (n,) as a 2-D picture (H, W).

    ``shape`` is the input's: (n,) is drawn as :func:`image_shape` says, (H, W) as is, and (C, H, W)
    (channels-first, the order flat rows are read in) as its one channel or the mean of its channels.
    """
    row = np.asarray(row, dtype=np.float64)
    if len(shape) == 1:
        return row.reshape(image_shape(row.size))
    if len(shape) == 2:
        return row.reshape(shape)
    return row.reshape(shape).mean(axis=0)


def _grid(n: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(n, cols))
    return max(1, math.ceil(n / cols)), cols


def learning_curves(histories: Mapping[str, History], *, title: str = "Learning curves") -> Figure:
    """Loss, accuracy and error rate per epoch, training (dashed) and validation (solid), one colour per run.

    ``histories`` maps a label to a run's History.  The error-rate panel is on a log scale, so runs
    that all sit above 95% accuracy are still told apart.  Returns the figure; save it with :func:`save_png`.
    """
    fig = figure(figsize=(15, 4.2))
    ax_loss, ax_acc, ax_err = fig.subplots(1, 3)
    has_val = False
    for i, (label, history) in enumerate(histories.items()):
        records = history.epochs
        epochs = [r.epoch for r in records]
        colour = COLOURS[i % len(COLOURS)]
        has_val = any(math.isfinite(r.val_loss) for r in records)  # False when nothing was held out
        curves = (("train", "--", 0.7, None if has_val else label), ("val", "-", 1.0, label if has_val else None))
        for key, style, alpha, name in curves:
            accuracy = 100 * np.array([getattr(r, f"{key}_accuracy") for r in records], dtype=float)
            error = 100 - accuracy
            error[error <= 0] = np.nan  # a perfect epoch has no place on a log axis
            losses = [getattr(r, f"{key}_loss") for r in records]
            ax_loss.plot(epochs, losses, style, color=colour, alpha=alpha, label=name)
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
    return fig


def activation_functions(names: Sequence[str]) -> Figure:
    """Each activation (solid) with its derivative (dashed) on z in [-5, 5].

    The derivative is the activation's own ``backward`` with da = 1, so the plot shows what the code
    computes.  Softmax mixes a row's units: its panel varies z₁ with four other logits at 0 and shows
    a₁ and ∂a₁/∂z₁ = a₁(1 − a₁).  Returns the figure; save it with :func:`save_png`.
    """
    z = np.linspace(-5, 5, 401).reshape(1, -1)
    fig = figure(figsize=(3.3 * len(names), 3.4))
    axes = fig.subplots(1, len(names), squeeze=False)
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
    return fig


def gradient_norms(norms: Mapping[str, Sequence[Sequence[float]]], *, layer_names: Sequence[str] = ()) -> Figure:
    """‖dW‖ of each layer with weights per epoch (log scale), one panel per run; ``norms[label][epoch][layer]``.

    ``layer_names`` labels the layers in the legend; without them they are numbered, the output layer last.
    Returns the figure; save it with :func:`save_png`.
    """
    n = len(norms)
    rows, cols = _grid(n, 3)
    fig = figure(figsize=(4.5 * cols, 3.3 * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    handles: list[Any] = []
    labels: list[str] = []
    for ax, (label, per_epoch) in zip(axes.flat, norms.items(), strict=False):
        values = np.asarray(per_epoch, dtype=float)
        if values.size == 0:  # a run that diverged before its first epoch ended
            ax.set_title(f"{label} (no finished epoch)")
            continue
        n_layers = values.shape[1]
        for layer in range(n_layers):
            if layer < len(layer_names):
                name = layer_names[layer]
            else:
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
    return fig


def activation_histograms(layers: Sequence[Histogram], *, title: str = "") -> Figure:
    """One histogram per hidden layer (log counts), its title, mean and std, and ‖dW‖ where it has one.

    Returns the figure; save it with :func:`save_png`.
    """
    n = max(len(layers), 1)
    rows, cols = _grid(n, 5)
    fig = figure(figsize=(3.4 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(layers) :]:
        ax.axis("off")
    for i, (ax, layer) in enumerate(zip(axes.flat, layers, strict=False)):
        edges = np.asarray(layer.edges)
        ax.bar(edges[:-1], layer.counts, width=np.diff(edges), align="edge", color=COLOURS[i % 10], alpha=0.8)
        heading = f"{layer.title}\nmean {layer.mean:.2f}, std {layer.std:.2f}"
        if layer.grad_norm is not None:
            heading += f"\n‖dW‖ of layer {layer.grad_layer}: {layer.grad_norm:.3g}"
        ax.set(title=heading, xlabel="activation", ylabel="count (log scale)" if i % cols == 0 else "")
        ax.title.set_fontsize(10)
        ax.set_yscale("log")
        _plain_log_y(ax)
        ax.grid(alpha=0.3)
    fig.suptitle(title or "Activation histograms per hidden layer")
    fig.tight_layout()
    return fig


def _shared(names: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The tick labels every profile agrees on, or () when they differ or are missing."""
    return names[0] if names and all(n == names[0] for n in names) else ()


def layer_profiles(profiles: Mapping[str, LayerProfile], *, title: str = "") -> Figure:
    """Per layer: the mean and std of the hidden activations, and ‖dW‖ (log), one line per run.

    A profile's hidden and weight names label the x axes when every profile has the same ones.
    Returns the figure; save it with :func:`save_png`.
    """
    fig = figure(figsize=(14, 3.8))
    ax_mean, ax_std, ax_grad = fig.subplots(1, 3)
    for i, (label, p) in enumerate(profiles.items()):
        style = dict(color=COLOURS[i % len(COLOURS)], marker="o", label=label)
        hidden = np.arange(1, len(p.activation_mean) + 1)
        ax_mean.plot(hidden, np.array(p.activation_mean, dtype=float), **style)
        ax_std.plot(hidden, np.array(p.activation_std, dtype=float), **style)
        ax_grad.plot(np.arange(1, len(p.grad_norm) + 1), p.grad_norm, **style)
    ax_mean.axhline(0, color="grey", lw=0.8)
    ax_std.axhline(1, color="grey", lw=0.8, ls=":")
    ax_mean.set(title="Mean activation", xlabel="hidden layer", ylabel="mean")
    ax_std.set(title="Std of activations (dotted: 1)", xlabel="hidden layer", ylabel="std")
    ax_grad.set(title="Gradient norm ‖dW‖", xlabel="layer (last: output)", ylabel="‖dW‖ (log scale)", yscale="log")
    for ax in (ax_mean, ax_std, ax_grad):
        ax.grid(alpha=0.3)
        _integer_epochs(ax)
    _plain_log_y(ax_grad)
    hidden_names = _shared([p.hidden_names for p in profiles.values()])
    weight_names = _shared([p.weight_names for p in profiles.values()])
    for ax, names in ((ax_mean, hidden_names), (ax_std, hidden_names), (ax_grad, weight_names)):
        if names:
            ax.set_xticks(range(1, len(names) + 1), [name.replace(" ", "\n", 1) for name in names], fontsize=8)
    if len(profiles) > 1:
        fig.legend(*ax_mean.get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9)
    fig.suptitle(title or "Activation statistics and gradient norm per layer")
    fig.tight_layout()
    return fig


def confusion(C: npt.ArrayLike, *, title: str = "Confusion matrix") -> Figure:
    """The confusion matrix, counts in each cell; rows true class, columns predicted.

    Returns the figure; save it with :func:`save_png`.
    """
    C = np.asarray(C)
    k = C.shape[0]
    total = C.sum()
    heading = f"{title}: {100 * np.trace(C) / total:.2f}% correct" if total else title
    fig = figure(figsize=(0.55 * k + 1.5, 0.5 * k + 1))
    ax = fig.subplots()
    shade = np.log1p(C)
    image = ax.imshow(shade, cmap="Blues")
    for i in range(k):
        for j in range(k):
            colour = "white" if shade[i, j] > 0.6 * shade.max() else "black"
            ax.text(j, i, str(C[i, j]), ha="center", va="center", fontsize=8, color=colour)
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted class", ylabel="true class", title=heading)
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    return fig


def reliability_diagram(Z: npt.ArrayLike, y: npt.ArrayLike, temperature: float) -> Figure:
    """Accuracy against confidence in 15 equal-width bins, before and after temperature scaling, with the
    expected calibration error of each; a calibrated network's points lie on the diagonal.  The bars below
    count the test images in each bin (after scaling), on a log scale.

    Returns the figure; save it with :func:`save_png`.
    """
    from nnscratch.calibration import expected_calibration_error, reliability
    from nnscratch.losses import softmax

    Z = np.asarray(Z, dtype=np.float64)
    fig = figure(figsize=(6.0, 6.5))
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    top.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="calibrated")
    scaled = {"as trained": 1.0, f"temperature {temperature:.3f}": temperature}
    if temperature == 1.0:
        scaled = {"as trained": 1.0}
    for (name, T), marker in zip(scaled.items(), "os", strict=False):
        P = softmax(Z / T)
        table = reliability(P, y)
        used = table["count"] > 0
        ece = expected_calibration_error(P, y)
        top.plot(
            table["confidence"][used], table["accuracy"][used], marker=marker, label=f"{name}: ECE {100 * ece:.2f}%"
        )
    edges = table["edges"]
    bottom.bar(edges[:-1], np.maximum(table["count"], 0.5), width=np.diff(edges), align="edge", color="0.7", log=True)
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02), title="Reliability on the test set (15 bins)")
    top.legend(loc="upper left")
    bottom.set(xlabel="confidence (top probability)", ylabel="images")
    fig.tight_layout()
    return fig


def attribution(pixels: npt.ArrayLike, values: npt.ArrayLike, *, title: str = "", shape: Sequence[int] = ()) -> Figure:
    """The digit the network saw beside its attribution map, on a diverging colour map centred on zero
    (red: the pixel raises the explained logit, blue: lowers it).

    Returns the figure; save it with :func:`save_png`.
    """
    pixels, values = np.asarray(pixels, dtype=np.float64), np.asarray(values, dtype=np.float64)
    shape = tuple(shape) or (pixels.size,)
    fig = figure(figsize=(7.0, 3.4))
    seen, explained = fig.subplots(1, 2)
    seen.imshow(picture(pixels.reshape(-1), shape), cmap="gray_r", vmin=0, vmax=1)
    seen.set_title("what the network saw")
    reach = float(np.abs(values).max()) or 1.0
    image = explained.imshow(picture(values.reshape(-1), shape), cmap="RdBu_r", vmin=-reach, vmax=reach)
    explained.set_title("attribution")
    for ax in (seen, explained):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=explained, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def attacked_digits(
    X: npt.ArrayLike, attacked: npt.ArrayLike, y: npt.ArrayLike, said: npt.ArrayLike, *, title: str = ""
) -> Figure:
    """Each digit above its attacked copy, with its label and what the network reads in the copy (red when
    the attack changed the answer).

    Returns the figure; save it with :func:`save_png`.
    """
    X, attacked, y, said = np.asarray(X), np.asarray(attacked), np.asarray(y), np.asarray(said)
    n = len(X)
    cols = min(8, max(n, 1))
    rows = math.ceil(n / cols)
    fig = figure(figsize=(1.5 * cols, 3.2 * rows + 0.4))
    axes = fig.subplots(2 * rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        top, bottom = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        top.imshow(picture(X[i], (X.shape[1],)), cmap="gray_r", vmin=0, vmax=1)
        top.set_title(f"a {y[i]}", fontsize=9)
        bottom.imshow(picture(attacked[i], (X.shape[1],)), cmap="gray_r", vmin=0, vmax=1)
        bottom.set_title(f"read as {said[i]}", fontsize=9, color="red" if said[i] != y[i] else "black")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def robustness(results: Sequence[Mapping], *, method: str, steps: int) -> Figure:
    """Test accuracy against ε, one curve per model (ε = 0 is the clean accuracy): ``results`` as
    ``nnscratch attack --json`` lists them.

    Returns the figure; save it with :func:`save_png`.
    """
    fig = figure(figsize=(7.0, 4.5))
    ax = fig.subplots()
    for result in results:
        epsilons = [0.0] + [row["epsilon"] for row in result["attacked"]]
        accuracies = [result["clean_accuracy"]] + [row["accuracy"] for row in result["attacked"]]
        order = np.argsort(epsilons, kind="stable")
        ax.plot(
            np.array(epsilons)[order], 100 * np.array(accuracies)[order], marker="o", label=Path(result["model"]).name
        )
    attack = method.upper() + (f", {steps} steps" if method == "pgd" else "")
    ax.set(xlabel="ε (the largest change of a pixel)", ylabel="test accuracy (%)", ylim=(0, 100.5))
    ax.set_title(f"Accuracy under {attack}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def confident_mistakes(
    X: npt.ArrayLike, y: npt.ArrayLike, P: npt.ArrayLike, *, shape: Sequence[int] = (), n: int = 16
) -> Figure:
    """The n images of X (m, n) the network got most confidently wrong, with true and predicted labels.

    ``P`` (m, k) holds the probabilities (at least each row's largest); ``shape`` is the input's
    shape, (n,) when not given (see :func:`picture`).  Returns the figure; save it with :func:`save_png`.
    """
    X, y, P = np.asarray(X), np.asarray(y), np.asarray(P)
    shape = tuple(shape) or (X.shape[1],)
    predicted = P.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    order = wrong[np.argsort(-P[wrong, predicted[wrong]], kind="stable")][:n]
    rows, cols = max(1, math.ceil(len(order) / 8)), 8
    fig = figure(figsize=(1.5 * cols, 2.0 * rows + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order, strict=False):
        ax.imshow(picture(X[i], shape), cmap="gray_r")
        ax.set_title(f"true {y[i]}, said {predicted[i]}\n{100 * P[i, predicted[i]]:.1f}% sure", fontsize=9)
    fig.suptitle(f"The most confidently wrong test images ({len(wrong)} wrong of {len(y)})")
    fig.tight_layout()
    return fig


def _signed_tiles(fig: Figure, tiles: Sequence[tuple[str, npt.NDArray]], rows: int, cols: int) -> None:
    """Draw each (title, 2-D array) on its own symmetric red–blue scale, so a filter's pattern shows
    whatever its size."""
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, w) in zip(axes.flat, tiles, strict=False):
        limit = np.abs(w).max() or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(name, fontsize=7, pad=2)


def first_layer_weights(W: npt.ArrayLike, *, shape: Sequence[int] = (), n: int = 32) -> Figure:
    """The first n units' incoming weights W[:, j] (W is (n_in, units)) as images of the input's ``shape``
    (28×28 for MNIST; see :func:`picture`).

    Returns the figure; save it with :func:`save_png`.
    """
    W = np.asarray(W)
    shape = tuple(shape) or (W.shape[0],)
    n = min(n, W.shape[1])
    tiles = [(f"unit {j + 1}", picture(W[:, j], shape)) for j in range(n)]
    size = tiles[0][1].shape if tiles else (1, 1)
    rows, cols = _grid(n, 8)
    tile = 1.1 / max(size)  # inches per pixel row or column
    fig = figure(figsize=(tile * size[1] * cols, (tile * size[0] + 0.2) * rows + 0.4), layout="constrained")
    _signed_tiles(fig, tiles, rows, cols)
    fig.suptitle(f"First-layer weights of {n} units, one image per unit (red positive, blue negative)", fontsize=10)
    return fig


def conv_filters(W: npt.ArrayLike, *, title: str = "", max_tiles: int = 64) -> Figure:
    """A convolution's filters W (kh, kw, C, F) as kh×kw images: W[:, :, c, f], one per filter and channel.

    Whole filters are drawn while they fit in ``max_tiles`` images, each image on its own scale, red
    positive, blue negative.  Returns the figure; save it with :func:`save_png`.
    """
    W = np.asarray(W)
    kh, kw, C, F = W.shape
    shown = max(1, min(F, max_tiles // C))
    tiles = [
        (f"filter {f + 1}" if C == 1 else f"f{f + 1} c{c + 1}", W[:, :, c, f]) for f in range(shown) for c in range(C)
    ]
    rows, cols = _grid(len(tiles), 8 if C == 1 else C * max(1, 8 // C))
    fig = figure(figsize=(1.0 * cols, 1.15 * rows + 0.5), layout="constrained")
    _signed_tiles(fig, tiles, rows, cols)
    heading = title or f"First-layer filters: {F} of {kh}×{kw}" + (f" on {C} channels" if C > 1 else "")
    more = "" if shown == F else f", the first {shown} shown"
    fig.suptitle(f"{heading}{more}\n(red positive, blue negative, each on its own scale)", fontsize=10)
    return fig


def feature_maps(
    image: npt.ArrayLike,
    layers: Sequence[FeatureMaps],
    *,
    shape: Sequence[int] = (),
    title: str = "Feature maps",
    max_maps: int = 32,
) -> Figure:
    """One image (n,) and what each layer made of it: per layer, up to ``max_maps`` maps (C, H, W) of
    ``layers``, one small image per channel, titled with the layer's token and output shape.

    Each map has its own colour scale, so the pattern shows whatever its size: red–blue around 0 for
    a layer with negative outputs (a convolution before its activation), dark to bright for one without.
    Returns the figure; save it with :func:`save_png`.
    """
    image = np.asarray(image)
    shape = tuple(shape) or (image.size,)
    cols = 16
    sizes = [math.ceil(min(len(layer.maps), max_maps) / cols) for layer in layers]
    tile = 0.72
    heights = [1.6, *(tile * r + 0.45 for r in sizes)]
    fig = figure(figsize=(tile * cols, sum(heights)), layout="constrained")
    parts = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    ax = parts[0].subplots()
    ax.imshow(picture(image, shape), cmap="gray_r")
    ax.set_title(f"the input, {'x'.join(map(str, shape))}", fontsize=9)
    ax.axis("off")
    for part, layer, rows in zip(parts[1:], layers, sizes, strict=True):
        maps = np.asarray(layer.maps, dtype=np.float64)
        signed = maps.min() < 0
        axes = part.subplots(rows, cols, squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, A in zip(axes.flat, maps[:max_maps], strict=False):
            limit = np.abs(A).max() or 1.0
            if signed:
                ax.imshow(A, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
            else:
                ax.imshow(A, cmap="magma", vmin=0.0, vmax=limit, interpolation="nearest")
        more = f" (the first {max_maps} of {len(maps)} channels)" if len(maps) > max_maps else ""
        part.suptitle(f"{layer.title}{more}", fontsize=10)
    fig.suptitle(title, fontsize=11)
    return fig


def augmented_examples(originals: npt.ArrayLike, variants: npt.ArrayLike, *, title: str = "") -> Figure:
    """Each original image (n, H, W) in the first column, its augmented variants (n, k, H, W) beside it.

    Returns the figure; save it with :func:`save_png`.
    """
    originals, variants = np.asarray(originals), np.asarray(variants)
    n, k = variants.shape[:2]
    fig = figure(figsize=(1.1 * (k + 1), 1.15 * n + 0.5))
    axes = fig.subplots(n, k + 1, squeeze=False)
    for i in range(n):
        for j, image in enumerate([originals[i], *variants[i]]):
            ax = axes[i, j]
            ax.imshow(image, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("original" if j == 0 else f"variant {j}", fontsize=8)
    fig.suptitle(title or "Training images and augmented variants of them", fontsize=10)
    fig.tight_layout()
    return fig


def _make_directory(directory: PathLike) -> Path:
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(20, "exists and is not a directory; choose another plots directory", str(directory))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def save_training_plots(data: ModelPlotData, history: History, directory: PathLike) -> list[Path]:
    """The plots of one training run: learning curves from ``history``, every activation the network
    uses with its derivative, then those of :func:`save_evaluation_plots`.

    Creates ``directory`` if needed; raises OSError if it cannot be written.
    """
    directory = _make_directory(directory)
    paths = [
        save_png(
            learning_curves({data.spec: history}, title=f"Learning curves of {data.spec}"),
            directory / "learning_curves.png",
        ),
        save_png(activation_functions(data.activations), directory / "activations.png"),
    ]
    return paths + save_evaluation_plots(data, directory)


def save_evaluation_plots(data: ModelPlotData, directory: PathLike) -> list[Path]:
    """The plots of one model on the test images: confusion matrix, confidently wrong digits, the reliability
    diagram (before and after the model's temperature), the first
    layer (a dense layer's weights as images, or a convolution's filters), a digit's feature maps (a
    network with convolution or pooling layers) and activation histograms with each layer's mean, std
    and gradient norm ‖dW‖.  Creates ``directory`` if needed; raises OSError if it cannot be written."""
    directory = _make_directory(directory)
    k = data.P.shape[1]
    paths = [
        save_png(confusion(confusion_matrix(data.y, data.P.argmax(axis=1), k)), directory / "confusion_matrix.png"),
        save_png(
            confident_mistakes(data.X, data.y, data.P, shape=data.input_shape), directory / "confident_mistakes.png"
        ),
    ]
    if data.Z is not None and len(data.y):
        paths.append(save_png(reliability_diagram(data.Z, data.y, data.temperature), directory / "reliability.png"))
    if data.first_layer_weights is not None:
        paths.append(
            save_png(
                first_layer_weights(data.first_layer_weights, shape=data.input_shape),
                directory / "first_layer_weights.png",
            )
        )
    if data.filters is not None:
        paths.append(save_png(conv_filters(data.filters), directory / "first_layer_filters.png"))
    if data.feature_maps:
        digit = data.digit
        said = int(data.P[digit].argmax())
        title = f"Feature maps of test image {digit} (a {data.y[digit]}, read as {said}) in {data.spec}"
        paths.append(
            save_png(
                feature_maps(data.X[digit], data.feature_maps, shape=data.input_shape, title=title),
                directory / "feature_maps.png",
            )
        )
    if data.histograms:
        title = f"Activation histograms of {data.spec} on {data.probe:,} test images (‖dW‖: gradient norm)"
        paths.append(
            save_png(activation_histograms(data.histograms, title=title), directory / "activation_histograms.png")
        )
    return paths
