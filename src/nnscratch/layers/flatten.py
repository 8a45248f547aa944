"""Flatten: feature maps to flat rows, the step between the convolutional part and the dense part.

forward:   Y = X reshaped (m, H·W·C)       X (m, H, W, C), channels-last
backward:  dX = dY reshaped (m, H, W, C)

Nothing is computed, so both are views whenever the input is contiguous.  The features come out in
(y, x, c) order, the channels-last memory order; a model exported to a channels-first format gets
the next dense layer's rows permuted to match (C, H, W) order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nnscratch.layers.base import Array, Layer, Shape, Views


class Flatten(Layer):
    kind = "flatten"
    grammar = "flatten"

    @classmethod
    def parse(cls, token: str) -> Flatten | None:
        return cls() if token == cls.grammar else None

    @property
    def token(self) -> str:
        return "flatten"

    def output_shape_for(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def example_values(self) -> int:
        return 0  # a reshape: a view of X

    def forward(
        self, X: Array, *, training: bool = False, rng: np.random.Generator | None = None, keep: bool = False
    ) -> tuple[Array, tuple[int, ...]]:
        return X.reshape(X.shape[0], -1), X.shape

    def backward(self, dY: Array, cache: Any, grads: Views, *, need_dX: bool = True) -> Array | None:
        return dY.reshape(cache) if need_dX else None
