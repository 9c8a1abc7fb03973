"""Feature normalisation, a setting of the data pipeline: `none`, `utterance` or `coefficient`.

The paper feeds raw MFCCs to its networks (paper section IV-A); raw MFCC values span
hundreds of units (coefficient 0, the log energy, sits far below the others), which a
network without a normalisation layer, such as the hand-made CNN baseline of paper
section IV-B, cannot train on with the DARTS cells' SGD settings. Speech emotion
recognition practice standardises features, with statistics that never include a test
speaker (docs/DATA.md, "Feature normalisation"):

- ``none``: the features as the store holds them;
- ``utterance``: each utterance on its own: every coefficient minus its mean over the
  utterance's frames, divided by its standard deviation there (cepstral mean and variance
  normalisation). Nothing is learned from other utterances, so there are no statistics;
- ``coefficient``: every coefficient minus its mean, divided by its standard deviation,
  both taken over all frames of the utterances the network trains on (`fit_normaliser`
  on the protocol's training split: the fold's training speakers, less the held-out
  group under the ``holdout`` protocol). Test speakers, and the speakers a run selects
  or scores on, never contribute.

The fitted statistics are written to the run directory (`NORMALISATION`), so a run says
exactly what its network saw.

Nothing here holds a split's features whole: the statistics are summed over blocks of
utterances (in float64), and a split that reads the store's memory map
(`data_prep.rows.Rows`) is normalised a batch at a time when it is read
(`Rows.map`), with the same values as normalising the whole array at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from data_prep.rows import Rows
from emodarts_core.config import NORMALISATIONS  # the settings of TrainConfig/SearchConfig.normalise

#: The run-directory file holding the normalisation and its statistics.
NORMALISATION = "normalisation.json"
#: A standard deviation below this (a constant coefficient) divides as this instead.
STD_FLOOR = 1e-6
#: Utterances per block when fitting or applying (32 MiB of float64 [128, 128] features).
_BLOCK = 256


def _same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


@dataclass
class Normaliser:
    """A fitted normalisation: `mode`, and for ``coefficient`` the per-coefficient `mean`
    and `std` ([F], float64) with what they were fitted on (`fitted_on`: the number of
    utterances and the speakers)."""

    mode: str
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    fitted_on: dict = field(default_factory=dict)

    def apply(self, X) -> np.ndarray:
        """`X` ([N, F, T]) normalised, as a new float32 array (the input is left as it is),
        computed a block of utterances at a time (each utterance's values do not depend
        on the others in the block)."""
        if isinstance(X, Rows):
            X = X.map(self).in_memory() if self.mode != "none" else X.in_memory()
            return X
        X = np.asarray(X)
        if X.ndim != 3:
            raise ValueError(f"features must be [N, F, T], got shape {X.shape}")
        if self.mode == "none":
            return np.ascontiguousarray(X, dtype=np.float32)
        out = np.empty(X.shape, dtype=np.float32)
        for start in range(0, len(X), _BLOCK):
            out[start:start + _BLOCK] = self(X[start:start + _BLOCK])
        return out

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """One batch `X` ([n, F, T]) normalised, float32 (the transform `Rows.map` applies)."""
        if self.mode == "none":
            return np.asarray(X, dtype=np.float32)
        x = np.asarray(X).astype(np.float64)
        if self.mode == "utterance":
            mean = x.mean(axis=2, keepdims=True)
            std = np.maximum(x.std(axis=2, keepdims=True), STD_FLOOR)
        else:
            if self.mean is None or len(self.mean) != X.shape[1]:
                raise ValueError(f"coefficient statistics for {0 if self.mean is None else len(self.mean)} "
                                 f"coefficients cannot normalise features with {X.shape[1]}")
            mean, std = self.mean[None, :, None], self.std[None, :, None]
        return ((x - mean) / std).astype(np.float32)

    def __eq__(self, other) -> bool:  # `Rows` compares transforms: equal statistics, equal transform
        return (isinstance(other, Normaliser) and self.mode == other.mode
                and _same(self.mean, other.mean) and _same(self.std, other.std))

    __hash__ = None

    def to_dict(self) -> dict:
        """JSON-ready: mode, statistics (None unless ``coefficient``) and what they came from."""
        return {"mode": self.mode, "mean": None if self.mean is None else self.mean.tolist(),
                "std": None if self.std is None else self.std.tolist(), "fitted_on": dict(self.fitted_on)}

    @classmethod
    def from_dict(cls, data: dict) -> "Normaliser":
        check_mode(data.get("mode"))
        arr = (lambda v: None if v is None else np.asarray(v, dtype=np.float64))
        return cls(data["mode"], arr(data.get("mean")), arr(data.get("std")), dict(data.get("fitted_on") or {}))


def check_mode(mode) -> str:
    """`mode` if it is one of NORMALISATIONS, else ValueError listing them."""
    if mode not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {mode!r}; valid: {', '.join(NORMALISATIONS)}")
    return mode


def fit_normaliser(mode: str, split) -> Normaliser:
    """The normalisation `mode` fitted on `split` (a split with X [N, F, T] and speakers).

    Only ``coefficient`` learns anything: the mean and standard deviation (population, in
    float64) of each coefficient over every frame of every utterance of `split`.
    """
    check_mode(mode)
    if mode != "coefficient":
        return Normaliser(mode)
    X = split.X if isinstance(split.X, Rows) else np.asarray(split.X)
    if X.ndim != 3 or len(X) == 0:
        raise ValueError(f"coefficient statistics need a non-empty [N, F, T] split, got shape {X.shape}")
    total = np.zeros(X.shape[1])
    squares = np.zeros(X.shape[1])
    for start in range(0, len(X), _BLOCK):  # in blocks: a memory-mapped store is not copied whole
        chunk = np.asarray(X[start:start + _BLOCK]).astype(np.float64)
        total += chunk.sum(axis=(0, 2))
    count = X.shape[0] * X.shape[2]
    mean = total / count
    for start in range(0, len(X), _BLOCK):  # a second pass: no cancellation in E[x^2] - E[x]^2
        chunk = np.asarray(X[start:start + _BLOCK]).astype(np.float64) - mean[None, :, None]
        squares += (chunk ** 2).sum(axis=(0, 2))
    std = np.maximum(np.sqrt(squares / count), STD_FLOOR)
    speakers = sorted({str(s) for s in getattr(split, "speakers", [])})
    return Normaliser(mode, mean, std, {"n": int(len(X)), "speakers": speakers})


def normalised(split, normaliser: Normaliser):
    """`split` with its features normalised (ids, speakers and labels kept): a new array
    for an array, the same rows normalised as each batch is read for `Rows`."""
    if split is None:
        return None
    if normaliser.mode == "none":
        return split
    if isinstance(split.X, Rows):
        return dataclasses.replace(split, X=split.X.map(normaliser))
    return dataclasses.replace(split, X=normaliser.apply(split.X))


def normalise_protocol(splits, mode: str):
    """Fit `mode` on `splits.train` (a `protocols.ProtocolData`) and apply it to its train,
    select and score splits; returns (the normalised ProtocolData, the Normaliser)."""
    normaliser = fit_normaliser(mode, splits.train)
    return dataclasses.replace(splits, train=normalised(splits.train, normaliser),
                               select=normalised(splits.select, normaliser),
                               score=normalised(splits.score, normaliser)), normaliser


__all__ = ["NORMALISATIONS", "NORMALISATION", "Normaliser", "fit_normaliser", "normalised", "normalise_protocol",
           "check_mode"]
