"""Folds without copies: splits that read the store's memory map, and the same results.

`load_fold(..., in_memory=False)` gives each split's features as `data_prep.rows.Rows`
(an index array over the store's one map); the search, retraining and the classic
baseline read them a batch at a time, normalising each batch with statistics from the
training speakers. These tests check that nothing is copied, that normalised batches
match a float64 reference within float32 rounding, and that a search, a retraining and
the classic baseline on such a fold give exactly what they give on the copied fold.
"""

import dataclasses
import json
import os
import pickle
import tracemalloc

import numpy as np
import pytest
import torch

from data_fixtures import SMALL_CFG, make_emodb
from data_prep import Rows, load_fold
from data_prep.prepare import prepare
from data_prep.toy import toy_fold
from emodarts_core.darts.search import run_search
from emodarts_core.training.classic import run_classic, utterance_statistics
from emodarts_core.training.data import RowsDataset, make_loader, to_dataset
from emodarts_core.training.normalise import fit_normaliser, normalised
from emodarts_core.training.protocols import protocol_data
from emodarts_core.training.train import run_retrain
from loop_helpers import search_cfg, single_thread, tiny_net, train_cfg, without_timing  # noqa: F401


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = make_emodb(tmp_path_factory.mktemp("c") / "emodb", takes="abc")  # 10 speakers x 4 classes x 3
    return prepare("emodb", root, tmp_path_factory.mktemp("s") / "store", feature_config=SMALL_CFG, jobs=1,
                   progress=False)


def test_load_fold_reads_the_store_map_without_copying_the_features(store):
    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    try:
        lazy = load_fold("emodb", store.path, 1, in_memory=False)
        _, lazy_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        copied = load_fold("emodb", store.path, 1, in_memory=True)
        _, copied_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    features = store.X.nbytes
    assert copied_peak > features > 20 * lazy_peak  # the copy holds the features; the map, index arrays
    maps = {id(split.X.base) for split in (lazy.search, lazy.train, lazy.test)}
    assert len(maps) == 1
    X = lazy.search.X
    assert isinstance(X, Rows) and isinstance(X.base, np.memmap) and str(X.base.filename) == str(store.path / "X.npy")
    assert not X.base.flags.writeable
    for name in ("search", "train", "test"):
        a, b = getattr(lazy, name), getattr(copied, name)
        assert isinstance(b.X, np.ndarray) and not np.shares_memory(b.X, store.X)
        assert a.X.shape == b.X.shape and a.ids == b.ids and a.speakers == b.speakers
        np.testing.assert_array_equal(np.asarray(a.X), b.X)
        np.testing.assert_array_equal(a.X[3:9], b.X[3:9])
        np.testing.assert_array_equal(a.X[[5, 1, 2]], b.X[[5, 1, 2]])
        np.testing.assert_array_equal(a.X[2], b.X[2])


def test_a_small_fold_is_copied_by_default_and_a_large_one_is_not(store, monkeypatch):
    import data_prep

    assert isinstance(load_fold("emodb", store.path, 2).search.X, np.ndarray)
    monkeypatch.setattr(data_prep, "IN_MEMORY_BYTES", store.X.nbytes - 1)
    assert isinstance(load_fold("emodb", store.path, 2).search.X, Rows)


def test_reading_rows_leaves_the_file_out_of_the_process_memory(store, monkeypatch):
    """Rows are read from the store's file (pread), not through the map's pages, and a
    view of a map (whose offset numpy does not update) is read through numpy instead."""
    import data_prep.rows as rows_mod

    X = load_fold("emodb", store.path, 1, in_memory=False).search.X
    calls = []
    real = rows_mod._pread_rows
    monkeypatch.setattr(rows_mod, "_pread_rows", lambda *a: calls.append(len(a[2])) or real(*a))
    order = np.array([7, 3, 4, 5, 0])  # runs of consecutive store rows are read in one call
    np.testing.assert_array_equal(X[order], np.asarray(store.X)[X.index[order]])
    assert calls == [5]
    view = Rows(store.X[2:], X.index[:4] - 2 if X.index[:4].min() >= 2 else np.arange(4))
    np.testing.assert_array_equal(np.asarray(view), np.asarray(store.X[2:])[view.index])
    assert calls == [5]


def test_rows_of_a_store_replaced_since_it_was_opened_read_the_old_file(tmp_path):
    """A rebuild replaces X.npy by rename; rows opened before read what they mapped."""
    np.save(tmp_path / "X.npy", np.arange(4 * 6, dtype=np.float32).reshape(4, 2, 3))
    old = Rows(np.load(tmp_path / "X.npy", mmap_mode="r"), [3, 1])
    first = old[:]
    np.save(tmp_path / "new.npy", -np.ones((4, 2, 3), dtype=np.float32))
    os.replace(tmp_path / "new.npy", tmp_path / "X.npy")
    np.testing.assert_array_equal(old[:], first)
    np.testing.assert_array_equal(Rows(old.base, [3, 1])[:], first)  # a new selection of the old map
    np.testing.assert_array_equal(Rows(np.load(tmp_path / "X.npy", mmap_mode="r"), [3, 1])[:], -1)


def test_rows_pickle_as_the_file_name_and_index_not_the_features(store):
    X = load_fold("emodb", store.path, 1, in_memory=False).train.X
    blob = pickle.dumps(X)
    assert len(blob) < X.nbytes / 20
    again = pickle.loads(blob)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(X))


@pytest.mark.parametrize("mode", ["coefficient", "utterance"])
def test_batch_normalisation_equals_the_whole_array_and_a_float64_reference(store, mode):
    lazy = load_fold("emodb", store.path, 1, in_memory=False)
    copied = load_fold("emodb", store.path, 1, in_memory=True)
    norm_lazy, norm_copied = fit_normaliser(mode, lazy.search), fit_normaliser(mode, copied.search)
    for a, b in ((norm_lazy.mean, norm_copied.mean), (norm_lazy.std, norm_copied.std)):
        assert (a is None and b is None) or np.array_equal(a, b)
    x = copied.train.X.astype(np.float64)
    if mode == "coefficient":
        ref = (x - norm_lazy.mean[None, :, None]) / norm_lazy.std[None, :, None]
        search64 = copied.search.X.astype(np.float64)
        np.testing.assert_allclose(norm_lazy.mean, search64.mean(axis=(0, 2)), rtol=1e-12)
    else:
        ref = (x - x.mean(axis=2, keepdims=True)) / x.std(axis=2, keepdims=True)
    lazy_train = normalised(lazy.train, norm_lazy)
    assert isinstance(lazy_train.X, Rows)  # normalised as it is read, not stored
    whole = normalised(copied.train, norm_copied).X
    batches = np.concatenate([lazy_train.X[k:k + 7] for k in range(0, len(lazy_train.X), 7)])
    np.testing.assert_array_equal(batches, whole)
    tol = 4 * np.finfo(np.float32).eps * np.maximum(np.abs(ref), 1.0)  # float32 rounding of a float64 result
    assert np.all(np.abs(batches - ref) <= tol)


def test_a_dataset_over_rows_gives_the_same_batches_as_a_tensor_dataset(store):
    lazy = load_fold("emodb", store.path, 1, in_memory=False)
    copied = load_fold("emodb", store.path, 1, in_memory=True)
    idx = np.arange(0, len(lazy.search), 2)
    a = to_dataset(lazy.search.X, lazy.search.y, idx)
    b = to_dataset(copied.search.X, copied.search.y, idx)
    assert isinstance(a, RowsDataset) and len(a) == len(b)
    la = make_loader(a, 5, shuffle=True, generator=torch.Generator().manual_seed(3))
    lb = make_loader(b, 5, shuffle=True, generator=torch.Generator().manual_seed(3))
    for (xa, ya), (xb, yb) in zip(la, lb, strict=True):
        assert xa.shape == xb.shape and xa.dtype == torch.float32
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0)


def _mapped_fold(fold, folder):
    """`fold` with its three splits' features written to one .npy and read back as `Rows`."""
    parts = [fold.search, fold.train, fold.test]
    X = np.concatenate([np.asarray(p.X, dtype=np.float32) for p in parts])
    np.save(folder / "X.npy", X)
    base = np.load(folder / "X.npy", mmap_mode="r")
    starts = np.cumsum([0] + [len(p.y) for p in parts])
    rows = [Rows(base, np.arange(starts[k], starts[k + 1])[::-1].copy()) for k in range(3)]  # out of order
    flipped = [dataclasses.replace(p, X=np.asarray(p.X)[::-1].copy(), y=np.asarray(p.y)[::-1].copy(),
                                   ids=p.ids[::-1], speakers=p.speakers[::-1]) for p in parts]
    lazy = [dataclasses.replace(f, X=r) for f, r in zip(flipped, rows)]
    return (dataclasses.replace(fold, search=flipped[0], train=flipped[1], test=flipped[2]),
            dataclasses.replace(fold, search=lazy[0], train=lazy[1], test=lazy[2]))


@pytest.mark.filterwarnings("ignore::emodarts_core.darts.alpha_record.SearchBudgetWarning")  # one epoch
@pytest.mark.parametrize("normalise", ["coefficient", "utterance"])
def test_a_search_on_mapped_rows_equals_the_search_on_copies(tmp_path, normalise):
    copied, lazy = _mapped_fold(toy_fold(n_search=12), tmp_path)
    cfg = search_cfg(epochs=1, normalise=normalise)
    a = run_search(copied, tiny_net(), cfg, tmp_path / "a")
    b = run_search(lazy, tiny_net(), cfg, tmp_path / "b")
    assert a.genotype == b.genotype and without_timing(a.history) == without_timing(b.history)


@pytest.mark.parametrize("protocol", ["paper", "full", "holdout"])
def test_a_retraining_on_mapped_rows_equals_the_one_on_copies(tmp_path, protocol):
    copied, lazy = _mapped_fold(toy_fold(), tmp_path)
    assert isinstance(protocol_data(lazy, protocol).train.X, Rows)  # the protocol's splits stay on the map
    cfg = train_cfg(epochs=1, protocol=protocol, normalise="coefficient")
    run_retrain(copied, "cnn", tiny_net(), cfg, tmp_path / "a")
    run_retrain(lazy, "cnn", tiny_net(), cfg, tmp_path / "b")
    ra, rb = (json.loads((tmp_path / n / "result.json").read_text()) for n in "ab")
    assert ra["predictions"] == rb["predictions"] and ra["test_ua"] == rb["test_ua"]


def test_the_classic_baseline_on_mapped_rows_equals_the_one_on_copies(tmp_path):
    copied, lazy = _mapped_fold(toy_fold(n_train=300), tmp_path)  # more than a block of statistics
    np.testing.assert_array_equal(utterance_statistics(lazy.train.X), utterance_statistics(copied.train.X))
    cfg = train_cfg(protocol="full")
    run_classic(copied, cfg, tmp_path / "a")
    run_classic(lazy, cfg, tmp_path / "b")
    ra, rb = (json.loads((tmp_path / n / "result.json").read_text()) for n in "ab")
    assert ra["predictions"] == rb["predictions"] and ra["choice"] == rb["choice"]
