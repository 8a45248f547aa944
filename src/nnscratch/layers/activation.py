"""An activation as a layer of its own, wrapping ``nnscratch.activations``.

forward:   Y = f(X)
backward:  dX = the activation's vector-Jacobian product of dY (f'(X) ⊙ dY for elementwise ones)

X and Y are (m, n) or feature maps (m, H, W, C); softmax then runs across the C channels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnscratch.activations import ACTIVATIONS, Activation, get_activation
from nnscratch.layers.base import Array, Layer, Views, fresh


class ActivationLayer(Layer):
    """An activation as a layer of its own: Y = f(X), dX = f'(X) ⊙ dY (see ``nnscratch.activations``).

    It works on flat inputs and on feature maps alike (softmax then runs across the channels).
    """

    kind = "activation"
    grammar = f"an activation ({', '.join(ACTIVATIONS)})"
    activation: Activation

    def __init__(self, activation: str | Activation) -> None:
        super().__init__()
        self.activation = activation if isinstance(activation, Activation) else get_activation(activation)

    @classmethod
    def parse(cls, token: str) -> ActivationLayer | None:
        """``relu``, ``leaky-relu`` or ``leaky_relu``, ...: an activation's name alone."""
        name = token.replace("-", "_")
        return cls(name) if name in ACTIVATIONS else None

    @property
    def token(self) -> str:
        return self.activation.name

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "activation": self.activation.name}

    def example_values(self) -> int:
        return 0 if self.activation.name == "identity" else super().example_values()  # the identity returns X

    def forward(
        self, X: Array, *, training: bool = False, rng: np.random.Generator | None = None, keep: bool = False
    ) -> tuple[Array, tuple[Array, Array]]:
        f = self.activation
        if f.name == "identity":
            return X, (X, X)
        A = (self.scratch if training else fresh)("A", X.shape, X.dtype)
        values = X[0].size if X.ndim > 1 else 1
        self.pool.run(lambda start, stop: f.forward(X[start:stop], out=A[start:stop]), X.shape[0], size=values)
        return A, (X, A)

    def backward(self, dY: Array, cache: tuple[Array, Array], grads: Views, *, need_dX: bool = True) -> Array | None:
        if not need_dX:
            return None
        X, A = cache
        f = self.activation

        def rows(start: int, stop: int) -> None:
            f.backward_over(X[start:stop], A[start:stop], dY[start:stop])

        self.pool.run(rows, X.shape[0], size=X[0].size if X.ndim > 1 else 1)
        return dY
