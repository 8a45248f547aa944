"""im2col and col2im for channels-last images: the data movement around a convolution's matrix products.

Legend: m = batch size, H×W = (padded) input, C = input channels, k = kernel side, s = stride,
Ho×Wo = output, K = k·k·C, M = m·Ho·Wo.

im2col copies every k×k×C input patch into one row of a column matrix (M, K), in (i, j, c) order,
so that a convolution is one matrix product with the filters (K, F).  col2im is its adjoint: it adds
each of the k·k (m, Ho, Wo, C) planes of column gradients back onto the input positions they were
copied from.

Both move whole planes at a time, never a pixel or a sample in a Python loop (Chainer's
``utils/conv.py`` shape).  The measured choices on a 2-core CPU, batch 128:

* im2col with many channels copies through one strided ``sliding_window_view`` (0.7 ms for
  13×13×32 inputs, against 1.6 ms for k·k slice copies): the inner C values are contiguous on
  both sides.  With one or two channels the k·k slice copies win (0.36 ms against 0.94 ms for
  28×28×1), because the window view's inner run is a single value.
* col2im takes its column gradients as k·k contiguous planes, each the product of dY with one
  kernel offset's filters, so each add runs over rows of Wo·C contiguous values (2.2 ms for
  11×11 → 13×13×32) instead of runs of C values scattered K apart (5.2 ms).  No ``np.add.at``:
  the offsets are a fixed, small set, so plain slice adds are exact and an order of magnitude faster.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

Array = npt.NDArray[np.floating]

FEW_CHANNELS = 4  # below this many input channels, k·k slice copies beat the window view


def im2col(Xp: Array, k: int, s: int, out: Array) -> None:
    """Fill ``out`` (m, Ho, Wo, k, k, C), a view into the column matrix, with the patches of Xp (m, H, W, C)."""
    m, Ho, Wo = out.shape[:3]
    if Xp.shape[3] < FEW_CHANNELS:
        for i in range(k):
            for j in range(k):
                out[:, :, :, i, j, :] = Xp[:, i : i + s * Ho : s, j : j + s * Wo : s, :]
    else:
        windows = sliding_window_view(Xp, (k, k), axis=(1, 2))[:, : s * Ho : s, : s * Wo : s]  # m, Ho, Wo, C, k, k
        np.copyto(out, windows.transpose(0, 1, 2, 4, 5, 3))


def col2im(planes: Array, k: int, s: int, out: Array) -> None:
    """Add the k·k planes (k·k, m, Ho, Wo, C) of column gradients onto ``out`` (m, H, W, C), zeroed first.

    Plane i·k + j holds the gradient of the input pixels that kernel offset (i, j) read.
    """
    _, m, Ho, Wo, _ = planes.shape
    out[...] = 0.0
    for i in range(k):
        for j in range(k):
            out[:, i : i + s * Ho : s, j : j + s * Wo : s, :] += planes[i * k + j]
