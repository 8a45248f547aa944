"""The loss: mean softmax cross-entropy, optionally with an L2 penalty on the weights.

Legend: m = batch size, k = number of classes. ::

    L = (1/m) Σ_i -log P[i, y_i]  +  (λ₂/2) Σ_layers ||W||²  +  λ₁ Σ_layers Σ |W|
                                                     P = softmax(Z), Z (m, k) the logits

A network ends in logits Z; the loss owns the output softmax (``softmax``, the one in ``activations``, is what
``Network.predict_proba`` applies), and fuses it with the cross-entropy: with Y the one-hot labels,

    dL/dZ = (P - Y) / m

because ∂(-log P_y)/∂Z_j = P_j - [j = y] (the softmax Jacobian a_j(δ_ij - a_i) collapses against the
1/P_y of the logarithm).  So no layer ever back-propagates through the output softmax.  The L2 term
adds λ₂ W to each dW and the L1 term λ₁ sign(W) (a subgradient, 0 at W = 0); biases, batch-norm
scales and shifts are not penalised.

A label of -1 (``NONE_OF_THEM``) marks an example that belongs to no class, such as a made-up non-digit
(see ``nnscratch.nondigits``): its target is the uniform distribution, Y = 1/k in every column, so its
loss is the cross-entropy to uniform, log Σ_j exp(Z_j) - (1/k) Σ_j Z_j, and its row of dL/dZ is
(P - 1/k)/m: the same formula with a soft target.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nnscratch.activations import softmax as softmax  # the output probabilities (re-exported: P = softmax(Z))

Array = npt.NDArray[np.floating]


NONE_OF_THEM = -1  # the label of an example of no class: its target is uniform


def softmax_cross_entropy(Z: Array, y: npt.NDArray[np.integer]) -> tuple[float, Array]:
    """Mean cross-entropy of softmax(Z) against integer labels y, with its gradient.

    Z (m, k) logits, y (m,) labels in [0, k), or -1 for an example of no class (a uniform target).
    Returns (loss, dZ) with dZ = (P - Y)/m (m, k).
    Shifting each row by its max keeps every exponent <= 0 (logits such as [1e4, -1e4] give a finite
    loss), and log Σ exp is taken of the shifted row so the loss needs no log of a rounded-to-zero P.
    """
    m, k = Z.shape
    none = y == NONE_OF_THEM
    rows = np.arange(m)
    shifted = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(shifted)
    norm = E.sum(axis=1)
    dZ = E
    dZ /= norm[:, None]  # now P
    if none.any():
        picked = np.where(none, shifted.mean(axis=1), shifted[rows, np.where(none, 0, y)])
        dZ[~none, y[~none]] -= 1.0
        dZ[none] -= 1.0 / k  # P - Y with Y uniform
    else:
        picked = shifted[rows, y]
        dZ[rows, y] -= 1.0  # P - Y
    loss = float(np.mean(np.log(norm) - picked))
    dZ *= 1.0 / m
    return loss, dZ


def cross_entropy(P: Array, y: npt.NDArray[np.integer]) -> float:
    """Mean cross-entropy -mean(log P[i, y_i]) of probabilities P (m, k); log(0) is clipped to log(tiny)."""
    picked = P[np.arange(P.shape[0]), y]
    return float(-np.mean(np.log(np.maximum(picked, np.finfo(P.dtype).tiny))))


def l2_penalty(weights: list[Array], l2: float) -> float:
    """(λ/2) Σ ||W||² over the given weight matrices; its gradient with respect to W is λ W."""
    if l2 == 0.0:
        return 0.0
    return 0.5 * l2 * float(sum(np.vdot(W, W) for W in weights))


def l1_penalty(weights: list[Array], l1: float) -> float:
    """``λ Σ |W|`` over the given weight matrices; its (sub)gradient with respect to W is λ sign(W)."""
    if l1 == 0.0:
        return 0.0
    return l1 * float(sum(np.abs(W).sum(dtype=np.float64) for W in weights))
