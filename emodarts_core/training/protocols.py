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
- ``holdout``: for choosing among candidates without the test speakers (the
  random-search control): a speaker-disjoint group of the training speakers is held
  out (`holdout_speakers`), the network trains on the remaining training speakers for a
  fixed number of epochs and is scored on the held-out group. The fold's test split is
  not touched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

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
    return dataclasses.replace(split, X=np.ascontiguousarray(np.asarray(split.X)[idx]),
                               y=np.asarray(split.y)[idx], ids=[split.ids[i] for i in idx],
                               speakers=[split.speakers[i] for i in idx],
                               **_paths(split, None if paths is None else [paths[i] for i in idx]))


def concat_splits(a, b):
    """The utterances of `a` then those of `b`, as one split."""
    pa, pb = getattr(a, "paths", None), getattr(b, "paths", None)
    return dataclasses.replace(a, X=np.concatenate([np.asarray(a.X), np.asarray(b.X)]),
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


def protocol_data(fold_data, protocol: str, seed: int = 0) -> ProtocolData:
    """The splits of `protocol` for one fold (see the module docstring); `seed` draws the
    held-out speakers of ``holdout``."""
    if protocol == "paper":
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


__all__ = ["PROTOCOLS", "RETRAIN_PROTOCOLS", "ProtocolData", "protocol_data", "holdout_speakers",
           "training_speakers_split", "concat_splits"]
