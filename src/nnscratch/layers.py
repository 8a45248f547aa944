"""The dense (fully connected) layer, forward beside backward.

Legend: m = batch size, n_in = inputs to the layer, n_out = units of the layer.

forward:   Z = X W + b                       X (m, n_in), W (n_in, n_out), b (n_out,), Z (m, n_out)
           A = f(Z)                          A (m, n_out)
backward:  dZ = f'(Z) ⊙ dA                   (the activation's vector-Jacobian product)
           dW = Xᵀ dZ                        (n_in, n_out)
           db = Σ_rows dZ                    (n_out,)
           dX = dZ Wᵀ                        (m, n_in), passed on to the layer below

A ``d`` prefix always means the gradient of the loss with respect to that quantity.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from nnscratch.activations import Activation

Array = npt.NDArray[np.floating]


class DenseCache(NamedTuple):
    """What backward needs from forward: the input X, the pre-activation Z and the output A."""

    X: Array
    Z: Array
    A: Array


class Dense:
    """A fully connected layer with its own activation.

    ``W`` (n_in, n_out) and ``b`` (n_out,) are views into the network's flat parameter buffer, so that
    an optimiser can update every parameter of the network with a few vector operations.  Assigning to
    ``layer.W`` copies the values into that buffer.
    """

    def __init__(self, W: Array, b: Array, activation: Activation, *, init: str | None = None) -> None:
        if W.ndim != 2 or b.shape != (W.shape[1],):
            raise ValueError(f"W must be (n_in, n_out) and b (n_out,); got {W.shape} and {b.shape}")
        self._W = W
        self._b = b
        self.activation = activation
        self.init = init

    @property
    def W(self) -> Array:
        return self._W

    @W.setter
    def W(self, value: Array) -> None:
        if np.shape(value) != self._W.shape:
            raise ValueError(f"W must have shape {self._W.shape}, got {np.shape(value)}")
        self._W[...] = value

    @property
    def b(self) -> Array:
        return self._b

    @b.setter
    def b(self, value: Array) -> None:
        if np.shape(value) != self._b.shape:
            raise ValueError(f"b must have shape {self._b.shape}, got {np.shape(value)}")
        self._b[...] = value

    @property
    def n_in(self) -> int:
        return self._W.shape[0]

    @property
    def n_out(self) -> int:
        return self._W.shape[1]

    def linear(self, X: Array) -> Array:
        """Z = X W + b.  The bias is added in place to the fresh product, saving one (m, n_out) array."""
        Z = X @ self._W
        Z += self._b
        return Z

    def forward(self, X: Array) -> tuple[Array, DenseCache]:
        """A = f(X W + b); returns A (m, n_out) and the cache backward needs."""
        Z = self.linear(X)
        A = self.activation.forward(Z)
        return A, DenseCache(X, Z, A)

    def backward(
        self, dA: Array, cache: DenseCache, *, need_dX: bool = True, out: tuple[Array, Array] | None = None
    ) -> tuple[Array | None, Array, Array]:
        """Gradients (dX, dW, db) from dA (m, n_out).  ``dA`` may be overwritten.

        ``need_dX=False`` skips the (m, n_in) product for the first layer, whose input is the data.
        ``out=(dW, db)`` writes the parameter gradients into given arrays (the trainer passes views of
        its flat gradient buffer) instead of allocating new ones.
        """
        dZ = self.activation.backward(cache.Z, cache.A, dA)
        return self.backward_linear(dZ, cache.X, need_dX=need_dX, out=out)

    def backward_linear(
        self, dZ: Array, X: Array, *, need_dX: bool = True, out: tuple[Array, Array] | None = None
    ) -> tuple[Array | None, Array, Array]:
        """dW = Xᵀ dZ, db = Σ_rows dZ, dX = dZ Wᵀ, given dZ (m, n_out) directly."""
        if out is None:
            dW, db = X.T @ dZ, dZ.sum(axis=0)
        else:
            dW, db = out
            np.matmul(X.T, dZ, out=dW)
            np.sum(dZ, axis=0, out=db)
        dX = dZ @ self._W.T if need_dX else None
        return dX, dW, db

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out}, {self.activation.name})"
