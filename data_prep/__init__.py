"""data_prep: corpus readers, the paper's MFCC features, speaker-independent folds, a feature store.

The one call the rest of the project needs is :func:`load_fold`: it returns the search,
training and test splits of one fold, as arrays or, for a large store, as rows of its
memory map read a batch at a time (:mod:`data_prep.rows`). See ``docs/ARCHITECTURE.md``. Where a corpus
lives and where its stores are cached is :mod:`data_prep.registry` (``docs/DATA.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .corpora import CORPORA, PAPER_CLASSES, Utterance, read_corpus
from .errors import DataError
from .features import FeatureConfig
from .folds import Fold, check_scheme, make_fold, make_folds
from .registry import CorpusNotFoundError, Location, cache_dir, resolve
from .rows import Rows
from .store import FeatureStore, load_store

__all__ = ["CORPORA", "PAPER_CLASSES", "CorpusNotFoundError", "DataError", "FeatureConfig",
           "FeatureStore", "Fold", "FoldData", "Location", "Rows", "Split", "Utterance", "cache_dir",
           "load_fold", "load_store", "read_corpus", "resolve", "store_for", "synthetic_store"]

SYNTHETIC_SEED = 0  # the cached generated corpus; the fold seed is separate
#: A fold whose features take at most this many bytes is copied into memory by default;
#: a larger one's splits read the store's memory map (:class:`Rows`), docs/DATA.md.
IN_MEMORY_BYTES = 256 * 2 ** 20


@dataclass
class Split:
    """Features ``X`` float32 [n, 128, 128], labels ``y`` int64 [n], ids and speakers, and
    each utterance's audio file (``paths``, absolute; None for a split not read from a
    corpus, e.g. :mod:`data_prep.toy`'s), for a model that reads the audio itself.

    ``X`` is an array, or, for a fold of a large store, :class:`data_prep.rows.Rows`: the
    rows of the store's memory map, read a batch at a time (``np.asarray`` copies them)."""

    X: np.ndarray | Rows
    y: np.ndarray
    ids: list[str]
    speakers: list[str]
    paths: list[str] | None = None

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


def synthetic_store(*, progress: bool = True) -> FeatureStore:
    """The generated corpus's feature store in the cache, generated and prepared once.

    The first call takes a while (the corpus, then its MFCCs): ``progress`` shows both as
    text bars on stderr; later calls find both in the cache and show nothing."""
    from .prepare import prepare
    from .synthetic import generate

    base = cache_dir() / f"synthetic-seed{SYNTHETIC_SEED}"
    corpus = generate(base / "corpus", seed=SYNTHETIC_SEED, progress=progress)
    return prepare("synthetic", corpus, base / "store", progress=progress)


def _check_fold_before_preparing(dataset: str, root: Path, fold: int, scheme: str, utts: list[Utterance]) -> None:
    """Count the corpus's folds from its scan, so a nonexistent fold fails before features are computed."""
    from .folds import test_speaker_groups

    n = len(test_speaker_groups(dataset, [u.speaker for u in utts], [u.gender for u in utts],
                                [u.session for u in utts], scheme)) if utts else 0
    if n == 0:  # not "valid folds: 1..0"
        raise DataError(f"no {dataset} utterances here, so there are no folds: none of its audio files is named "
                        f"or laid out as {dataset}'s are; check that this is the {dataset} corpus folder "
                        "(the layouts: docs/CORPORA.md)", root)
    if fold > n:
        raise DataError(f"fold {fold} does not exist for {dataset}; valid folds: 1..{n}", root)


def _store_for(dataset: str, data_dir, fold: int | None = None, scheme: str = "reference") -> FeatureStore:
    """The store for ``dataset``: ``data_dir`` or the registry's location (a store or a corpus
    root, prepared into the cache, never into the corpus folder)."""
    from .registry import cached_prepare

    loc = resolve(dataset, data_dir)
    if loc.path is None:
        return synthetic_store()
    data_dir = loc.path
    if (data_dir / "store.json").is_file():
        store = load_store(data_dir)
    else:
        check = None if fold is None else (
            lambda scan: _check_fold_before_preparing(dataset, data_dir, fold, scheme, scan.utterances))
        store = cached_prepare(dataset, data_dir, before_build=check)
    if store.corpus != dataset:
        raise DataError(f"store holds corpus {store.corpus!r}, not {dataset!r}", data_dir)
    return store


def store_for(dataset: str, data_dir=None) -> FeatureStore:
    """The whole feature store behind :func:`load_fold` (the same resolution and cache).

    For a notebook that shows a corpus rather than one fold (notebook 01).
    """
    return _store_for(dataset, data_dir)


#: The largest seed of a fold's split: the suite's seeds lie in [0, 2^32 - 1] (as
#: emodarts_core.config.SEED_RANGE, which data_prep, the bottom layer, cannot import).
MAX_SEED = 2 ** 32 - 1


def load_fold(dataset: str, data_dir, fold: int, *, seed: int = 0, fold_scheme: str = "reference",
              in_memory: bool | None = None) -> FoldData:
    """Fold ``fold`` (1-based) of ``dataset``: search / train / test splits.

    ``data_dir`` is a store made by ``prepare`` or a corpus root (prepared into the
    cache, :func:`data_prep.registry.cached_prepare`); None looks the dataset up with
    :func:`data_prep.registry.resolve` (environment, then the user config file; for
    ``synthetic``, the generated corpus in the cache).
    ``seed`` fixes the stratified 70/30 search/train split. ``fold_scheme`` chooses
    IEMOCAP's folds: ``"reference"``, the speaker pairs across sessions of the authors'
    preparation, or ``"session"``, one session out as the paper's text says (docs/DATA.md).

    ``in_memory``: True copies each split's features into an array, False leaves them
    in the store's memory map (:class:`Rows`: an index array, read a batch at a time, so
    that a corpus of MSP-Podcast's size is never held whole), None (the default) copies
    when the features take at most :data:`IN_MEMORY_BYTES`.
    """
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or fold < 1:
        raise DataError(f"fold {fold!r} does not exist for {dataset}; folds are integers numbered from 1")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise DataError(f"seed must be an integer in [0, {MAX_SEED}] (it draws the search/training split), "
                        f"got {seed!r}")  # before any feature is computed, not deep inside numpy
    check_scheme(dataset, fold_scheme)
    store = _store_for(dataset, data_dir, int(fold), fold_scheme)
    f = make_fold(store, int(fold), seed=seed, scheme=fold_scheme)
    row = {i: k for k, i in enumerate(store.ids)}
    paths = store.audio_paths()
    if in_memory is None:
        in_memory = int(np.prod(store.X.shape, dtype=np.int64)) * store.X.dtype.itemsize <= IN_MEMORY_BYTES

    def split(ids: list[str]) -> Split:
        idx = np.array([row[i] for i in ids], dtype=np.int64)
        X = Rows(store.X, idx)
        return Split(X.in_memory() if in_memory else X, store.y[idx], list(ids),
                     [store.speakers[k] for k in idx], [paths[k] for k in idx])

    return FoldData(split(f.search), split(f.train), split(f.test), store.classes, f)
