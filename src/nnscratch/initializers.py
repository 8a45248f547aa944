"""Weight initialisers: each draws W of shape (n_in, n_out) and b of shape (n_out,).

By default each layer uses the initialiser that suits its activation (``Activation.default_init``):

* ``he``      W ~ N(0, 2 / n_in)                          (He et al. 2015; ReLU halves the variance)
* ``glorot``  W ~ U(-l, l), l = sqrt(6 / (n_in + n_out))  (Glorot & Bengio 2010; sigmoid, tanh, softmax)
* ``lecun``   W ~ N(0, 1 / n_in)                          (LeCun 1998; what SELU's self-normalisation assumes)
* ``uniform`` W, b ~ U(-a, a), a = 0.3 by default         (the original notebook's initialisation)

Biases start at zero except under ``uniform``.  Every initialiser takes an explicit
``numpy.random.Generator`` so the same seed always gives the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from nnscratch.errors import SpecError

Array = npt.NDArray[np.floating]
Init = Callable[[int, int, np.random.Generator], tuple[Array, Array]]


def he(n_in: int, n_out: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """He normal: W ~ N(0, 2/n_in), b = 0."""
    return rng.normal(0.0, math.sqrt(2.0 / n_in), (n_in, n_out)), np.zeros(n_out)


def glorot(n_in: int, n_out: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """Glorot uniform: W ~ U(-l, l) with l = sqrt(6/(n_in + n_out)), b = 0."""
    limit = math.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, (n_in, n_out)), np.zeros(n_out)


def lecun(n_in: int, n_out: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """LeCun normal: W ~ N(0, 1/n_in), b = 0."""
    return rng.normal(0.0, math.sqrt(1.0 / n_in), (n_in, n_out)), np.zeros(n_out)


def uniform(n_in: int, n_out: int, rng: np.random.Generator, scale: float = 0.3) -> tuple[Array, Array]:
    """Uniform in ±scale for weights *and* biases, as the original notebook initialised its network."""
    return rng.uniform(-scale, scale, (n_in, n_out)), rng.uniform(-scale, scale, n_out)


INITIALIZERS: dict[str, Init] = {"he": he, "glorot": glorot, "lecun": lecun, "uniform": uniform}


def get_initializer(name: str) -> Init:
    """Return the initialiser called ``name``."""
    key = name.strip().lower()
    if key not in INITIALIZERS:
        raise SpecError(f"unknown initialiser {name!r}; choose one of: {', '.join(INITIALIZERS)}")
    return INITIALIZERS[key]
