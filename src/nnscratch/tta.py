"""Test-time augmentation: the average of a network's answers over small shifts of each image.

The network reads each image N times, moved by whole pixels (the first N of: as it is, one pixel right,
left, down, up, then the four diagonals; what leaves the 28×28 frame is dropped and zeros come in), and
the answer is the mean of the N calibrated probability vectors.  The verdict ("digit", "not sure", "not a
digit") is taken from the mean of the N logit vectors.  N = 1 is the single pass.

A digit the network reads one way from one position and another way from the next is a borderline case;
averaging over positions smooths that, and costs N forward passes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nnscratch.calibration import Calibration
from nnscratch.errors import SpecError
from nnscratch.network import Network

SHIFTS = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1))  # (rows, columns)
MAX_SHIFTS = len(SHIFTS)

Array = npt.NDArray[np.floating]


def check_count(n: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_SHIFTS:
        raise SpecError(f"test-time augmentation takes 1 to {MAX_SHIFTS} shifts, got {n!r}")
    return n


def shifted(images: Array, dy: int, dx: int) -> Array:
    """images (m, H, W) moved down by dy and right by dx whole pixels, zeros coming in."""
    out = np.zeros_like(images)
    H, W = images.shape[1:]
    out[:, max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)] = images[
        :, max(-dy, 0) : H + min(-dy, 0), max(-dx, 0) : W + min(-dx, 0)
    ]
    return out


def answers(net: Network, X: npt.ArrayLike, n: int) -> tuple[Array, list[str]]:
    """(probabilities (m, k), verdicts) of ``net`` for X (flat rows or images of one channel), averaged over
    the first ``n`` shifts of :data:`SHIFTS`."""
    from nnscratch.training import image_side

    check_count(n)
    H, W = image_side(net)
    images = np.asarray(net.check_input(X)).reshape(-1, H, W)
    calibration = net.calibration or Calibration()
    logits = [net.all_logits(shifted(images, dy, dx).reshape(len(images), -1)) for dy, dx in SHIFTS[:n]]
    P = np.mean([calibration.probabilities(Z) for Z in logits], axis=0)
    return P, calibration.verdicts(np.mean(logits, axis=0))
