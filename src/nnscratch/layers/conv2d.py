"""The 2-D convolution layer, forward beside backward, as im2col + one matrix product.

Legend: m = batch size, C = input channels, F = filters (output channels), k = kernel side,
s = stride, p = zero padding, H×W input, Ho×Wo output, K = k·k·C, M = m·Ho·Wo.
Images are channels-last, X (m, H, W, C); the filters are W (k, k, C, F) and the bias b (F,).

::

    forward:   Y[n, y, x, f] = b[f] + Σ_{i,j,c} Xp[n, s·y + i, s·x + j, c] · W[i, j, c, f]
               (a cross-correlation, as PyTorch's Conv2d and ONNX's Conv compute; Xp is X zero-padded by p)
               With the patches as the rows of a column matrix Xc (M, K):   Y = Xc W + b    (M, F)
    backward:  dW = Xcᵀ dY        (K, F)    the same product as a dense layer's, patch by patch
               db = Σ_rows dY     (F,)
               dXc = dY Wᵀ        (M, K)    then dX = col2im(dXc): every patch gradient is added back
                                            onto the pixels it was copied from (a pixel in several
                                            patches gets the sum), and the padding is cut off.

Ho = (H + 2p - k) // s + 1, and the same for Wo.

Why it is fast:

* The column matrix has one extra column of ones, and the parameter buffer holds W (K, F) directly
  followed by b (F,), so [W; b] is one (K + 1, F) matrix ``Wb``: the product Xc Wb adds the bias,
  and Xcᵀ dY written into the gradient's ``Wb`` view computes db in the same pass.  A separate
  bias add and column sum over the (M, F) output cost more than the whole product for a first
  layer (0.5 + 1.1 ms against 0.35 ms for 86,528×9 by 9×32).
* While training, the column matrix, the padded input, the output and dX are buffers reused from
  step to step (``Layer.scratch``).
* dX is skipped where nothing below has parameters (the first layer: its input is the data).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import numpy as np

from nnscratch.errors import check_name
from nnscratch.initializers import INITIALIZERS, get_initializer
from nnscratch.layers._im2col import col2im, im2col
from nnscratch.layers.base import Array, Layer, Shape, Views, check_size, fresh, spec_int
from nnscratch.parallel import GEMM_COST

TOKEN = re.compile(r"^conv([0-9]+)k([0-9]+)(?:s([0-9]+))?(?:p([0-9]+))?\Z")  # ASCII digits only: not ３


class ConvCache(NamedTuple):
    columns: Array  # Xc with its ones column, (M, K + 1)
    batch: int  # m


class Conv2D(Layer):
    """``filters`` k×k filters with stride ``stride`` and zero padding ``padding``, plus a bias per filter."""

    kind = "conv2d"
    grammar = "conv{F}k{K}[s{S}][p{P}]"
    weighted = True

    def __init__(self, filters: int, kernel: int, stride: int = 1, padding: int = 0, *, init: str | None = None):
        super().__init__()
        for name, value, low in (
            ("filters", filters, 1),
            ("kernel", kernel, 1),
            ("stride", stride, 1),
            ("padding", padding, 0),
        ):
            check_size(value, f"a convolution's {name}", low=low)
        if init is not None:
            check_name(INITIALIZERS, init, "initialiser")
        self.filters, self.kernel, self.stride, self.padding, self.init = filters, kernel, stride, padding, init

    @classmethod
    def parse(cls, token: str) -> Conv2D | None:
        """``conv32k3``, ``conv32k3p1``, ``conv16k5s2p2``; None if ``token`` is not a convolution."""
        match = TOKEN.match(token)
        if not match:
            return None
        filters, kernel, stride, padding = match.groups()
        return cls(
            spec_int(filters, "number of filters", token),
            spec_int(kernel, "kernel size", token),
            spec_int(stride or "1", "stride", token),
            spec_int(padding or "0", "padding", token, low=0),
        )

    @property
    def token(self) -> str:
        text = f"conv{self.filters}k{self.kernel}"
        if self.stride != 1:
            text += f"s{self.stride}"
        if self.padding:
            text += f"p{self.padding}"
        return text

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "filters": self.filters,
            "kernel": self.kernel,
            "stride": self.stride,
            "padding": self.padding,
            "init": self.init,
        }

    def output_shape_for(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise self.refuse(input_shape, "a convolution needs an image input such as 1x28x28")
        _, H, W = input_shape
        k, s, p = self.kernel, self.stride, self.padding
        if k > H + 2 * p or k > W + 2 * p:
            raise self.refuse(
                input_shape, f"the {k}×{k} kernel is larger than the {H + 2 * p}×{W + 2 * p} padded image"
            )
        return (self.filters, (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1)

    def example_values(self) -> int:
        """Y (Ho·Wo·F) and the im2col columns (Ho·Wo·(K + 1)), and the zero-padded input where p > 0."""
        assert self.input_shape is not None and self.output_shape is not None, "the layer is not built yet"
        C, H, W = self.input_shape
        F, Ho, Wo = self.output_shape
        p = self.padding
        padded = (H + 2 * p) * (W + 2 * p) * C if p else 0
        return Ho * Wo * (F + self.n_columns + 1) + padded

    def widest_values(self) -> int:
        """The output (Ho·Wo·F) or the im2col columns with their ones column (Ho·Wo·(K + 1)), the larger."""
        assert self.output_shape is not None, "the layer is not built yet"
        _, Ho, Wo = self.output_shape
        return max(super().widest_values(), Ho * Wo * (self.n_columns + 1))

    @property
    def n_columns(self) -> int:
        """K = k·k·C, the length of one patch."""
        assert self.input_shape is not None, "the layer is not built yet"
        return self.kernel * self.kernel * self.input_shape[0]

    def param_shapes(self) -> dict[str, Shape]:
        assert self.input_shape is not None, "the layer is not built yet"
        k = self.kernel
        return {"W": (k, k, self.input_shape[0], self.filters), "b": (self.filters,)}

    def views(self, segment: Array) -> Views:
        views = super().views(segment)
        views["Wb"] = segment.reshape(self.n_columns + 1, self.filters)  # W (K, F) with b as its last row
        return views

    @property
    def W(self) -> Array:
        return self.params["W"]

    @property
    def b(self) -> Array:
        return self.params["b"]

    def initialize(self, rng: np.random.Generator) -> None:
        init = get_initializer(self.init or "glorot")
        area = self.kernel * self.kernel
        W, b = init(self.n_columns, self.filters * area, self.params["W"].shape, rng)
        self.params["W"][...], self.params["b"][...] = W, b

    # -- computation ----------------------------------------------------------------------------

    def forward(
        self, X: Array, *, training: bool = False, rng: np.random.Generator | None = None, keep: bool = False
    ) -> tuple[Array, ConvCache]:
        """Y (m, Ho, Wo, F) from X (m, H, W, C).

        The samples are split over the threads: each chunk pads, fills its rows of the column matrix
        and multiplies them by the filters on its own.
        """
        assert self.input_shape is not None and self.output_shape is not None
        m = X.shape[0]
        C, H, W = self.input_shape
        F, Ho, Wo = self.output_shape
        k, s, p, K = self.kernel, self.stride, self.padding, self.n_columns
        buffer = self.scratch if training else fresh
        # The padding border stays zero and the ones column one: only the rest is written, every step.
        Xp = buffer("padded", (m, H + 2 * p, W + 2 * p, C), X.dtype, fill=0.0) if p else X
        columns = buffer("columns", (m * Ho * Wo, K + 1), X.dtype, fill=1.0)
        patches = columns[:, :K].reshape(m, Ho, Wo, k, k, C)
        Y = buffer("Y", (m * Ho * Wo, F), X.dtype)
        Wb, per_sample = self.params["Wb"], Ho * Wo

        def samples(start: int, stop: int) -> None:
            if p:
                Xp[start:stop, p : p + H, p : p + W, :] = X[start:stop]
            im2col(Xp[start:stop], k, s, patches[start:stop])
            rows = slice(start * per_sample, stop * per_sample)
            np.matmul(columns[rows], Wb, out=Y[rows])

        # the work per sample: its share of the product, and the values it copies and writes (a first
        # layer's product is small, its copies are not)
        self.pool.run(samples, m, size=per_sample * ((K + 1) * F // GEMM_COST + K + 1 + F))
        return Y.reshape(m, Ho, Wo, F), ConvCache(columns, m)

    def backward(self, dY: Array, cache: ConvCache, grads: Views, *, need_dX: bool = True) -> Array | None:
        """dW and db into ``grads`` (as one product), and dX (m, H, W, C) from dY (m, Ho, Wo, F).

        [dW; db] = Xcᵀ dY is split over the threads by the batch's rows, each a partial sum; dX by
        samples, each chunk its own products and col2im.
        """
        assert self.input_shape is not None and self.output_shape is not None
        F, Ho, Wo = self.output_shape
        dY2 = dY.reshape(-1, F)
        # Split over the rows of the batch, each thread's product summing its own rows; then the
        # partial [dW; db] are added in chunk order.  (Split by the K + 1 rows of dW instead, a first
        # layer's 10 rows make two skinny products that measured 2.2× slower.)
        columns = cache.columns
        parts = self.pool.run(
            lambda start, stop: columns[start:stop].T @ dY2[start:stop],
            columns.shape[0],
            size=columns.shape[1] * F // GEMM_COST + columns.shape[1] + F,  # the product, and both operands read
        )
        dWb = grads["Wb"]
        dWb[...] = parts[0]
        for part in parts[1:]:
            dWb += part
        if not need_dX:
            return None
        C, H, W = self.input_shape
        k, s, p, m = self.kernel, self.stride, self.padding, cache.batch
        # One product per kernel offset, each (M, F) by (F, C), gives the column gradients as k·k
        # contiguous planes for col2im.  The filters are copied transposed first (K·F values, tiny):
        # a product with a non-contiguous transposed operand measured 1.6× slower.
        Wt = np.ascontiguousarray(self.params["W"].transpose(0, 1, 3, 2)).reshape(k * k, F, C)
        per_sample = Ho * Wo
        planes = self.scratch("planes", (k * k, m * per_sample, C), dY2.dtype)
        dXp = self.scratch("dX", (m, H + 2 * p, W + 2 * p, C), dY2.dtype)

        def samples(start: int, stop: int) -> None:
            rows = slice(start * per_sample, stop * per_sample)
            for t in range(k * k):
                np.matmul(dY2[rows], Wt[t], out=planes[t, rows])
            col2im(planes[:, rows].reshape(k * k, stop - start, Ho, Wo, C), k, s, dXp[start:stop])

        self.pool.run(samples, m, size=per_sample * (k * k * F * C // GEMM_COST + 2 * k * k * C))
        return dXp[:, p : p + H, p : p + W, :] if p else dXp
