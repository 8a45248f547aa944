"""What the plots of a model show, measured from the network and handed over as plain arrays.

``nnscratch.plots`` draws and never runs a network; this module runs it (probabilities, layer outputs,
gradients) and returns only numbers, in the frozen dataclasses below.  The activation study stores
some of them in its cache.

Legend: m = test images, n = values per image, k = classes, C×H×W = an image or a feature map.
Images given as flat rows (m, n) are in the order ``Network.check_input`` reads them: channels-first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nnscratch.augment import Augmentation, augment
from nnscratch.diagnostics import gradient_norms, histograms
from nnscratch.layers import Layer, shape_text
from nnscratch.losses import softmax
from nnscratch.network import Network

Array = npt.NDArray[np.floating]

PROBE = 2000  # test images the per-layer plots of an MLP are measured on
CONV_PROBE = 500  # fewer for a convnet: every layer's outputs for the whole probe are held at once


@dataclass(frozen=True)
class Histogram:
    """One hidden layer's activations on the probe images: ``counts`` (bins,) over ``edges`` (bins + 1,).

    ``grad_norm`` is ‖dW‖ of ``grad_layer`` (counted from 1), the layer whose weights feed this activation.
    """

    title: str
    counts: tuple[int, ...]
    edges: tuple[float, ...]
    mean: float
    std: float
    grad_norm: float | None = None
    grad_layer: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        return cls(**{**data, "counts": tuple(data["counts"]), "edges": tuple(data["edges"])})


@dataclass(frozen=True)
class LayerProfile:
    """One network's per-layer numbers: the mean and std of each hidden layer's activations, and ‖dW‖ of
    each layer with weights (the output layer last).  The names label the layers on the plot's axes."""

    activation_mean: tuple[float | None, ...]
    activation_std: tuple[float | None, ...]
    grad_norm: tuple[float, ...]
    hidden_names: tuple[str, ...] = ()
    weight_names: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class FeatureMaps:
    """What one layer outputs for one image: ``maps`` (C, H, W), titled with the layer's token and shape."""

    title: str
    maps: Array


@dataclass(frozen=True, eq=False)
class ModelPlotData:
    """Everything the plots of one trained model show.

    ``X`` (m, n) are the test images as flat rows and ``y`` (m,) their labels; ``P`` (m, k) the
    model's probabilities; ``input_shape`` is (n,) or (C, H, W).  The first layer is drawn from
    ``first_layer_weights`` (n, units), a dense layer that meets the input (its rows reordered like
    ``X``'s), or from ``filters`` (kh, kw, C, F), a convolution's; at most one of them is set.
    ``feature_maps`` are the outputs of every convolution and pooling layer for test image ``digit``.
    ``histograms`` are measured on the first ``probe`` test images.
    """

    spec: str
    input_shape: tuple[int, ...]
    activations: tuple[str, ...]
    X: Array
    y: npt.NDArray[np.integer]
    P: Array
    first_layer_weights: Array | None
    filters: Array | None
    digit: int
    feature_maps: tuple[FeatureMaps, ...]
    histograms: tuple[Histogram, ...]
    probe: int
    Z: Array | None = None  # the logits P was made from, for the reliability diagram
    temperature: float = 1.0  # the model's calibration: P = softmax(Z / temperature)


def fed_by(net: Network) -> list[int | None]:
    """For each hidden activation, the index into ``net.weighted_layers`` (and so into the gradient norms)
    of the nearest layer with weights at or below it, the one whose outputs it transforms; None if none is."""
    weights = net.weighted_layers
    found = []
    for i, _ in net.hidden_activations:
        below = [j for j, position in enumerate(weights) if position <= i]
        found.append(below[-1] if below else None)
    return found


def weight_names(net: Network) -> list[str]:
    """A label per layer with weights that says where it is and what it is, without its activation
    (which the study varies): ``layer 1 (conv8k3)``, ``layer 5 (dense 32)``, ``layer 6 (output)``."""
    last = len(net.layers) - 1
    return [f"layer {i + 1} ({_kind(net.layers[i], i == last)})" for i in net.weighted_layers]


def _kind(layer: Layer, output: bool) -> str:
    """A weighted layer's token without its activation: a dense layer's token (``32:relu``) names one, a
    convolution's does not."""
    if output:
        return "output"
    return layer.token if layer.activation is None else f"dense {layer.token.split(':')[0]}"


def _described(layer: Layer) -> str:
    """A hidden activation's layer's token, with its output shape where the token does not say it: a dense
    layer's (``32:relu``) does, an activation layer's does not (``relu, 16x26x26``)."""
    return layer.token if layer.weighted else f"{layer.token}, {shape_text(layer.output_shape or ())}"


def activation_names(net: Network) -> list[str]:
    """Every activation the network applies, each once, in order; the output's softmax (applied by the loss) last."""
    hidden = [activation.name for _, activation in net.hidden_activations]
    return list(dict.fromkeys([*hidden, "softmax"]))


def first_layer(net: Network) -> tuple[Array | None, Array | None]:
    """(dense weights (n, units), conv filters (kh, kw, C, F)) of the first layer with weights, one of them None.

    Dense weights are given only when the layer meets the input itself (nothing but flatten, dropout and
    the like before it), with their rows in the input's flat order, so column j is unit j's picture.
    Both are None when the first layer with weights sits behind a layer that changes the image.
    """
    positions = net.weighted_layers
    if not positions:
        return None, None
    W = np.array(net.layers[positions[0]].params["W"], dtype=np.float64)
    if W.ndim == 4:  # a convolution's filters
        return None, W
    if W.shape[0] == net.n_in:  # a dense layer's (n_in, units) weights, its inputs the input's values
        if len(net.input_shape) == 3:  # flatten reads (H, W, C), channels-last; X's rows are (C, H, W)
            C, H, Wd = net.input_shape
            W = W.reshape(H, Wd, C, -1).transpose(2, 0, 1, 3).reshape(net.n_in, -1)
        return W, None
    return None, None


def feature_maps(net: Network, x: Array) -> list[FeatureMaps]:
    """The output of every convolution and pooling layer for one image ``x`` (n,), each (C, H, W)."""
    outputs = net.layer_outputs(x.reshape(1, -1))
    maps = []
    for i in net.map_layers:
        layer = net.layers[i]
        title = f"{layer.token} → {shape_text(layer.output_shape or ())}"
        maps.append(FeatureMaps(title, np.array(outputs[i][0], dtype=np.float64)))
    return maps


def histogram_panels(net: Network, X: Array, y: npt.NDArray[np.integer] | None = None) -> list[Histogram]:
    """A :class:`Histogram` of every hidden layer's activations on X (m, n); with labels y (m,), each
    carries ‖dW‖ of the nearest layer with weights at or below it (the one whose outputs it transforms)."""
    norms = gradient_norms(net, X, y) if y is not None else None
    weights = net.weighted_layers
    panels = []
    hidden = [i for i, _ in net.hidden_activations]
    for i, j, h in zip(hidden, fed_by(net), histograms(net, X), strict=True):
        known = norms is not None and j is not None
        panels.append(
            Histogram(
                f"layer {i + 1}: {_described(net.layers[i])}",
                tuple(h["counts"]),
                tuple(h["edges"]),
                h["mean"],
                h["std"],
                norms[j] if known else None,  # type: ignore[index]
                weights[j] + 1 if known else None,  # type: ignore[index]
            )
        )
    return panels


def measure(net: Network, X: npt.ArrayLike, y: npt.ArrayLike) -> ModelPlotData:
    """Run ``net`` on the test images X (m, n) with labels y (m,) for every plot of :mod:`nnscratch.plots`."""
    m = net.check_input(X).shape[0]  # names a bad shape
    y = net.check_labels(y, m)
    X = np.asarray(X).reshape(m, -1)  # flat rows, channels-first: the order every plot reads
    Z = net.all_logits(X)
    temperature = net.calibration.temperature if net.calibration is not None else 1.0
    P = softmax(Z / Z.dtype.type(temperature))
    probe = min(len(y), PROBE if net.is_mlp else CONV_PROBE)
    weights, filters = first_layer(net)
    digit = 0
    return ModelPlotData(
        spec=net.spec,
        input_shape=net.input_shape,
        activations=tuple(activation_names(net)),
        X=X,
        y=y,
        P=P,
        first_layer_weights=weights,
        filters=filters,
        digit=digit,
        feature_maps=tuple(feature_maps(net, X[digit])) if len(y) and not net.is_mlp else (),
        histograms=tuple(histogram_panels(net, X[:probe], y[:probe])) if probe else (),
        probe=probe,
        Z=Z,
        temperature=temperature,
    )


def augmented_variants(
    X: npt.ArrayLike, side: tuple[int, int], augmentation: Augmentation, *, n: int = 6, k: int = 7, seed: int = 0
) -> tuple[Array, Array]:
    """(originals (n, H, W), variants (n, k, H, W)): the first n images of X (flat rows or images),
    each augmented k times with a generator seeded by ``seed``."""
    H, W = side
    originals = np.asarray(X)[:n].reshape(-1, H, W)
    rng = np.random.default_rng(seed)
    variants = np.stack([augment(originals, augmentation, rng) for _ in range(k)], axis=1)
    return originals, variants
