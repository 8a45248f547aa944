"""Learning-rate schedules: the rate η as a function of training progress.

``rate(base, epoch)`` takes the base rate and the (fractional) epoch, e.g. 2.5 halfway through the
third epoch, so a schedule changes the rate smoothly within an epoch where it is continuous.

* ``constant``  η
* ``step``      η · γ^floor(epoch / every)            (γ = 0.1 every 10 epochs by default)
* ``cosine``    η_min + (η - η_min)(1 + cos(π · epoch / epochs)) / 2
* ``wsd``       warmup-stable-decay without warmup: η until the last ``decay_fraction`` (20%) of training,
                then linearly down to η_min.  It learns at the full rate for most of the run and
                settles at the end, whatever the number of epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnscratch.errors import SpecError, check_name

SCHEDULES = ("constant", "step", "cosine", "wsd")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule; see the module docstring for the formulas."""

    kind: str = "constant"
    epochs: int = 1
    every: float = 10.0
    gamma: float = 0.1
    min_factor: float = 0.0
    decay_fraction: float = 0.2

    def __post_init__(self) -> None:
        check_name(SCHEDULES, self.kind, "schedule")
        if not 0 < self.decay_fraction <= 1:
            raise SpecError(f"decay fraction must be in (0, 1], got {self.decay_fraction}")
        if self.every <= 0 or not 0 < self.gamma <= 1:
            raise SpecError("step schedule needs every > 0 and 0 < gamma <= 1")

    def rate(self, base: float, epoch: float) -> float:
        if self.kind == "step":
            return base * self.gamma ** math.floor(epoch / self.every)
        if self.kind == "cosine":
            progress = min(epoch / max(self.epochs, 1), 1.0)
            low = base * self.min_factor
            return low + (base - low) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.kind == "wsd":
            progress = min(epoch / max(self.epochs, 1), 1.0)
            remaining = (1.0 - progress) / self.decay_fraction
            low = base * self.min_factor
            return low + (base - low) * min(remaining, 1.0)
        return base
