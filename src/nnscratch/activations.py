"""Activation functions, each with its forward and its derivative side by side.

Shapes: arrays are (m, n) for m samples and n units, or (m, H, W, C) feature maps whose units are
the C channels (only softmax looks across units, along the last axis); the dtype follows ``z``.

Every activation has the same interface:

* ``forward(z, out=None) -> a``; ``out``, if given, is an array shaped like ``z`` to write ``a`` into
  (the training loop passes a buffer it reuses from step to step: a fresh array of many megabytes
  costs its page faults again every batch, which measured a third of a convolutional network's step)
* ``backward(z, a, da) -> dz``: the vector-Jacobian product, i.e. the gradient of the loss with
  respect to the pre-activation ``z`` given the gradient ``da`` with respect to the output ``a``.
  Both ``z`` and ``a`` are passed so each derivative can use its cheapest form.

``backward`` may overwrite ``da`` (it is always a temporary the caller no longer needs); this saves an
allocation per layer per batch on the training hot path.

Each is numerically safe by construction: no ``exp`` of a large positive number is ever evaluated, so
extreme inputs give finite outputs without overflow warnings.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from nnscratch.errors import lookup

Array = npt.NDArray[np.floating]

# SELU constants from Klambauer et al. (2017), "Self-Normalizing Neural Networks", eq. (14).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946


class Activation:
    """Base class: subclasses define ``name``, ``default_init``, ``forward`` and ``backward``."""

    name: ClassVar[str]
    default_init: ClassVar[str] = "glorot"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        raise NotImplementedError

    def backward(self, z: Array, a: Array, da: Array) -> Array:
        raise NotImplementedError

    def backward_over(self, z: Array, a: Array, da: Array) -> None:
        """:meth:`backward` with dz written over ``da`` (most activations compute it there already)."""
        dz = self.backward(z, a, da)
        if dz is not da:
            da[...] = dz

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(Activation):
    """Identity.  forward: a = z;  backward: dz = da."""

    name = "identity"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return z  # nothing to compute: ``out`` is not needed

    def backward(self, z: Array, a: Array, da: Array) -> Array:
        return da


class ReLU(Activation):
    """Rectified linear unit.  forward: a = max(z, 0);  backward: dz = da * [z > 0].

    The derivative at exactly z = 0 is taken as 0 (a subgradient), as in PyTorch and scikit-learn.
    """

    name = "relu"
    default_init = "he"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return np.maximum(z, 0.0, out=out)

    def backward(self, z: Array, a: Array, da: Array) -> Array:
        # Multiplying by the 0/1 mask is several times faster than assigning through it.
        da *= z > 0.0
        return da


class LeakyReLU(Activation):
    """Leaky ReLU.  forward: a = z if z > 0 else s*z;  backward: dz = da * (1 if z > 0 else s), s = 0.01."""

    name = "leaky_relu"
    default_init = "he"
    slope = 0.01

    def forward(self, z: Array, out: Array | None = None) -> Array:
        # max(z, s z) is z for z > 0 and s z otherwise (0 < s < 1): exactly the two branches, no where.
        a = np.multiply(z, self.slope, out=out)
        return np.maximum(a, z, out=a)

    def backward(self, z: Array, a: Array, da: Array) -> Array:
        da[z <= 0.0] *= self.slope
        return da


class Sigmoid(Activation):
    """Logistic sigmoid.  forward: a = 1 / (1 + exp(-z));  backward: dz = da * a * (1 - a).

    Computed through the identity 1 / (1 + exp(-z)) = (1 + tanh(z/2)) / 2: tanh saturates at ±1 and
    never overflows, and it is one transcendental pass instead of exp plus a branch on the sign of z.
    Far in the negative tail (z < -17 in float32) the result rounds to 0 rather than a denormal-sized
    positive number: an absolute error below 1e-7 that no gradient notices.
    """

    name = "sigmoid"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        a = np.multiply(z, 0.5, out=out)
        np.tanh(a, out=a)
        a += 1.0
        a *= 0.5
        return a

    def backward(self, z: Array, a: Array, da: Array) -> Array:
        da *= a * (1.0 - a)
        return da


class Tanh(Activation):
    """Hyperbolic tangent.  forward: a = tanh(z);  backward: dz = da * (1 - a**2)."""

    name = "tanh"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return np.tanh(z, out=out)

    def backward(self, z: Array, a: Array, da: Array) -> Array:
        da *= 1.0 - a * a
        return da


class SELU(Activation):
    """Scaled exponential linear unit.

    forward:  a = λ z                   if z > 0
              a = λ α (exp(z) - 1)      otherwise
    backward: dz = da * λ               if z > 0
              dz = da * (a + λ α)       otherwise   (since d/dz λα(e^z - 1) = λα e^z = a + λα)

    with α = 1.6732632423543772... and λ = 1.0507009873554805...  ``expm1`` is taken only of min(z, 0),
    so it never overflows.
    """

    name = "selu"
    default_init = "lecun"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        # a = λ (max(z, 0) + α expm1(min(z, 0))): each term vanishes on the other side of 0, so no
        # branch is needed and exp only ever sees values <= 0.
        a = np.maximum(z, 0.0, out=out)
        negative = np.minimum(z, 0.0)
        np.expm1(negative, out=negative)
        negative *= SELU_ALPHA
        a += negative
        a *= SELU_LAMBDA
        return a

    def backward(self, z: Array, a: Array, da: Array) -> Array:
        da *= np.where(z > 0.0, SELU_LAMBDA, a + SELU_LAMBDA * SELU_ALPHA)
        return da


def softmax(z: Array, out: Array | None = None) -> Array:
    """exp(z - max) / Σ exp(z - max) over the last axis: the row max is subtracted first, so nothing overflows.

    The one softmax: :class:`Softmax` (a hidden activation) and the loss's output probabilities.
    """
    e = np.subtract(z, z.max(axis=-1, keepdims=True), out=out)
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


class Softmax(Activation):
    """Softmax over the units of each row (the last axis: the channels of a feature map).

    forward:  a_i = exp(z_i - max_j z_j) / sum_k exp(z_k - max_j z_j)   (the shift changes nothing
              mathematically but keeps every exponent <= 0, so nothing overflows)
    backward: the Jacobian is da_i/dz_j = a_i (δ_ij - a_j), so the vector-Jacobian product is
              dz = a * (da - sum_j(da_j * a_j))
              computed row by row without ever building the (n, n) Jacobian.

    The network's output softmax is not this layer: the loss owns it, fused with cross-entropy (see
    ``losses``), where the product simplifies to P - Y.
    """

    name = "softmax"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return softmax(z, out=out)

    def backward(self, z: Array, a: Array, da: Array) -> Array:
        da -= np.einsum("...j,...j->...", da, a)[..., None]
        da *= a
        return da


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (ReLU, Sigmoid, Tanh, SELU, Softmax, Identity, LeakyReLU)
}
"""Every activation by name: the spec parser, the CLI, the model loader and the tests read this."""

# The five activations the original study is about, in its order.
STUDY_ACTIVATIONS = ("relu", "sigmoid", "tanh", "selu", "softmax")


def get_activation(name: str) -> Activation:
    """Return a new activation object for ``name`` (case-insensitive)."""
    return lookup(ACTIVATIONS, name.strip().lower().replace("-", "_"), "activation")()
