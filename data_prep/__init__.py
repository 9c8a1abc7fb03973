"""data_prep: corpus readers, the paper's MFCC features, speaker-independent folds, a feature store.

The one call the rest of the project needs is :func:`load_fold`: it returns the search,
training and test splits of one fold as arrays. See ``docs/CONTRACT.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .corpora import CORPORA, PAPER_CLASSES, Utterance, read_corpus
from .errors import DataError
from .features import FeatureConfig
from .folds import Fold, make_folds
from .store import FeatureStore, load_store

__all__ = ["CORPORA", "PAPER_CLASSES", "DataError", "FeatureConfig", "FeatureStore", "Fold",
           "FoldData", "Split", "Utterance", "cache_dir", "load_fold", "load_store",
           "read_corpus", "synthetic_store"]

SYNTHETIC_SEED = 0  # the cached generated corpus; the fold seed is separate


@dataclass
class Split:
    """Features ``X`` float32 [n, 128, 128], labels ``y`` int64 [n], ids and speakers."""

    X: np.ndarray
    y: np.ndarray
    ids: list[str]
    speakers: list[str]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class FoldData:
    """The three splits of one fold, the class names (label index order) and the fold."""

    search: Split
    train: Split
    test: Split
    classes: tuple[str, ...]
    fold: Fold


def cache_dir() -> Path:
    """Where generated data is cached: ``$EMODARTS_CACHE`` or ``~/.cache/emodarts``."""
    return Path(os.environ.get("EMODARTS_CACHE") or Path.home() / ".cache" / "emodarts")


def synthetic_store(*, progress: bool = False) -> FeatureStore:
    """The generated corpus's feature store in the cache, generated and prepared once."""
    from .prepare import prepare
    from .synthetic import generate

    base = cache_dir() / f"synthetic-seed{SYNTHETIC_SEED}"
    corpus = generate(base / "corpus", seed=SYNTHETIC_SEED)
    return prepare("synthetic", corpus, base / "store", progress=progress)


def _check_fold_before_preparing(dataset: str, root: Path, fold: int) -> None:
    """Count the corpus's folds from its metadata, so a nonexistent fold fails before features are computed."""
    from .folds import test_speaker_groups

    utts = read_corpus(dataset, root)
    n = len(test_speaker_groups(dataset, [u.speaker for u in utts], [u.gender for u in utts],
                                [u.session for u in utts])) if utts else 0
    if fold > n:
        raise DataError(f"fold {fold} does not exist for {dataset}; valid folds: 1..{n}", root)


def _store_for(dataset: str, data_dir, fold: int | None = None) -> FeatureStore:
    if dataset not in CORPORA:
        raise DataError(f"unknown dataset {dataset!r}; valid names: {', '.join(CORPORA)}")
    if data_dir is None:
        if dataset == "synthetic":
            return synthetic_store()
        raise DataError(f"dataset {dataset!r} needs data_dir (a feature store or the corpus root)")
    data_dir = Path(data_dir)
    if (data_dir / "store.json").is_file():
        store = load_store(data_dir)
    else:
        from .prepare import prepare

        if fold is not None:
            _check_fold_before_preparing(dataset, data_dir, fold)
        store = prepare(dataset, data_dir, data_dir / ".emodarts_store")
    if store.corpus != dataset:
        raise DataError(f"store holds corpus {store.corpus!r}, not {dataset!r}", data_dir)
    return store


def load_fold(dataset: str, data_dir, fold: int, *, seed: int = 0) -> FoldData:
    """Fold ``fold`` (1-based) of ``dataset``: search / train / test splits as arrays.

    ``data_dir`` is a store made by ``prepare`` or a corpus root (prepared into
    ``<data_dir>/.emodarts_store``); for ``synthetic`` it may be None (cached corpus).
    ``seed`` fixes the stratified 70/30 search/train split.
    """
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or fold < 1:
        raise DataError(f"fold {fold!r} does not exist for {dataset}; folds are integers numbered from 1")
    store = _store_for(dataset, data_dir, int(fold))
    folds = make_folds(store, seed=seed)
    if not isinstance(fold, (int, np.integer)) or not 1 <= fold <= len(folds):
        raise DataError(f"fold {fold!r} does not exist for {dataset}; valid folds: 1..{len(folds)}")
    f = folds[int(fold) - 1]
    row = {i: k for k, i in enumerate(store.ids)}

    def split(ids: list[str]) -> Split:
        idx = np.array([row[i] for i in ids], dtype=np.int64)
        return Split(np.ascontiguousarray(store.X[idx]), store.y[idx], list(ids),
                     [store.speakers[k] for k in idx])

    return FoldData(split(f.search), split(f.train), split(f.test), store.classes, f)
