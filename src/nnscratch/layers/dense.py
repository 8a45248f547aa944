"""The dense (fully connected) layer with its own activation, forward beside backward.

Legend: m = batch size, n_in = inputs to the layer, n_out = units of the layer.

forward:   Z = X W + b                       X (m, n_in), W (n_in, n_out), b (n_out,), Z (m, n_out)
           A = f(Z)                          A (m, n_out)
backward:  dZ = f'(Z) ⊙ dA                   (the activation's vector-Jacobian product)
           dW = Xᵀ dZ                        (n_in, n_out)
           db = Σ_rows dZ                    (n_out,)
           dX = dZ Wᵀ                        (m, n_in), passed on to the layer below

A ``d`` prefix always means the gradient of the loss with respect to that quantity.  The network's
output layer is a dense layer with the identity: its Z are the logits, and the loss applies softmax.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from nnscratch.activations import Activation, get_activation
from nnscratch.errors import SpecError, check_name
from nnscratch.initializers import INITIALIZERS, get_initializer
from nnscratch.layers.base import MAX_SIZE, Array, Layer, Shape, Views, echo, fresh
from nnscratch.parallel import GEMM_COST


class DenseCache(NamedTuple):
    """What backward needs from forward: the input X, the pre-activation Z and the output A."""

    X: Array
    Z: Array
    A: Array


class Dense(Layer):
    """A fully connected layer of ``units`` units with its activation (``"identity"`` for none).

    ``W`` (n_in, n_out) and ``b`` (n_out,) are views into the network's flat parameter buffer, so that
    an optimiser updates every parameter of the network with a few vector operations.  Assigning to
    ``layer.W`` copies the values into that buffer.
    """

    kind = "dense"
    grammar = "UNITS[:ACTIVATION]"  # read by spec.parse_layer, which also knows the output layer's rules
    weighted = True
    activation: Activation  # its own: every dense layer has one ("identity" for none)

    def __init__(self, units: int, activation: str | Activation = "identity", *, init: str | None = None) -> None:
        super().__init__()
        if not isinstance(units, int) or isinstance(units, bool) or not 1 <= units <= MAX_SIZE:
            shown = "a larger number" if isinstance(units, int) and units > MAX_SIZE else echo(repr(units))
            raise SpecError(f"a dense layer needs a positive number of units, at most {MAX_SIZE:,}; got {shown}")
        self.units = units
        self.activation = activation if isinstance(activation, Activation) else get_activation(activation)
        if init is not None:
            check_name(INITIALIZERS, init, "initialiser")
        self.init = init

    @property
    def token(self) -> str:
        return f"{self.units}:{self.activation.name}"

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "units": self.units, "activation": self.activation.name, "init": self.init}

    def output_shape_for(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise self.refuse(input_shape, "a dense layer takes flat inputs; put 'flatten' before it")
        return (self.units,)

    def param_shapes(self) -> dict[str, Shape]:
        return {"W": (self.n_in, self.units), "b": (self.units,)}

    def example_values(self) -> int:
        """Z, and A unless the activation is the identity (then A is Z)."""
        return self.units * (1 if self.activation.name == "identity" else 2)

    @property
    def n_in(self) -> int:
        assert self.input_shape is not None, "the layer is not built yet"
        return self.input_shape[0]

    @property
    def n_out(self) -> int:
        return self.units

    @property
    def W(self) -> Array:
        return self.params["W"]

    @W.setter
    def W(self, value: npt.ArrayLike) -> None:
        _assign(self.params["W"], value, "W")

    @property
    def b(self) -> Array:
        return self.params["b"]

    @b.setter
    def b(self, value: npt.ArrayLike) -> None:
        _assign(self.params["b"], value, "b")

    def initialize(self, rng: np.random.Generator) -> None:
        init = get_initializer(self.init or self.activation.default_init)
        self.W, self.b = init(self.n_in, self.units, (self.n_in, self.units), rng)

    def forward(
        self, X: Array, *, training: bool = False, rng: np.random.Generator | None = None, keep: bool = False
    ) -> tuple[Array, DenseCache]:
        """A = f(X W + b) (m, n_out).  The bias is added in place to the product: one array fewer.

        The rows are split over the threads: each chunk is one product, its bias and its activation.
        """
        buffer = self.scratch if training else fresh
        m = X.shape[0]
        W, b, f = self.params["W"], self.params["b"], self.activation
        Z = buffer("Z", (m, self.units), X.dtype)
        A = Z if f.name == "identity" else buffer("A", (m, self.units), X.dtype)

        def rows(start: int, stop: int) -> None:
            np.matmul(X[start:stop], W, out=Z[start:stop])
            Z[start:stop] += b
            if A is not Z:
                f.forward(Z[start:stop], out=A[start:stop])

        self.pool.run(rows, m, size=self.n_in * self.units // GEMM_COST + self.units)
        return A, DenseCache(X, Z, A)

    def backward(self, dY: Array, cache: DenseCache, grads: Views, *, need_dX: bool = True) -> Array | None:
        """dW, db into ``grads`` and dX (m, n_in) from dA (m, n_out); ``dY`` may be overwritten.

        ``need_dX=False`` skips the (m, n_in) product for a first layer, whose input is the data.  dZ
        and dX are split over the threads by rows; dW = Xᵀ dZ by its own rows, so that each of its
        values stays one sum over the whole batch.
        """
        X, Z, A = cache
        m, n_in = X.shape
        W, f = self.params["W"], self.activation
        dX = self.scratch("dX", (m, n_in), dY.dtype) if need_dX else None

        def rows(start: int, stop: int) -> None:
            f.backward_over(Z[start:stop], A[start:stop], dY[start:stop])  # dZ, over dY
            if dX is not None:
                np.matmul(dY[start:stop], W.T, out=dX[start:stop])

        self.pool.run(rows, m, size=(n_in * self.units // GEMM_COST if need_dX else 0) + 2 * self.units)
        dW = grads["W"]
        self.pool.run(
            lambda start, stop: np.matmul(X[:, start:stop].T, dY, out=dW[start:stop]),
            n_in,
            size=m * self.units // GEMM_COST,
        )
        np.sum(dY, axis=0, out=grads["b"])
        return dX

    def __repr__(self) -> str:
        n_in = self.input_shape[0] if self.input_shape else "?"
        return f"Dense({n_in}, {self.units}, {self.activation.name})"


def _assign(target: Array, value: npt.ArrayLike, name: str) -> None:
    if np.shape(value) != target.shape:
        raise ValueError(f"{name} must have shape {target.shape}, got {np.shape(value)}")
    target[...] = value
