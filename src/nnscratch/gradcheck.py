"""Gradient checking: analytic gradients against central finite differences, layer by layer.

For every parameter θ_j the numeric derivative is the central difference

    g_num_j = (L(θ + h e_j) - L(θ - h e_j)) / (2h)         error O(h²)

and a layer passes when the relative error  ||g - g_num|| / (||g|| + ||g_num||)  of its W and of its b
is below the tolerance.  Run in float64: in float32 the rounding of L swamps differences of size h.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nnscratch.network import Network

Array = npt.NDArray[np.floating]

DEFAULT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class LayerCheck:
    """The result for one parameter array of one layer."""

    layer: int
    name: str  # "W" or "b"
    shape: tuple[int, ...]
    checked: int  # how many entries were perturbed
    relative_error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(self.relative_error <= self.tolerance)


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


def check_gradients(
    net: Network,
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    l2: float = 0.0,
    dropout: float = 0.0,
    max_entries: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    h: float = 1e-6,
    seed: int = 0,
) -> list[LayerCheck]:
    """Compare ``net.loss_and_grads`` with central differences for every layer's W and b.

    ``max_entries`` limits the entries perturbed per array (a random subset, drawn from ``seed``);
    ``None`` checks every parameter.  With ``dropout`` every evaluation draws the same masks (from a
    generator seeded with ``seed``), so the training step itself is checked, masks included.  The
    network should be float64 (see the module docstring).
    """
    rng = np.random.default_rng(seed)
    X = net.check_input(X)
    y = net.check_labels(y, X.shape[0])
    flat = np.empty_like(net.params)

    def loss_and_grad() -> float:
        loss, _ = net.loss_and_flat_grad(X, y, flat, l2=l2, dropout=dropout, rng=np.random.default_rng(seed))
        return loss

    if dropout:
        loss = loss_and_grad
    else:

        def loss() -> float:  # forward only: half the cost
            return net.loss(X, y, l2=l2)

    loss_and_grad()
    grads = [(dW.copy(), db.copy()) for dW, db in net.grad_views(flat)]
    results = []
    for i, (layer, (dW, db)) in enumerate(zip(net.layers, grads, strict=True)):
        for name, param, analytic in (("W", layer.W, dW), ("b", layer.b, db)):
            index = np.arange(param.size)
            if max_entries is not None and param.size > max_entries:
                index = np.sort(rng.choice(param.size, max_entries, replace=False))
            numeric = numeric_gradient(loss, param, index, h=h)
            error = relative_error(analytic.reshape(-1)[index], numeric)
            results.append(LayerCheck(i, name, param.shape, index.size, error, tolerance))
    return results
