"""Gradient checking: analytic gradients against central finite differences, array by array.

For every parameter θ_j the numeric derivative is the central difference

    g_num_j = (L(θ + h e_j) - L(θ - h e_j)) / (2h)         error O(h²)

and an array passes when the relative error  ||g - g_num|| / (||g|| + ||g_num||)  is below the
tolerance, or when both are zero up to the rounding of the differences themselves (||g - g_num|| below
1e-8: a convolution's bias ahead of batch norm has a gradient of exactly 0, since batch norm removes
any constant shift, and there the relative error of two rounding noises means nothing).

:func:`check_gradients` checks every trainable array of a network (W and b of dense and convolutional
layers, γ and β of batch norm) through the whole loss; :func:`check_layer` checks one layer on its own,
its dX as well as its parameters, against the loss L = Σ G ⊙ Y for a fixed random G.
Run in float64: in float32 the rounding of L swamps differences of size h.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nnscratch.layers import Layer
from nnscratch.losses import softmax_cross_entropy
from nnscratch.network import Network

Array = npt.NDArray[np.floating]

DEFAULT_TOLERANCE = 1e-6
ZERO_TOLERANCE = 1e-8  # an absolute error this small passes whatever the relative error


@dataclass(frozen=True)
class LayerCheck:
    """The result for one array of one layer."""

    layer: int
    name: str  # "W", "b", "gamma", "beta", or "X" for a layer's input gradient
    shape: tuple[int, ...]
    checked: int  # how many entries were perturbed
    relative_error: float
    tolerance: float
    absolute_error: float = 0.0  # ||g - g_num||

    @property
    def passed(self) -> bool:
        return bool(self.relative_error <= self.tolerance or self.absolute_error <= ZERO_TOLERANCE)


def relative_error(a: Array, b: Array) -> float:
    """||a - b|| / (||a|| + ||b||), and 0 when both are zero."""
    denominator = float(np.linalg.norm(a) + np.linalg.norm(b))
    return 0.0 if denominator == 0.0 else float(np.linalg.norm(a - b)) / denominator


def numeric_gradient(loss: Callable[[], float], param: Array, index: np.ndarray, *, h: float = 1e-6) -> Array:
    """Central differences of ``loss()`` with respect to ``param.flat[index]`` (param is a view into the net)."""
    flat = param.reshape(-1)
    out = np.empty(index.size)
    for n, j in enumerate(index):
        saved = flat[j]
        flat[j] = saved + h
        plus = loss()
        flat[j] = saved - h
        minus = loss()
        flat[j] = saved
        out[n] = (plus - minus) / (2.0 * h)
    return out


def _entries(size: int, max_entries: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_entries is not None and size > max_entries:
        return np.sort(rng.choice(size, max_entries, replace=False))
    return np.arange(size)


def check_gradients(
    net: Network,
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    l2: float = 0.0,
    l1: float = 0.0,
    dropout: float = 0.0,
    max_entries: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    h: float = 1e-6,
    seed: int = 0,
) -> list[LayerCheck]:
    """Compare ``net.gradient`` with central differences for every trainable array of every layer.

    The loss is the training-mode one (batch norm on batch statistics).  ``max_entries`` limits the
    entries perturbed per array (a random subset, drawn from ``seed``); ``None`` checks every
    parameter.  With ``dropout`` (on hidden dense layers) or dropout layers in the network, every
    evaluation draws the same masks from a generator seeded with ``seed``, so the training step itself
    is checked, masks included.  The network's running statistics are left as they were.  The network
    should be float64 (see the module docstring).
    """
    rng = np.random.default_rng(seed)
    X = net.check_input(X)
    y = net.check_labels(y, X.shape[0])
    flat = np.empty_like(net.params)

    def loss() -> float:  # forward only (half the cost), drawing the same masks as the analytic pass
        Z, _ = net.forward(X, training=True, rng=np.random.default_rng(seed), dropout=dropout)
        return softmax_cross_entropy(Z, y)[0] + net.penalty(l2=l2, l1=l1)

    net.loss_and_flat_grad(X, y, flat, l2=l2, l1=l1, dropout=dropout, rng=np.random.default_rng(seed))
    analytic = flat.copy()
    results = []
    for slot in net.layout.slots:
        index = _entries(slot.size, max_entries, rng)
        numeric = numeric_gradient(loss, slot.view(net.params), index, h=h)
        g = slot.view(analytic)[index]
        error, gap = relative_error(g, numeric), float(np.linalg.norm(g - numeric))
        results.append(LayerCheck(slot.layer, slot.name, slot.shape, index.size, error, tolerance, gap))
    return results


def check_layer(
    layer: Layer,
    X: Array,
    *,
    training: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    h: float = 1e-6,
    seed: int = 0,
) -> list[LayerCheck]:
    """Check one materialised layer's backward: dX and every parameter array, for the loss Σ G ⊙ Y.

    X is the input in the layer's own layout ((m, n) or channels-last (m, H, W, C)), float64.
    Dropout masks are drawn from a generator seeded with ``seed`` for every evaluation.
    """
    G = np.random.default_rng(seed + 1).standard_normal(layer.forward(X, training=training)[0].shape)

    def loss() -> float:
        Y, _ = layer.forward(X, training=training, rng=np.random.default_rng(seed))
        return float(np.sum(G * Y))

    grad_flat = np.zeros_like(layer.flat)
    grads = layer.views(grad_flat)
    _, cache = layer.forward(X, training=training, rng=np.random.default_rng(seed))
    dX = np.array(layer.backward(G.copy(), cache, grads))  # a copy: backward's dX is a reused buffer
    results = []
    arrays = [("X", X, dX)] + [(name, layer.params[name], grads[name]) for name in layer.param_shapes()]
    for name, array, analytic in arrays:
        index = np.arange(array.size)
        numeric = numeric_gradient(loss, array, index, h=h)
        g = np.asarray(analytic).reshape(-1)
        error, gap = relative_error(g, numeric), float(np.linalg.norm(g - numeric))
        results.append(LayerCheck(0, name, array.shape, index.size, error, tolerance, gap))
    return results
