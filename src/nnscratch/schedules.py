"""Learning-rate schedules: the rate η as a function of training progress.

``rate(base, epoch)`` takes the base rate and the (fractional) epoch, e.g. 2.5 halfway through the
third epoch, so a schedule changes the rate smoothly within an epoch where it is continuous.

* ``constant``  η
* ``step``      η · γ^floor(epoch / every)            (γ = 0.1 every 10 epochs by default)
* ``cosine``    η_min + (η - η_min)(1 + cos(π · epoch / epochs)) / 2
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnscratch.errors import SpecError

SCHEDULES = ("constant", "step", "cosine")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule; see the module docstring for the formulas."""

    kind: str = "constant"
    epochs: int = 1
    every: float = 10.0
    gamma: float = 0.1
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise SpecError(f"unknown schedule {self.kind!r}; choose one of: {', '.join(SCHEDULES)}")
        if self.every <= 0 or not 0 < self.gamma <= 1:
            raise SpecError("step schedule needs every > 0 and 0 < gamma <= 1")

    def rate(self, base: float, epoch: float) -> float:
        if self.kind == "step":
            return base * self.gamma ** math.floor(epoch / self.every)
        if self.kind == "cosine":
            progress = min(epoch / max(self.epochs, 1), 1.0)
            low = base * self.min_factor
            return low + (base - low) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return base
