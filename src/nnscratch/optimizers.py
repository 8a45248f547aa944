"""Optimisers that update the network's flat parameter vector in place.

Each holds its state explicitly (``state()`` / ``load_state()``), so a checkpoint can resume a run bit
for bit.  ``step(params, grad, lr)`` takes the flat parameters θ and gradient g (same shape) and the
learning rate η for this step (a schedule may change it every step).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from nnscratch.errors import SpecError

Array = npt.NDArray[np.floating]


class Optimizer:
    name: ClassVar[str]

    def step(self, params: Array, grad: Array, lr: float) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Arrays and counters needed to continue exactly where this optimiser stopped."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""


class SGD(Optimizer):
    """Plain gradient descent.  θ ← θ - η g."""

    name = "sgd"

    def step(self, params: Array, grad: Array, lr: float) -> None:
        grad *= lr
        params -= grad


class Momentum(Optimizer):
    """Gradient descent with (heavy-ball or Nesterov) momentum μ, in PyTorch's form.

    v ← μ v + g
    heavy ball: θ ← θ - η v
    Nesterov:   θ ← θ - η (g + μ v)   (the gradient taken at the look-ahead point, rewritten so that
                                       only the current θ is ever stored)
    """

    name = "momentum"

    def __init__(self, momentum: float = 0.9, *, nesterov: bool = False) -> None:
        if not 0.0 <= momentum < 1.0:
            raise SpecError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocity: Array | None = None

    def step(self, params: Array, grad: Array, lr: float) -> None:
        if self.velocity is None:
            self.velocity = np.zeros_like(params)
        v = self.velocity
        v *= self.momentum
        v += grad
        if self.nesterov:
            grad += self.momentum * v
            grad *= lr
            params -= grad
        else:
            params -= lr * v

    def state(self) -> dict[str, Any]:
        return {} if self.velocity is None else {"velocity": self.velocity.copy()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.velocity = state["velocity"].copy() if "velocity" in state else None


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction.

    m ← β1 m + (1 - β1) g          v ← β2 v + (1 - β2) g²
    θ ← θ - η · m̂ / (sqrt(v̂) + ε)   with m̂ = m / (1 - β1^t), v̂ = v / (1 - β2^t)

    The two corrections are folded into one step size η_t = η sqrt(1 - β2^t) / (1 - β1^t) and
    ε_t = ε sqrt(1 - β2^t), which is algebraically the same update with two fewer vector operations.
    """

    name = "adam"

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        for label, value in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= value < 1.0:
                raise SpecError(f"{label} must be in [0, 1), got {value}")
        if eps <= 0:
            raise SpecError(f"eps must be positive, got {eps}")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.m: Array | None = None
        self.v: Array | None = None
        self._tmp: Array | None = None

    def step(self, params: Array, grad: Array, lr: float) -> None:
        if self.m is None or self.v is None or self._tmp is None:
            self.m, self.v, self._tmp = (np.zeros_like(params) for _ in range(3))
        self.t += 1
        m, v, tmp = self.m, self.v, self._tmp
        b1, b2 = self.beta1, self.beta2
        m *= b1
        np.multiply(grad, 1.0 - b1, out=tmp)
        m += tmp
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - b2
        v *= b2
        v += tmp
        correction2 = (1.0 - b2**self.t) ** 0.5
        step_size = lr * correction2 / (1.0 - b1**self.t)
        np.sqrt(v, out=tmp)
        tmp += self.eps * correction2
        np.divide(m, tmp, out=tmp)
        tmp *= step_size
        params -= tmp

    def state(self) -> dict[str, Any]:
        if self.m is None or self.v is None:
            return {"t": self.t}
        return {"t": self.t, "m": self.m.copy(), "v": self.v.copy()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.t = int(state.get("t", 0))
        if "m" in state:
            self.m, self.v = state["m"].copy(), state["v"].copy()
            self._tmp = np.empty_like(self.m)
        else:
            self.m = self.v = self._tmp = None


OPTIMIZERS: dict[str, type[Optimizer]] = {cls.name: cls for cls in (SGD, Momentum, Adam)}
OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adam")


def make_optimizer(name: str, *, momentum: float = 0.9) -> Optimizer:
    """An optimiser by name: sgd, momentum, nesterov or adam."""
    key = name.strip().lower()
    if key == "sgd":
        return SGD()
    if key == "momentum":
        return Momentum(momentum)
    if key == "nesterov":
        return Momentum(momentum, nesterov=True)
    if key == "adam":
        return Adam()
    raise SpecError(f"unknown optimiser {name!r}; choose one of: {', '.join(OPTIMIZER_NAMES)}")
