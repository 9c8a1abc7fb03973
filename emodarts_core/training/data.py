"""Torch datasets and loaders built from the splits of `data_prep.load_fold`.

Features `[N, F, T]` become `[N, 1, F, T]` float32 tensors. A split held in memory (an
array) becomes a `TensorDataset`; a split that reads the store's memory map
(`data_prep.rows.Rows`, a large corpus) becomes a `RowsDataset`, which reads (and
normalises) each batch when the loader asks for it and holds nothing else, so that a
search or a retraining on MSP-Podcast never copies the corpus (docs/DATA.md). Both give
the same batches, value for value. Shuffling draws from an
explicit `torch.Generator` whose state is checkpointed, so a resumed run sees the same
batches as an uninterrupted one. Pinned memory is used when the run is on CUDA
(`device.pin_memory_for`), and batches are then copied to the GPU without blocking.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from data_prep.rows import Rows
from emodarts_core.training.device import pin_memory_for


class RowsDataset(Dataset):
    """`(features [1, F, T] float32, label int64)` pairs read from `Rows` on demand; a
    batch is one gather from the memory map (`__getitems__`, which the loader uses)."""

    def __init__(self, X: Rows, y: np.ndarray):
        if len(X) != len(y):
            raise ValueError(f"{len(X)} feature rows but {len(y)} labels")
        self.X = X
        self.y = torch.from_numpy(np.asarray(y).astype(np.int64))

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int):
        return torch.from_numpy(self.X[int(i)]).unsqueeze(0), self.y[int(i)]

    def __getitems__(self, indices) -> list:
        idx = np.asarray(indices, dtype=np.int64)
        features = torch.from_numpy(self.X[idx]).unsqueeze(1)
        return [(features[k], self.y[int(i)]) for k, i in enumerate(idx)]


def features(split):
    """A split's features as something with `shape`, `ndim` and `len`, without a copy:
    `Rows` as it is, anything else through `np.asarray`."""
    return split.X if isinstance(split.X, Rows) else np.asarray(split.X)


def to_dataset(X, y: np.ndarray, indices=None) -> Dataset:
    """A dataset of `X[indices]` as `[n, 1, F, T]` float32 and `y[indices]` as int64:
    a `RowsDataset` reading the store for `Rows` (nothing copied), else a `TensorDataset`."""
    y = np.asarray(y)
    if isinstance(X, Rows):
        if indices is not None:
            X, y = X.select(indices), y[indices]
        return RowsDataset(X, y)
    X = np.asarray(X)
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
