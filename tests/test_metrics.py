"""UA, WA, confusion matrix and parameter counts on hand-computed cases."""

import numpy as np
import pytest
import torch

from emodarts_core.training.metrics import confusion_matrix, count_parameters, unweighted_accuracy, weighted_accuracy

# 6 samples: class 0 x3 (2 right), class 1 x2 (1 right), class 2 x1 (1 right).
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]


def test_weighted_accuracy_is_plain_accuracy():
    assert weighted_accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)


def test_unweighted_accuracy_is_mean_recall():
    assert unweighted_accuracy(Y_TRUE, Y_PRED) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_unweighted_accuracy_ignores_classes_absent_from_truth():
    # class 3 is predicted but never true: it adds no recall term
    assert unweighted_accuracy([0, 0, 1], [0, 3, 1]) == pytest.approx((1 / 2 + 1) / 2)


def test_metrics_accept_tensors():
    assert unweighted_accuracy(torch.tensor(Y_TRUE), torch.tensor(Y_PRED)) == pytest.approx(13 / 18)


def test_confusion_matrix_rows_are_truth():
    expected = np.array([[2, 1, 0, 0],
                         [0, 1, 1, 0],
                         [0, 0, 1, 0],
                         [0, 0, 0, 0]])
    cm = confusion_matrix(Y_TRUE, Y_PRED, 4)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        unweighted_accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        weighted_accuracy([], [])
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 5], [0, 1], 4)


def test_count_parameters_counts_trainable_only_and_shared_once():
    lin = torch.nn.Linear(3, 2)  # 8
    frozen = torch.nn.Linear(4, 4)
    frozen.requires_grad_(False)
    model = torch.nn.Sequential(lin, frozen, lin)
    assert count_parameters(model) == 8
