"""What explains the differences between activations: dead units, saturation, gradient norms, statistics.

Legend: m = probe batch size, n = units of a layer.  Every function takes arrays, returns numbers, and
prints nothing.  The "hidden layers" are the outputs of every activation but the output softmax: a
dense layer's own activation, or an activation layer; a feature map's units are its channels, each
seen at every position (m·H·W values per unit).

* dead (ReLU family): a unit whose output is 0 for every sample of the probe batch.  It passes no
  gradient to its weights (ReLU' = 0 there), so it may never recover.
* saturated (Sigmoid, Tanh): an activation in the flat tails, where the derivative is below 1% of its
  peak: σ(1 - σ) < 0.0025 (σ < 0.0025 or σ > 0.9975) and 1 - tanh² < 0.01 (``|tanh| > 0.995``).  Gradients
  through it are scaled down a hundredfold.  A unit is saturated when at least 95% of its activations
  on the probe batch are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from nnscratch.layers import Layer
from nnscratch.network import Network
from nnscratch.network import hidden_activations as stack_activations

Array = npt.NDArray[np.floating]

SATURATED_SHARE = 0.95  # of samples, for a unit to count as saturated
_RELU_FAMILY = ("relu", "leaky_relu")


def dead_fraction(A: Array) -> float:
    """Fraction of the n units of A (m, n) that output exactly 0 (or less) for every sample."""
    return float(np.mean(A.max(axis=0) <= 0.0))


def saturation_mask(A: Array, activation: str) -> npt.NDArray[np.bool_] | None:
    """Which activations of A (m, n) lie where the derivative is < 1% of its peak; None if not applicable."""
    if activation == "sigmoid":
        return (A < 0.0025) | (A > 0.9975)
    if activation == "tanh":
        return np.abs(A) > 0.995
    return None


def saturated_fraction(A: Array, activation: str) -> float | None:
    """Fraction of units of A (m, n) saturated on at least 95% of the samples (None for other activations)."""
    mask = saturation_mask(A, activation)
    return None if mask is None else float(np.mean(mask.mean(axis=0) >= SATURATED_SHARE))


def hidden_positions(layers: Sequence[Layer]) -> list[int]:
    """Indices into a network's ``layers`` of its hidden activations: activation layers and dense layers
    with an activation of their own, the output layer excluded (``Network.hidden_activations``)."""
    return [i for i, _ in stack_activations(layers)]


def hidden_activations(net: Network, X: Array) -> list[tuple[str, Array]]:
    """(activation name, outputs (rows, units)) of every hidden activation of ``net`` on X, in order."""
    outputs = net.layer_outputs(X)
    found = []
    for i, activation in net.hidden_activations:
        A = outputs[i]
        if A.ndim == 4:  # (m, C, H, W): every position of a channel is a sample of that unit
            A = A.transpose(0, 2, 3, 1).reshape(-1, A.shape[1])
        found.append((activation.name, A))
    return found


def layer_statistics(net: Network, X: Array) -> list[dict[str, Any]]:
    """For each hidden layer: activation name, mean and std of its outputs, dead and saturated fractions."""
    stats = []
    for name, A in hidden_activations(net, X):
        mask = saturation_mask(A, name)
        stats.append(
            {
                "activation": name,
                "mean": float(A.mean()),
                "std": float(A.std()),
                "dead": dead_fraction(A) if name in _RELU_FAMILY else None,
                "saturated_units": saturated_fraction(A, name),
                "saturated_activations": None if mask is None else float(mask.mean()),
            }
        )
    return stats


def gradient_norms(net: Network, X: Array, y: npt.NDArray[np.integer]) -> list[float]:
    """‖dW‖ (Frobenius) of the weights of every dense and convolutional layer, first to last, on (X, y)."""
    _, g = net.gradient(X, y)
    return [float(np.linalg.norm(slot.view(g))) for slot in net.weight_slots]


def histograms(net: Network, X: Array, *, bins: int = 40) -> list[dict[str, Any]]:
    """A histogram of every hidden layer's outputs on X: {"activation", "counts", "edges", "mean", "std"}.

    ``counts`` has ``bins`` entries and ``edges`` one more; mean and std are of all m × n outputs.
    """
    out = []
    for name, A in hidden_activations(net, X):
        counts, edges = np.histogram(A, bins=bins)
        out.append(
            {
                "activation": name,
                "counts": counts.tolist(),
                "edges": edges.tolist(),
                "mean": float(A.mean()),
                "std": float(A.std()),
            }
        )
    return out
