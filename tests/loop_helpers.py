"""Small fold data and configurations shared by the search/retrain/resume tests.

`tiny_fold` builds a real `data_prep.FoldData` from random arrays with a learnable signal
(the class shifts the mean of a band of coefficients), so the loops have something to fit
while staying within a second or two per epoch on CPU.
"""

from __future__ import annotations

import dataclasses
import pytest
import torch

from data_prep.toy import toy_fold
from emodarts_core.config import SearchConfig, TrainConfig, preset


tiny_fold = toy_fold  # the loops' tests share the library's toy fold


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
