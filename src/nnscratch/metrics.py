"""Classification metrics on integer labels.  y_true, y_pred: (m,) arrays; k = number of classes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.integer]


def accuracy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Fraction of predictions equal to the true label."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}")
    return float(np.mean(y_true == y_pred)) if y_true.size else float("nan")


def confusion_matrix(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, n_classes: int | None = None) -> IntArray:
    """C (k, k) with C[i, j] = number of samples of true class i predicted as class j."""
    y_true, y_pred = np.asarray(y_true, dtype=np.intp), np.asarray(y_pred, dtype=np.intp)
    k = n_classes if n_classes is not None else int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k).astype(np.int64)


def precision_recall(C: IntArray) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-class precision C[i,i]/Σ_rows C[:,i] and recall C[i,i]/Σ_cols C[i,:] from a confusion matrix.

    A class never predicted (or never present) gets NaN, not a misleading 0 or 1.
    """
    C = np.asarray(C, dtype=np.float64)
    hits = np.diag(C)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / C.sum(axis=0), hits / C.sum(axis=1)
