"""Torch datasets and loaders built from the numpy splits of `data_prep.load_fold`.

Features `[N, F, T]` become `[N, 1, F, T]` float32 tensors. Shuffling draws from an
explicit `torch.Generator` whose state is checkpointed, so a resumed run sees the same
batches as an uninterrupted one. Pinned memory is used when the run is on CUDA
(`device.pin_memory_for`), and batches are then copied to the GPU without blocking.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from emodarts_core.training.device import pin_memory_for


def to_dataset(X: np.ndarray, y: np.ndarray, indices=None) -> TensorDataset:
    """A TensorDataset of `X[indices]` as `[n, 1, F, T]` float32 and `y[indices]` as int64."""
    X = np.asarray(X)
    y = np.asarray(y)
    if indices is not None:
        X, y = X[indices], y[indices]
    if X.ndim != 3:
        raise ValueError(f"features must be [N, F, T], got shape {X.shape}")
    if len(X) != len(y):
        raise ValueError(f"{len(X)} feature rows but {len(y)} labels")
    features = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).unsqueeze(1)
    return TensorDataset(features, torch.from_numpy(y.astype(np.int64)))


def make_loader(dataset, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                device: torch.device = torch.device("cpu"), num_workers: int = 0) -> DataLoader:
    """A DataLoader; shuffled by `generator` when `shuffle`.

    A trailing batch of exactly one sample is dropped when shuffling (training), because
    batch statistics of one sample are degenerate; evaluation loaders keep every sample.
    Batches are pinned for a CUDA `device` (`device.pin_memory_for`).
    """
    drop_last = shuffle and len(dataset) % batch_size == 1 and len(dataset) > 1
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      drop_last=drop_last, num_workers=num_workers,
                      pin_memory=pin_memory_for(device), persistent_workers=False)


def stratified_halves(y, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of `y` into two halves with each class divided as evenly as possible.

    DARTS trains the weights on one half of the search data and the alphas on the other.
    Odd class counts alternate which half gets the extra sample so the halves stay balanced
    in size. Deterministic for a given `seed`; both halves are returned sorted.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    first, second = [], []
    extra_to_first = True
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        cut = len(idx) // 2 + (len(idx) % 2 if extra_to_first else 0)
        if len(idx) % 2:
            extra_to_first = not extra_to_first
        first.append(idx[:cut])
        second.append(idx[cut:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def to_device(batch, device: torch.device):
    """Move an `(x, y)` batch to `device` (non-blocking when memory is pinned)."""
    x, y = batch
    non_blocking = pin_memory_for(device)
    return x.to(device, non_blocking=non_blocking), y.to(device, non_blocking=non_blocking)
