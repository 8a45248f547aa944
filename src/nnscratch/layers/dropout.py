"""Inverted dropout and alpha-dropout, forward beside backward.

::

    forward (training):  Y = X ⊙ M,   M = [U >= p] / (1 - p),  U ~ Uniform[0, 1) drawn per element
    forward (predicting): Y = X       (the 1/(1 - p) scaling while training keeps E[Y] = X, so nothing
                                        needs rescaling afterwards)
    backward:            dX = dY ⊙ M  (the same mask: a dropped unit passes no gradient)

Alpha-dropout (Klambauer et al. 2017, "Self-Normalizing Neural Networks", section 4) is the dropout
for SELU networks.  Setting a unit to 0 would shift a SELU layer's mean and variance away from the
0 and 1 its self-normalisation keeps; instead a dropped unit takes SELU's negative saturation value
α' = -λα ≈ -1.7581, and an affine map a·x + b restores mean 0 and variance 1:

::

    forward (training):  Y = a (X ⊙ M + α' (1 - M)) + b,   M = [U >= p]
                         a = ((1 - p)(1 + p α'²))^(-1/2),   b = -a p α'
    backward:            dX = a M ⊙ dY
    forward (predicting): Y = X

The masks come from the generator the training loop passes in, so a seeded run drops the same units
every time, and a checkpoint resumes bit for bit.  Without a generator (gradient checks, a
``Network.gradient`` call) dropout is off even in training mode.

A spec places these layers where it writes ``dropout0.5`` or ``alphadropout0.1``; the trainer's
``dropout`` option places them too, after every hidden dense layer, for training only
(``Network.stack``): they are then in no spec and no model file.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from nnscratch.activations import SELU_ALPHA, SELU_LAMBDA
from nnscratch.errors import SpecError
from nnscratch.layers.base import Array, Layer, Views

TOKEN = re.compile(r"^dropout([0-9]*\.?[0-9]+)\Z")  # ASCII digits only
ALPHA_TOKEN = re.compile(r"^alphadropout([0-9]*\.?[0-9]+)\Z")
SELU_SATURATION = -SELU_LAMBDA * SELU_ALPHA  # α' = lim SELU(z) as z → -∞


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


def alpha_dropout_mask(
    shape: tuple[int, ...], rate: float, rng: np.random.Generator, dtype: np.dtype
) -> tuple[Array, Array]:
    """(a M, a α' (1 - M) + b) of ``shape``: Y = X ⊙ (a M) + that shift, and dX = dY ⊙ (a M).

    The same draws as :func:`dropout_mask`, so both kinds consume the generator alike.
    """
    keep = rng.random(shape, dtype=dtype) >= rate
    a = (1.0 - rate) * (1.0 + rate * SELU_SATURATION**2)
    a = a**-0.5
    b = -a * rate * SELU_SATURATION
    factor = keep * dtype.type(a)
    shift = np.where(keep, dtype.type(b), dtype.type(a * SELU_SATURATION + b))
    return factor, shift


class Dropout(Layer):
    """Drop each input with probability ``rate`` while training; the identity when predicting."""

    kind = "dropout"
    grammar = "dropout{P}"

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0.0 <= rate < 1.0:
            raise SpecError(f"a dropout rate must be a probability in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def example_values(self) -> int:
        return 0  # the identity while predicting: X itself

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
        self, X: Array, *, training: bool = False, rng: np.random.Generator | None = None, keep: bool = False
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


class AlphaDropout(Dropout):
    """Alpha-dropout (for SELU networks): drop each input to SELU's saturation value with probability
    ``rate`` while training, then restore mean 0 and variance 1; the identity when predicting."""

    kind = "alphadropout"
    grammar = "alphadropout{P}"

    @classmethod
    def parse(cls, token: str) -> AlphaDropout | None:
        match = ALPHA_TOKEN.match(token)
        return cls(float(match.group(1))) if match else None

    @property
    def token(self) -> str:
        return f"alphadropout{self.rate:g}"

    def forward(
        self, X: Array, *, training: bool = False, rng: np.random.Generator | None = None, keep: bool = False
    ) -> tuple[Array, Array | None]:
        if not training or rng is None or self.rate == 0.0:
            return X, None
        factor, shift = alpha_dropout_mask(X.shape, self.rate, rng, X.dtype)
        Y = self.scratch("Y", X.shape, X.dtype)
        np.multiply(X, factor, out=Y)
        Y += shift
        return Y, factor
