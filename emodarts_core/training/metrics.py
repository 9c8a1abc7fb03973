"""Evaluation metrics of the paper: UA, WA, confusion matrix and model size.

UA (unweighted accuracy) is the mean of per-class recalls over the classes present in
the ground truth (balanced accuracy); WA (weighted accuracy) is plain accuracy.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_labels(values) -> np.ndarray:
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {arr.shape}")
    return arr.astype(np.int64)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_labels(y_true), _as_labels(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    if t.size == 0:
        raise ValueError("cannot score an empty set of predictions")
    return t, p


def weighted_accuracy(y_true, y_pred) -> float:
    """Fraction of correct predictions (WA)."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def unweighted_accuracy(y_true, y_pred) -> float:
    """Mean per-class recall over the classes that occur in `y_true` (UA)."""
    t, p = _pair(y_true, y_pred)
    recalls = [np.mean(p[t == c] == c) for c in np.unique(t)]
    return float(np.mean(recalls))


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """`[n_classes, n_classes]` int64 counts; row = true class, column = predicted class."""
    t, p = _pair(y_true, y_pred)
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.min() < 0 or arr.max() >= n_classes:
            raise ValueError(f"{name} holds labels outside 0..{n_classes - 1}")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameter elements (each shared tensor counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
