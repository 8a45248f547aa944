"""Adversarial examples: the smallest pushes of the pixels that change the answer, from the input gradient.

Legend: x an input with values in [0, 1], y its label, L(x) the cross-entropy of the network's answer for y,
g = ∂L/∂x (``Network.input_gradient``), ε the largest change allowed to any one pixel (an L∞ ball).

* **FGSM**, the fast gradient sign method (Goodfellow, Shlens and Szegedy, 2015): one step to the corner of
  the ball where the loss grows fastest to first order,

      x_adv = clip(x + ε · sign(g(x)), 0, 1)

* **PGD**, projected gradient descent on the loss (Madry et al., 2018): ``steps`` signed steps of size
  α (2.5 ε / steps by default), each projected back onto the ball around x and onto [0, 1],

      x_{k+1} = clip(clip(x_k + α · sign(g(x_k)), x − ε, x + ε), 0, 1)

  from x itself, or (``random_start``) from a uniform point of the ball, as adversarial training does.

Both move every pixel by at most ε, and keep it a pixel.  The loss is measured in prediction mode (batch
norm on its running statistics, no dropout).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nnscratch.errors import check_name
from nnscratch.network import Network

METHODS = ("fgsm", "pgd")
PGD_STEPS = 40
MAX_STEPS = 1000

Array = npt.NDArray[np.floating]


def check_epsilon(epsilon: float) -> float:
    if not (isinstance(epsilon, int | float) and not isinstance(epsilon, bool) and 0 <= epsilon <= 1):
        raise ValueError(f"epsilon must be a number in [0, 1] (pixels are in [0, 1]), got {epsilon!r}")
    return float(epsilon)


def fgsm(net: Network, X: npt.ArrayLike, y: npt.ArrayLike, epsilon: float) -> Array:
    """X moved by ε · sign(∂L/∂X) and clipped to [0, 1], in the layout of X."""
    epsilon = check_epsilon(epsilon)
    X = np.asarray(X, dtype=net.dtype)
    step = np.sign(net.input_gradient(X, y))
    return np.clip(X + X.dtype.type(epsilon) * step, 0.0, 1.0)


def pgd(
    net: Network,
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    epsilon: float,
    *,
    steps: int = PGD_STEPS,
    step_size: float | None = None,
    random_start: bool = False,
    rng: np.random.Generator | None = None,
) -> Array:
    """``steps`` projected signed-gradient steps of size ``step_size`` (default 2.5 ε / steps) within ε of X."""
    epsilon = check_epsilon(epsilon)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be a whole number from 1 to {MAX_STEPS:,}, got {steps!r}")
    X = np.asarray(X, dtype=net.dtype)
    alpha = X.dtype.type(2.5 * epsilon / steps if step_size is None else step_size)
    eps = X.dtype.type(epsilon)
    low, high = np.clip(X - eps, 0.0, 1.0), np.clip(X + eps, 0.0, 1.0)
    current = X.copy()
    if random_start:
        current += (rng or np.random.default_rng()).uniform(-epsilon, epsilon, X.shape).astype(X.dtype)
        np.clip(current, low, high, out=current)
    for _ in range(steps):
        current += alpha * np.sign(net.input_gradient(current, y))
        np.clip(current, low, high, out=current)
    return current


def attack(
    net: Network,
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    epsilon: float,
    method: str = "fgsm",
    *,
    steps: int = PGD_STEPS,
    random_start: bool = False,
    rng: np.random.Generator | None = None,
) -> Array:
    """``fgsm`` or ``pgd`` by name."""
    check_name(METHODS, method, "attack")
    if method == "fgsm":
        return fgsm(net, X, y, epsilon)
    return pgd(net, X, y, epsilon, steps=steps, random_start=random_start, rng=rng)
