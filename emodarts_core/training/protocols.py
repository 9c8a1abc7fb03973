"""Retraining protocols: which speakers a derived network trains on, which select its
epoch, and which score it.

Inside a fold the training speakers' utterances are split 70/30 into a `search` split
(the architecture search) and a `training` split (paper section IV-A). The test speakers are scored once and reach neither training nor
selection under any protocol.

- ``paper``: as the paper describes it. The derived network trains on the 30 %
  training split; its epoch is the one with the best UA on the search split (training
  speakers only, unlike the reference code, docs/REFERENCE_CODE.md).
- ``full``: the network (a searched one, a baseline or a control alike) trains from
  scratch on every utterance of the training speakers (search ∪ training split) for a
  number of epochs fixed in advance (`TrainConfig.epochs`); the last epoch is kept, so
  nothing is selected at all. About 3.3 times the training data of ``paper``.
- ``paper_equal``: ``paper``'s splits and selection, trained for as many weight updates
  as ``full`` makes (`equal_update_epochs`: the epochs derived from the two splits' batch
  counts), so that ``paper`` against ``paper_equal`` measures what fewer updates cost and
  ``paper_equal`` against ``full`` what less data costs. Under ``paper`` the 30 % split at
  the same number of epochs makes about 0.3 times ``full``'s updates.
- ``holdout``: for choosing among candidates without the test speakers (the
  random-search control): a speaker-disjoint group of the training speakers is held
  out (`holdout_speakers`), the network trains on the remaining training speakers for a
  fixed number of epochs and is scored on the held-out group. The fold's test split is
  not touched.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from data_prep import rows  # a split read from the store stays an index over it

from emodarts_core.config import PROTOCOLS, RETRAIN_PROTOCOLS, ConfigError
#: Held-out share of the training speakers under ``holdout`` (at least one speaker).
HOLDOUT_FRACTION = 0.25


@dataclass
class ProtocolData:
    """The splits one retraining uses: train on `train`, select on `select` (None: keep
    the last epoch), score once on `score` (`scored_on` says whose speakers those are)."""

    train: object
    select: object | None
    score: object
    scored_on: str


def _paths(split, paths) -> dict:
    """The `paths` field of a new split (each utterance's audio, `data_prep.Split`), for a
    split type that has one: it follows the rows, or stays None where the split has none."""
    return {"paths": paths} if hasattr(split, "paths") else {}


def _take(split, keep: np.ndarray):
    """The rows `keep` (a boolean mask) of a split, as a split of the same type."""
    idx = np.flatnonzero(keep)
    paths = getattr(split, "paths", None)
    return dataclasses.replace(split, X=rows.take(split.X, idx),
                               y=np.asarray(split.y)[idx], ids=[split.ids[i] for i in idx],
                               speakers=[split.speakers[i] for i in idx],
                               **_paths(split, None if paths is None else [paths[i] for i in idx]))


def concat_splits(a, b):
    """The utterances of `a` then those of `b`, as one split."""
    pa, pb = getattr(a, "paths", None), getattr(b, "paths", None)
    return dataclasses.replace(a, X=rows.concat(a.X, b.X),
                               y=np.concatenate([np.asarray(a.y), np.asarray(b.y)]),
                               ids=list(a.ids) + list(b.ids), speakers=list(a.speakers) + list(b.speakers),
                               **_paths(a, None if pa is None or pb is None else list(pa) + list(pb)))


def training_speakers_split(fold_data):
    """Every utterance of the fold's training speakers: search ∪ training split."""
    return concat_splits(fold_data.search, fold_data.train)


def holdout_speakers(speakers, seed: int, fraction: float = HOLDOUT_FRACTION) -> list[str]:
    """A seeded, speaker-disjoint validation group drawn from `speakers` (the training
    speakers of a fold): `fraction` of them, at least one, never all."""
    unique = sorted(set(speakers))
    if len(unique) < 2:
        raise ConfigError(f"a speaker-disjoint validation group needs at least 2 training speakers, "
                          f"got {len(unique)}")
    n = min(len(unique) - 1, max(1, round(fraction * len(unique))))
    rng = np.random.default_rng([seed, 0x5EA7])
    return sorted(rng.choice(unique, size=n, replace=False).tolist())


def updates_per_epoch(n: int, batch_size: int) -> int:
    """Weight updates in one epoch over n training utterances at `batch_size`: the batches
    of `emodarts_core.training.data.make_loader`, which drops a last batch of one
    utterance (a batch norm cannot train on it)."""
    if n < 1 or batch_size < 1:
        raise ConfigError(f"an epoch needs at least one utterance and a batch size >= 1, got {n} and {batch_size}")
    return n // batch_size if n % batch_size == 1 and n > 1 else math.ceil(n / batch_size)


def equal_update_epochs(fold_data, epochs: int, batch_size: int) -> int:
    """The epochs of ``paper_equal``: the fewest epochs over the fold's 30 % training split
    that make at least as many weight updates as `epochs` epochs of ``full`` (every
    training speaker's utterance) at `batch_size`."""
    full = updates_per_epoch(len(fold_data.search.y) + len(fold_data.train.y), batch_size) * epochs
    return math.ceil(full / updates_per_epoch(len(fold_data.train.y), batch_size))


def protocol_epochs(fold_data, protocol: str, epochs: int, batch_size: int) -> int:
    """How many epochs a retraining under `protocol` runs when its configuration says
    `epochs`: ``paper_equal`` derives its own (`equal_update_epochs`), the others take it."""
    return equal_update_epochs(fold_data, epochs, batch_size) if protocol == "paper_equal" else epochs


def protocol_data(fold_data, protocol: str, seed: int = 0) -> ProtocolData:
    """The splits of `protocol` for one fold (see the module docstring); `seed` draws the
    held-out speakers of ``holdout``."""
    if protocol in ("paper", "paper_equal"):
        return ProtocolData(fold_data.train, fold_data.search, fold_data.test, "test speakers")
    if protocol == "full":
        return ProtocolData(training_speakers_split(fold_data), None, fold_data.test, "test speakers")
    if protocol == "holdout":
        pool = training_speakers_split(fold_data)
        group = set(holdout_speakers(pool.speakers, seed))
        held = np.array([s in group for s in pool.speakers])
        return ProtocolData(_take(pool, ~held), None, _take(pool, held),
                            "held-out training speakers " + ", ".join(sorted(group)))
    raise ConfigError(f"unknown protocol {protocol!r}; valid protocols: {', '.join(RETRAIN_PROTOCOLS)}")


__all__ = ["PROTOCOLS", "RETRAIN_PROTOCOLS", "ProtocolData", "protocol_data", "holdout_speakers", "updates_per_epoch",
           "equal_update_epochs", "protocol_epochs",
           "training_speakers_split", "concat_splits"]
