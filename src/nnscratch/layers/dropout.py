"""Inverted dropout, forward beside backward.

forward (training):  Y = X ⊙ M,   M = [U >= p] / (1 - p),  U ~ Uniform[0, 1) drawn per element
forward (predicting): Y = X       (the 1/(1 - p) scaling while training keeps E[Y] = X, so nothing
                                    needs rescaling afterwards)
backward:            dX = dY ⊙ M  (the same mask: a dropped unit passes no gradient)

The masks come from the generator the training loop passes in, so a seeded run drops the same units
every time, and a checkpoint resumes bit for bit.  Without a generator (gradient checks, a
``Network.gradient`` call) dropout is off even in training mode.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from nnscratch.errors import SpecError
from nnscratch.layers.base import Array, Layer, Views

TOKEN = re.compile(r"^dropout(\d*\.?\d+)$")


def dropout_mask(
    shape: tuple[int, ...], rate: float, rng: np.random.Generator, dtype: np.dtype, out: Array | None = None
) -> Array:
    """M = [U >= p] / (1 - p) of ``shape``: each unit kept with probability 1 - p, scaled up when kept.

    ``out`` (``shape``, ``dtype``) receives U and then M, so a reused buffer needs no other array.
    """
    if out is None:
        keep = rng.random(shape, dtype=dtype) >= rate
        return keep * dtype.type(1.0 / (1.0 - rate))
    rng.random(dtype=dtype, out=out)  # the same draws as rng.random(shape, dtype)
    np.greater_equal(out, rate, out=out)
    out *= dtype.type(1.0 / (1.0 - rate))
    return out


class Dropout(Layer):
    """Drop each input with probability ``rate`` while training; the identity when predicting."""

    kind = "dropout"

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0.0 <= rate < 1.0:
            raise SpecError(f"a dropout rate must be a probability in [0, 1), got {rate!r}")
        self.rate = float(rate)

    @classmethod
    def parse(cls, token: str) -> Dropout | None:
        match = TOKEN.match(token)
        return cls(float(match.group(1))) if match else None

    @property
    def token(self) -> str:
        return f"dropout{self.rate:g}"

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "rate": self.rate}

    def forward(
        self, X: Array, *, training: bool = False, rng: np.random.Generator | None = None
    ) -> tuple[Array, Array | None]:
        if not training or rng is None or self.rate == 0.0:
            return X, None
        # The mask is drawn on this thread, in one piece: the generator's stream must not depend on the
        # number of threads.  The multiply is split over them.
        mask = dropout_mask(X.shape, self.rate, rng, X.dtype, out=self.scratch("mask", X.shape, X.dtype))
        Y = self.scratch("Y", X.shape, X.dtype)
        self.pool.run(lambda a, b: np.multiply(X[a:b], mask[a:b], out=Y[a:b]), X.shape[0], size=X[0].size)
        return Y, mask

    def backward(self, dY: Array, cache: Array | None, grads: Views, *, need_dX: bool = True) -> Array | None:
        if not need_dX:
            return None
        if cache is not None:
            self.pool.run(lambda a, b: np.multiply(dY[a:b], cache[a:b], out=dY[a:b]), dY.shape[0], size=dY[0].size)
        return dY
