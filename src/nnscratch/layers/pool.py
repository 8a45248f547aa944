"""2-D max pooling, forward beside backward.

Legend: m = batch size, C = channels, k = window side (= stride), H×W input, Ho×Wo = ⌊H/k⌋×⌊W/k⌋ output.
Images are channels-last: X (m, H, W, C), Y (m, Ho, Wo, C).

::

    forward:   Y[n, y, x, c] = max_{0 <= a, b < k} X[n, k·y + a, k·x + b, c]
    backward:  dX[n, k·y + a, k·x + b, c] = dY[n, y, x, c] where (a, b) is the window's first maximum
               (in row-major order, as PyTorch picks it), and 0 everywhere else, including the rows and
               columns dropped when k does not divide H or W (floor mode).

The max is a function of the one element that attains it, so its gradient flows to that element
alone; with ties (a flat background, where many windows hold the same value) it must still go to one
of them, or the sum over the window would count it several times.

Why it is fast (CS231n's reshape trick): with the stride equal to the window, the input is a
(m, Ho, k, Wo, k, C) view of itself, so window position (a, b) is the strided view X6[:, :, a, :, b]
with C contiguous values at a time.  The forward pass is k² - 1 elementwise maxima of those views
(0.6 ms for 128×26×26×32, against 5 ms for ``X6.max(axis=(2, 4))``).  While training it also keeps
the index of each window's first maximum as one byte, found in the same sweep: a position that is
strictly greater than the running maximum takes over, so ties keep the earlier one.  Backward then
writes each window position once, dY where the index matches and 0 elsewhere (1.2 ms; comparing
X with Y again in backward measured 4 ms).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import numpy as np

from nnscratch.layers.base import Array, Layer, Shape, Views, check_size, fresh, spec_int

TOKEN = re.compile(r"^maxpool([0-9]+)\Z")  # ASCII digits only


MAX_WINDOW = 15  # the window's position is kept as one byte, a·k + b < 256


class PoolCache(NamedTuple):
    input_shape: tuple[int, ...]  # (m, H, W, C)
    argmax: np.ndarray  # (m, Ho, Wo, C) uint8: a·k + b of each window's first maximum
    fresh: bool = False  # kept while predicting: backward writes dX into a new array, not the training buffer


class MaxPool2D(Layer):
    """Max over non-overlapping ``size``×``size`` windows (stride = size)."""

    kind = "maxpool2d"
    grammar = "maxpool{K}"

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = check_size(size, "a max-pool window", high=MAX_WINDOW)

    @classmethod
    def parse(cls, token: str) -> MaxPool2D | None:
        match = TOKEN.match(token)
        return cls(spec_int(match.group(1), "window", token, high=MAX_WINDOW)) if match else None

    @property
    def token(self) -> str:
        return f"maxpool{self.size}"

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size}

    def output_shape_for(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise self.refuse(input_shape, "pooling needs an image input such as 32x26x26")
        C, H, W = input_shape
        k = self.size
        if k > H or k > W:
            raise self.refuse(input_shape, f"the {k}×{k} window is larger than the {H}×{W} image")
        return (C, H // k, W // k)

    def _windows(self, X: Array) -> Array:
        """X (m, H, W, C) as (m, Ho, k, Wo, k, C): a view, remainders dropped."""
        m, H, W, C = X.shape
        k = self.size
        Ho, Wo = H // k, W // k
        return X[:, : Ho * k, : Wo * k, :].reshape(m, Ho, k, Wo, k, C)

    def forward(
        self, X: Array, *, training: bool = False, rng: np.random.Generator | None = None, keep: bool = False
    ) -> tuple[Array, PoolCache | None]:
        """Y (m, Ho, Wo, C), the window maxima, and while training (or asked to ``keep`` it) the index of each
        window's first maximum.

        The samples are split over the threads.
        """
        k = self.size
        V = self._windows(X)
        positions = [(a, b) for a in range(k) for b in range(k)]
        shape = V[:, :, 0, :, 0].shape
        buffer = self.scratch if training else fresh
        Y = buffer("Y", shape, X.dtype)
        argmax = buffer("argmax", shape, np.uint8) if training or keep else None
        took = buffer("took", shape, bool) if training or keep else None

        def samples(start: int, stop: int) -> None:
            v, y = V[start:stop], Y[start:stop]
            y[...] = v[:, :, 0, :, 0]
            if argmax is None:
                for a, b in positions[1:]:
                    np.maximum(y, v[:, :, a, :, b], out=y)
                return
            best, over = argmax[start:stop], took[start:stop]  # type: ignore[index]
            best[...] = 0
            for t, (a, b) in enumerate(positions[1:], start=1):
                np.greater(v[:, :, a, :, b], y, out=over)  # strictly greater: ties keep the earlier position
                np.maximum(y, v[:, :, a, :, b], out=y)
                # t grows with the sweep, so the largest t that took over is the window's first maximum.
                np.maximum(best, over.view(np.uint8) * np.uint8(t), out=best)

        self.pool.run(samples, X.shape[0], size=X[0].size * (3 if training else 1))
        return Y, None if argmax is None else PoolCache(X.shape, argmax, fresh=not training)

    def backward(self, dY: Array, cache: PoolCache, grads: Views, *, need_dX: bool = True) -> Array | None:
        """dX (m, H, W, C): dY at each window's first maximum, 0 elsewhere; split over the threads by samples."""
        if not need_dX:
            return None
        m, H, W, C = cache.input_shape
        k = self.size
        dX = np.empty(cache.input_shape, dY.dtype) if cache.fresh else self.scratch("dX", cache.input_shape, dY.dtype)
        dV = self._windows(dX)

        def samples(start: int, stop: int) -> None:
            if H % k or W % k:
                dX[start:stop] = 0.0  # the dropped rows and columns get no gradient
            for a in range(k):
                for b in range(k):
                    hit = cache.argmax[start:stop] == a * k + b
                    np.multiply(dY[start:stop], hit, out=dV[start:stop, :, a, :, b])

        self.pool.run(samples, m, size=H * W * C * 2)
        return dX
