"""Metrics on integer labels: accuracy, the confusion matrix (rows true, columns predicted), precision and recall."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnscratch.metrics import accuracy, confusion_matrix, precision_recall

# Six samples of three classes, chosen so that the matrix is not symmetric and no two classes share a
# row or column total: a transposed matrix or swapped precision and recall gives other numbers.
Y_TRUE = np.array([0, 0, 1, 2, 2, 2])
Y_PRED = np.array([0, 1, 1, 2, 0, 2])


def test_accuracy_is_the_fraction_of_equal_labels():
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    assert accuracy([3, 3], [3, 3]) == 1.0 and accuracy([1, 2], [2, 1]) == 0.0
    assert math.isnan(accuracy([], []))  # no samples: undefined, not a perfect 0 or 1


def test_accuracy_refuses_labels_of_different_shapes():
    with pytest.raises(ValueError, match=r"differ in shape: \(3,\) vs \(2,\)"):
        accuracy([0, 1, 2], [0, 1])


def test_confusion_matrix_counts_true_classes_in_rows_and_predictions_in_columns():
    # C[i, j] = samples of true class i predicted as j:
    #   true 0: predicted 0 once, 1 once        → [1, 1, 0]
    #   true 1: predicted 1 once                → [0, 1, 0]
    #   true 2: predicted 2 twice and 0 once    → [1, 0, 2]
    C = confusion_matrix(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(C, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert C.dtype == np.int64
    assert C.sum() == Y_TRUE.size and np.trace(C) == np.sum(Y_TRUE == Y_PRED)


def test_confusion_matrix_size_comes_from_both_label_arrays_or_n_classes():
    # class 3 is only ever predicted: it still gets a row (of zeros) and a column
    np.testing.assert_array_equal(confusion_matrix([0, 1], [3, 1]), [[0, 0, 0, 1], [0, 1, 0, 0], [0] * 4, [0] * 4])
    np.testing.assert_array_equal(confusion_matrix([2], [0]), [[0, 0, 0], [0, 0, 0], [1, 0, 0]])
    C = confusion_matrix([0, 1], [1, 1], n_classes=4)  # classes beyond the data keep their rows
    assert C.shape == (4, 4) and C[0, 1] == 1 and C[1, 1] == 1 and C.sum() == 2
    assert confusion_matrix([], []).shape == (0, 0)


def test_precision_is_per_predicted_column_and_recall_per_true_row():
    C = confusion_matrix(Y_TRUE, Y_PRED)
    precision, recall = precision_recall(C)
    # precision = hits / times predicted (column sums 2, 2, 2); recall = hits / times present (row sums 2, 1, 3)
    np.testing.assert_allclose(precision, [1 / 2, 1 / 2, 2 / 2])
    np.testing.assert_allclose(recall, [1 / 2, 1 / 1, 2 / 3])


def test_a_class_never_predicted_or_never_present_gets_nan_not_zero():
    C = np.array([[2, 0, 0], [1, 0, 0], [0, 0, 0]])  # class 1 present, never predicted; class 2 neither
    precision, recall = precision_recall(C)
    assert precision[0] == pytest.approx(2 / 3) and recall[0] == 1.0
    assert math.isnan(precision[1]) and recall[1] == 0.0
    assert math.isnan(precision[2]) and math.isnan(recall[2])


def test_metrics_agree_with_scikit_learn_where_installed(rng):
    sk = pytest.importorskip("sklearn.metrics")
    y_true, y_pred = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    C = confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(C, sk.confusion_matrix(y_true, y_pred))
    precision, recall = precision_recall(C)
    np.testing.assert_allclose(precision, sk.precision_score(y_true, y_pred, average=None))
    np.testing.assert_allclose(recall, sk.recall_score(y_true, y_pred, average=None))
    assert accuracy(y_true, y_pred) == pytest.approx(sk.accuracy_score(y_true, y_pred))
