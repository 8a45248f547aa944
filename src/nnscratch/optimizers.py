"""Optimisers that update the network's flat parameter vector in place.

Each holds its state explicitly (``state()`` / ``load_state()``), so a checkpoint can resume a run bit
for bit.  ``step(params, grad, lr)`` takes the flat parameters θ and gradient g (same shape) and the
learning rate η for this step (a schedule may change it every step).  Every update is elementwise, so
the flat vector is split into runs over ``pool``'s threads (see ``nnscratch.parallel``) with results
that do not depend on their number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from nnscratch.errors import SpecError, lookup
from nnscratch.parallel import Threads, thread_pool

Array = npt.NDArray[np.floating]


class Optimizer:
    name: ClassVar[str]
    arrays: ClassVar[tuple[str, ...]] = ()  # the arrays of its state, each shaped like the parameters
    pool: Threads = thread_pool(1)  # the trainer sets the network's

    def step(self, params: Array, grad: Array, lr: float) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Arrays and counters needed to continue exactly where this optimiser stopped."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned; raises SpecError naming a missing or malformed entry."""


def _state_array(state: dict[str, Any], key: str, optimizer: str) -> Array:
    """``state[key]`` as a copy, checked: a flat array of finite floating-point values."""
    value = state[key]
    if not isinstance(value, np.ndarray) or value.ndim != 1 or not np.issubdtype(value.dtype, np.floating):
        raise SpecError(f"{optimizer}'s state {key} must be a flat floating-point array, got {_describe(value)}")
    if not np.all(np.isfinite(value)):
        raise SpecError(f"{optimizer}'s state {key} holds NaN or infinite values")
    return value.copy()


def _describe(value: Any) -> str:
    return f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else repr(value)


class SGD(Optimizer):
    """Plain gradient descent.  θ ← θ - η g."""

    name = "sgd"

    def step(self, params: Array, grad: Array, lr: float) -> None:
        def run(a: int, b: int) -> None:
            grad[a:b] *= lr
            params[a:b] -= grad[a:b]

        self.pool.run(run, params.size)


class Momentum(Optimizer):
    """Gradient descent with (heavy-ball or Nesterov) momentum μ, in PyTorch's form.

    ::

        v ← μ v + g
        heavy ball: θ ← θ - η v
        Nesterov:   θ ← θ - η (g + μ v)   (the gradient taken at the look-ahead point, rewritten so that
                                           only the current θ is ever stored)
    """

    name = "momentum"
    arrays = ("velocity",)

    def __init__(self, momentum: float = 0.9, *, nesterov: bool = False) -> None:
        if not 0.0 <= momentum < 1.0:
            raise SpecError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocity: Array | None = None

    def step(self, params: Array, grad: Array, lr: float) -> None:
        if self.velocity is None:
            self.velocity = np.zeros_like(params)
        velocity, mu = self.velocity, self.momentum

        def run(a: int, b: int) -> None:
            v, g = velocity[a:b], grad[a:b]
            v *= mu
            v += g
            if self.nesterov:
                g += mu * v
                g *= lr
                params[a:b] -= g
            else:
                params[a:b] -= lr * v

        self.pool.run(run, params.size, size=3)

    def state(self) -> dict[str, Any]:
        return {} if self.velocity is None else {"velocity": self.velocity.copy()}

    def load_state(self, state: dict[str, Any]) -> None:
        # no velocity: no step taken yet
        self.velocity = _state_array(state, "velocity", self.name) if "velocity" in state else None


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction.

    m ← β1 m + (1 - β1) g          v ← β2 v + (1 - β2) g²
    θ ← θ - η · m̂ / (sqrt(v̂) + ε)   with m̂ = m / (1 - β1^t), v̂ = v / (1 - β2^t)

    The update makes ten passes over the parameters instead of the textbook's fourteen.  It keeps
    M = m / (1 - β1) and V = v / (1 - β2), whose recurrences M ← β1 M + g and V ← β2 V + g² need no
    scaling of g, and folds every scalar (the two factors and both bias corrections) into one step
    size and one ε:

    θ ← θ - η_t · M / (sqrt(V) + ε_t),   η_t = η (1 - β1) / (1 - β1^t) · sqrt(1 - β2^t) / sqrt(1 - β2)
                                         ε_t = ε sqrt(1 - β2^t) / sqrt(1 - β2)

    which is algebraically the same update.  ``state()`` holds M and V as they are, so a resumed run
    continues bit for bit; the textbook moments are m = (1 - β1) M and v = (1 - β2) V.
    """

    name = "adam"
    arrays = ("M", "V")

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        for label, value in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= value < 1.0:
                raise SpecError(f"{label} must be in [0, 1), got {value}")
        if eps <= 0:
            raise SpecError(f"eps must be positive, got {eps}")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.M: Array | None = None
        self.V: Array | None = None
        self._tmp: Array | None = None

    def step(self, params: Array, grad: Array, lr: float) -> None:
        if self.M is None or self.V is None or self._tmp is None:
            self.M, self.V, self._tmp = (np.zeros_like(params) for _ in range(3))
        self.t += 1
        M, V, tmp = self.M, self.V, self._tmp
        b1, b2 = self.beta1, self.beta2
        root = ((1.0 - b2**self.t) / (1.0 - b2)) ** 0.5
        step_size = lr * (1.0 - b1) / (1.0 - b1**self.t) * root
        eps = self.eps * root

        def run(a: int, c: int) -> None:
            m, v, u, g = M[a:c], V[a:c], tmp[a:c], grad[a:c]
            m *= b1
            m += g
            np.multiply(g, g, out=u)
            v *= b2
            v += u
            np.sqrt(v, out=u)
            u += eps
            np.divide(m, u, out=u)
            u *= step_size
            params[a:c] -= u

        self.pool.run(run, params.size, size=10)

    def state(self) -> dict[str, Any]:
        if self.M is None or self.V is None:
            return {"t": self.t}
        return {"t": self.t, "M": self.M.copy(), "V": self.V.copy()}

    def load_state(self, state: dict[str, Any]) -> None:
        # t = 0 is a fresh optimiser with no moments; after t steps both moments exist (and V, a sum of
        # squares, is >= 0: its square root divides the step).
        t = state.get("t")
        if not isinstance(t, int | np.integer) or isinstance(t, bool) or t < 0:
            raise SpecError(f"{self.name}'s step count t must be an integer >= 0, got {t!r}")
        if t == 0:
            if "M" in state or "V" in state:
                raise SpecError(f"{self.name}'s state has moments M and V but a step count t of 0")
            self.t, self.M, self.V, self._tmp = 0, None, None, None
            return
        missing = [key for key in self.arrays if key not in state]
        if missing:
            raise SpecError(f"{self.name}'s state after {t} steps lacks the moment {' and '.join(missing)}")
        M, V = _state_array(state, "M", self.name), _state_array(state, "V", self.name)
        if M.shape != V.shape:
            raise SpecError(f"{self.name}'s moments M and V differ in shape: {M.shape} and {V.shape}")
        if np.any(V < 0):
            raise SpecError(f"{self.name}'s second moment V has negative values (a sum of squares cannot)")
        self.t, self.M, self.V, self._tmp = int(t), M, V, np.empty_like(M)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization").

    θ ← θ (1 - η λ)  for the weights,  then Adam's step (as above)

    The decay shrinks the weights directly instead of being added to the gradient: added to the
    gradient (L2), Adam divides it by sqrt(v̂) like everything else, so weights with large gradients
    would be decayed less.  ``decayed`` lists the (start, stop) runs of the flat vector that are
    weights (dense and convolutional W); biases and batch norm's γ and β are not decayed.  PyTorch's
    ``AdamW`` applies the same factor, before the Adam step.
    """

    name = "adamw"

    def __init__(self, weight_decay: float, decayed: Sequence[tuple[int, int]] = (), **adam: float) -> None:
        super().__init__(**adam)
        if not (weight_decay >= 0 and math.isfinite(weight_decay)):
            raise SpecError(f"weight decay must be a number >= 0, got {weight_decay!r}")
        self.weight_decay, self.decayed = weight_decay, list(decayed)

    def step(self, params: Array, grad: Array, lr: float) -> None:
        shrink = 1.0 - lr * self.weight_decay
        for start, stop in self.decayed:
            params[start:stop] *= shrink
        super().step(params, grad, lr)


# Every optimiser by name, made from the settings that any of them reads: (μ, weight decay, decayed runs).
OPTIMIZERS: dict[str, Callable[[float, float, Sequence[tuple[int, int]]], Optimizer]] = {
    "sgd": lambda momentum, weight_decay, decayed: SGD(),
    "momentum": lambda momentum, weight_decay, decayed: Momentum(momentum),
    "nesterov": lambda momentum, weight_decay, decayed: Momentum(momentum, nesterov=True),
    "adam": lambda momentum, weight_decay, decayed: Adam(),
    "adamw": lambda momentum, weight_decay, decayed: AdamW(weight_decay, decayed),
}
OPTIMIZER_NAMES = tuple(OPTIMIZERS)


def make_optimizer(
    name: str, *, momentum: float = 0.9, weight_decay: float = 0.0, decayed: Sequence[tuple[int, int]] = ()
) -> Optimizer:
    """An optimiser by name: sgd, momentum, nesterov, adam or adamw (which decays the ``decayed`` runs)."""
    return lookup(OPTIMIZERS, name.strip().lower(), "optimiser")(momentum, weight_decay, decayed)
