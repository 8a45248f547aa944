"""Confidence you can trust: temperature scaling, the calibration error, and "not a digit".

Legend: n = examples, k = classes, Z (n, k) the logits, y (n,) the labels, P = softmax(Z / T).

**Temperature scaling** (Guo et al., 2017) divides every logit by one scalar T > 0 before the softmax.
The predicted class does not change; only how sure the network says it is.  T is the minimiser of the
validation set's mean negative log-likelihood, found in β = 1/T, where the loss is convex::

    L(β)   = (1/n) Σ_i [ log Σ_j exp(β z_ij) - β z_iy ]
    L'(β)  = (1/n) Σ_i [ E_p[z_i] - z_iy ]                        p = softmax(β z_i)
    L''(β) = (1/n) Σ_i [ E_p[z_i²] - E_p[z_i]² ]  =  the mean variance of z_i under p   (>= 0)

so L' grows with β and its root is found by bisection (in log β, between T = 1/4 and T = 20): no
step size, no divergence, 60 halvings to the float64 resolution.  A validation set the network gets
all right with growing margins has no finite optimum (L keeps falling as T → 0): T stops at 1/4.

**Expected calibration error** (ECE, 15 equal-width bins of confidence, as Guo et al.): with c_i the top
probability and B_b the examples whose c_i falls in bin b = ((b-1)/15, b/15], ::

    ECE = Σ_b (|B_b| / n) · | accuracy(B_b) - mean confidence(B_b) |

A reliability diagram draws accuracy against confidence per bin; a calibrated network sits on the diagonal.

**Out-of-distribution scores** say how digit-like an input is, higher for digits::

    probability   max_j softmax(z / T)_j                    (Hendrycks & Gimpel, 2017)
    energy        T · log Σ_j exp(z_j / T)   (minus the energy; Liu et al., 2020)

The reader keeps the one that separates its validation digits from made-up non-digits better (area
under the ROC curve), and two thresholds on it:

* "not sure" below the score that all but ``FLAG_RATE`` (1%) of the validation digits reach;
* "not a digit" below the score that ``OUTSIDE_RATE`` (95%) of the made-up non-digits stay under (never
  above the first threshold): where non-digits live.

A model calibrated without non-digits to measure against (inputs that are not 28×28 images) has no
thresholds: its answer is "not sure" when no class is more likely than not (top probability below ½).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from nnscratch.activations import softmax
from nnscratch.errors import ModelFileError, SpecError

Array = npt.NDArray[np.floating]

BINS = 15
FLAG_RATE = 0.01  # at most this share of the validation digits is flagged ("not sure" or "not a digit")
OUTSIDE_RATE = 0.95  # this share of the made-up non-digits is called "not a digit"
UNSURE_BELOW = 0.5  # without thresholds: "not sure" below this top probability
T_RANGE = (0.25, 20.0)  # a validation set with no mistakes would drive T towards 0: no sharper than ×4

SCORES = ("probability", "energy")
DIGIT, NOT_SURE, NOT_A_DIGIT = "digit", "not sure", "not a digit"
VERDICTS = (DIGIT, NOT_SURE, NOT_A_DIGIT)


def _logsumexp(Z: Array) -> Array:
    top = Z.max(axis=1)
    return top + np.log(np.exp(Z - top[:, None]).sum(axis=1))


def nll_slope(Z: Array, y: npt.NDArray[np.integer], beta: float) -> float:
    """L'(β) = mean over the examples of E_p[z] - z_y, with p = softmax(β z)."""
    P = softmax(beta * Z)
    return float(np.mean(np.einsum("ij,ij->i", P, Z) - Z[np.arange(len(y)), y]))


def fit_temperature(Z: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """The temperature T that minimises the mean negative log-likelihood of softmax(Z / T) against y.

    Z (n, k) logits and y (n,) labels of held-out examples (the validation split, never the test set).
    Taken in float64; the answer is clipped to [1/4, 20] where the loss keeps falling beyond it.
    """
    Z, y = np.asarray(Z, dtype=np.float64), np.asarray(y)
    if Z.ndim != 2 or len(Z) == 0 or y.shape != (len(Z),):
        raise ValueError(f"need logits (n, k) and n labels, got {Z.shape} and {y.shape}")
    if not np.all(np.isfinite(Z)):
        raise ValueError("the logits are not all finite; the network diverged")
    lo, hi = math.log(1 / T_RANGE[1]), math.log(1 / T_RANGE[0])  # log β
    if nll_slope(Z, y, math.exp(lo)) >= 0:
        return T_RANGE[1]
    if nll_slope(Z, y, math.exp(hi)) <= 0:
        return T_RANGE[0]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if nll_slope(Z, y, math.exp(mid)) < 0:
            lo = mid
        else:
            hi = mid
    return float(1.0 / math.exp(0.5 * (lo + hi)))


def reliability(P: npt.ArrayLike, y: npt.ArrayLike, bins: int = BINS) -> dict[str, np.ndarray]:
    """Per confidence bin ((b-1)/bins, b/bins]: how many examples, their mean confidence, their accuracy
    (NaN for an empty bin)."""
    P, y = np.asarray(P), np.asarray(y)
    confidence = P.max(axis=1)
    correct = P.argmax(axis=1) == y
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / counts
        accuracy = np.bincount(which, weights=correct, minlength=bins) / counts
    return {
        "edges": np.linspace(0.0, 1.0, bins + 1),
        "count": counts,
        "confidence": mean_confidence,
        "accuracy": accuracy,
    }


def expected_calibration_error(P: npt.ArrayLike, y: npt.ArrayLike, bins: int = BINS) -> float:
    """ECE: the mean gap between accuracy and confidence over equal-width confidence bins, weighted by count."""
    table = reliability(P, y, bins)
    used = table["count"] > 0
    gaps = np.abs(table["accuracy"][used] - table["confidence"][used])
    return float(np.sum(table["count"][used] * gaps) / np.sum(table["count"]))


def ood_score(Z: npt.ArrayLike, temperature: float, kind: str) -> Array:
    """How digit-like each row of logits is (higher: more): the top calibrated probability or minus the energy."""
    Z = np.asarray(Z, dtype=np.float64)
    if kind == "probability":
        return softmax(Z / temperature).max(axis=1)
    if kind == "energy":
        return temperature * _logsumexp(Z / temperature)
    raise ValueError(f"unknown score {kind!r}; choose one of {', '.join(SCORES)}")


def auroc(inside: npt.ArrayLike, outside: npt.ArrayLike) -> float:
    """Area under the ROC curve of a score that should be higher ``inside`` than ``outside``: the chance that
    a random inside example scores above a random outside one, ties counting one half (Mann–Whitney U)."""
    inside, outside = np.asarray(inside, dtype=np.float64), np.sort(np.asarray(outside, dtype=np.float64))
    if not len(inside) or not len(outside):
        raise ValueError("need at least one example on each side")
    below = np.searchsorted(outside, inside, side="left")
    ties = np.searchsorted(outside, inside, side="right") - below
    return float(np.sum(below + 0.5 * ties) / (len(inside) * len(outside)))


@dataclass(frozen=True)
class Calibration:
    """What a model file keeps to answer with calibrated probabilities and verdicts: the temperature, and
    the out-of-distribution score with its two thresholds (None: fitted without non-digits)."""

    temperature: float = 1.0
    score: str = "probability"
    not_sure_below: float | None = None
    not_a_digit_below: float | None = None

    def __post_init__(self) -> None:
        low, high = T_RANGE
        if not (_finite(self.temperature) and low <= self.temperature <= high):
            raise SpecError(f"the temperature must be a number in [{low}, {high:g}], got {self.temperature!r}")
        if self.score not in SCORES:
            raise SpecError(f"the out-of-distribution score must be one of {', '.join(SCORES)}, got {self.score!r}")
        sure, digit = self.not_sure_below, self.not_a_digit_below
        if (sure is None) != (digit is None):
            raise SpecError("the not-sure and not-a-digit thresholds come together: give both or neither")
        if sure is not None and digit is not None and not (_finite(sure) and _finite(digit) and digit <= sure):
            raise SpecError(f"the thresholds must be finite numbers, not-a-digit <= not-sure, got {(sure, digit)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Calibration:
        """The calibration a model file's header records (ModelFileError naming ``source`` if it is malformed)."""
        if not isinstance(data, dict) or set(data) - {f.name for f in fields(cls)}:
            raise ModelFileError(f"{source} has a corrupted calibration record; retrain the model")
        try:
            return cls(**data)
        except (SpecError, TypeError) as exc:
            raise ModelFileError(f"{source} has a corrupted calibration record ({exc}); retrain the model") from None

    def probabilities(self, Z: Array) -> Array:
        return softmax(Z / self.temperature) if self.temperature != 1.0 else softmax(Z)

    def verdicts(self, Z: npt.ArrayLike) -> list[str]:
        """ "digit", "not sure" or "not a digit" for each row of logits Z."""
        Z = np.asarray(Z, dtype=np.float64)
        if self.not_sure_below is None or self.not_a_digit_below is None:
            top = self.probabilities(Z).max(axis=1)
            return [NOT_SURE if p < UNSURE_BELOW else DIGIT for p in top]
        scores = ood_score(Z, self.temperature, self.score)
        return [
            NOT_A_DIGIT if s < self.not_a_digit_below else NOT_SURE if s < self.not_sure_below else DIGIT
            for s in scores
        ]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def calibrate(
    Z_valid: npt.ArrayLike, y_valid: npt.ArrayLike, Z_outside: npt.ArrayLike | None = None
) -> tuple[Calibration, dict[str, Any]]:
    """Fit the temperature on validation logits and labels; with the logits of made-up non-digits
    ``Z_outside``, also choose the score that separates them better and its threshold.

    Returns the calibration and a report: ECE before and after, each score's AUROC, the thresholds and the
    share of the validation digits and of the non-digits given each verdict.
    """
    Z_valid, y_valid = np.asarray(Z_valid, dtype=np.float64), np.asarray(y_valid)
    T = fit_temperature(Z_valid, y_valid)
    report: dict[str, Any] = {
        "temperature": T,
        "ece_before": expected_calibration_error(softmax(Z_valid), y_valid),
        "ece_after": expected_calibration_error(softmax(Z_valid / T), y_valid),
    }
    if Z_outside is None or not np.size(Z_outside):
        return Calibration(temperature=T), report
    separation = {kind: auroc(ood_score(Z_valid, T, kind), ood_score(Z_outside, T, kind)) for kind in SCORES}
    best = max(SCORES, key=lambda kind: separation[kind])
    inside, outside = ood_score(Z_valid, T, best), ood_score(Z_outside, T, best)
    not_sure = float(np.quantile(inside, FLAG_RATE, method="lower"))
    not_a_digit = min(float(np.quantile(outside, OUTSIDE_RATE, method="higher")), not_sure)
    calibration = Calibration(temperature=T, score=best, not_sure_below=not_sure, not_a_digit_below=not_a_digit)
    valid, made_up = np.array(calibration.verdicts(Z_valid)), np.array(calibration.verdicts(Z_outside))
    report.update(
        auroc=separation,
        score=best,
        not_sure_below=not_sure,
        not_a_digit_below=not_a_digit,
        validation_not_sure=float(np.mean(valid == NOT_SURE)),
        validation_not_a_digit=float(np.mean(valid == NOT_A_DIGIT)),
        outside_not_a_digit=float(np.mean(made_up == NOT_A_DIGIT)),
    )
    return calibration, report
