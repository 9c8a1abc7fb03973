"""Small fold data and configurations shared by the search/retrain/resume tests.

`tiny_fold` builds a real `data_prep.FoldData` from random arrays with a learnable signal
(the class shifts the mean of a band of coefficients), so the loops have something to fit
while staying within a second or two per epoch on CPU.
"""

from __future__ import annotations

import dataclasses
import numpy as np
import pytest
import torch

from data_prep import Fold, FoldData, Split
from emodarts_core.config import SearchConfig, TrainConfig, preset


def tiny_split(n: int, size=(16, 16), n_classes: int = 4, seed: int = 0, prefix: str = "u") -> Split:
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % n_classes
    X = rng.standard_normal((n, *size)).astype(np.float32)
    band = size[0] // n_classes
    for i, c in enumerate(y):
        X[i, c * band:(c + 1) * band] += 1.0
    return Split(X=X, y=y, ids=[f"{prefix}{i}" for i in range(n)], speakers=[f"{prefix}spk{i % 3}" for i in range(n)])


def tiny_fold(n_search: int = 16, n_train: int = 12, n_test: int = 8, size=(16, 16), n_classes: int = 4):
    search, train, test = (tiny_split(n_search, size, n_classes, 1, "s"), tiny_split(n_train, size, n_classes, 2, "t"),
                           tiny_split(n_test, size, n_classes, 3, "x"))
    fold = Fold(index=1, test_speakers=sorted(set(test.speakers)), test=test.ids, search=search.ids,
                train=train.ids, seed=0)
    return FoldData(search, train, test, tuple(f"c{i}" for i in range(n_classes)), fold)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Run a test module's torch work on one thread (import this into the module to use it).

    The CI box has 2 cores shared by several jobs; with 2 OpenMP threads contending for
    them a tiny step takes seconds instead of milliseconds. Also makes CPU results
    independent of the machine's core count.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SIZE = (16, 16)


def tiny_net(**overrides):
    """The smoke preset at a 16x16 input (both reductions, one SeqNN cell)."""
    return preset("smoke", **{"input_size": SIZE, **overrides})


def without_timing(history: list[dict]) -> list[dict]:
    """Epoch records minus wall-clock time, which legitimately differs between runs."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def search_cfg(**overrides) -> SearchConfig:
    base = SearchConfig(epochs=2, batch_size=4, device="cpu", seed=0, progress=False)
    return dataclasses.replace(base, **overrides)


def train_cfg(**overrides) -> TrainConfig:
    base = TrainConfig(epochs=2, batch_size=4, device="cpu", seed=0, progress=False)
    return dataclasses.replace(base, **overrides)
