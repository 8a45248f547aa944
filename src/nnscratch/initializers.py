"""Weight initialisers: each draws a layer's weights W and its bias b (one value per output unit).

A dense layer's W is (n_in, n_out); a convolution's is (kh, kw, C, F).  Each initialiser is
written in terms of the layer's fan-in and fan-out: n_in and n_out for a dense layer, C·kh·kw and
F·kh·kw for a convolution (the inputs each output sees, and the outputs each input reaches).

* ``he``      W ~ N(0, 2 / fan_in)                                (He et al. 2015; ReLU halves the variance)
* ``glorot``  W ~ U(-l, l), l = sqrt(6 / (fan_in + fan_out))      (Glorot & Bengio 2010; sigmoid, tanh, softmax)
* ``lecun``   W ~ N(0, 1 / fan_in)                                (LeCun 1998; what SELU's self-normalisation assumes)
* ``uniform`` W, b ~ U(-a, a), a = 0.3 by default                 (the original notebook's initialisation)

Biases start at zero except under ``uniform``.  By default each layer uses the initialiser that suits
the activation it feeds (``Activation.default_init``).  Every initialiser takes an explicit
``numpy.random.Generator`` so the same seed always gives the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from nnscratch.errors import lookup

Array = npt.NDArray[np.floating]
Shape = tuple[int, ...]
Init = Callable[[int, int, Shape, np.random.Generator], tuple[Array, Array]]


def he(fan_in: int, fan_out: int, shape: Shape, rng: np.random.Generator) -> tuple[Array, Array]:
    """He normal: W ~ N(0, 2/fan_in), b = 0."""
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), shape), np.zeros(shape[-1])


def glorot(fan_in: int, fan_out: int, shape: Shape, rng: np.random.Generator) -> tuple[Array, Array]:
    """Glorot uniform: W ~ U(-l, l) with l = sqrt(6/(fan_in + fan_out)), b = 0."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape), np.zeros(shape[-1])


def lecun(fan_in: int, fan_out: int, shape: Shape, rng: np.random.Generator) -> tuple[Array, Array]:
    """LeCun normal: W ~ N(0, 1/fan_in), b = 0."""
    return rng.normal(0.0, math.sqrt(1.0 / fan_in), shape), np.zeros(shape[-1])


def uniform(
    fan_in: int, fan_out: int, shape: Shape, rng: np.random.Generator, scale: float = 0.3
) -> tuple[Array, Array]:
    """Uniform in ±scale for weights *and* biases, as the original notebook initialised its network."""
    return rng.uniform(-scale, scale, shape), rng.uniform(-scale, scale, shape[-1])


INITIALIZERS: dict[str, Init] = {"he": he, "glorot": glorot, "lecun": lecun, "uniform": uniform}


def get_initializer(name: str) -> Init:
    """Return the initialiser called ``name``."""
    return lookup(INITIALIZERS, name.strip().lower(), "initialiser")
