"""The `egemaps` baseline: openSMILE's eGeMAPS functionals and the classic linear classifier.

eGeMAPS (Eyben et al., IEEE Trans. Affective Computing 7(2), 2016: the extended Geneva
Minimalistic Acoustic Parameter Set) is the field's standard classic feature set for
speech emotion recognition: 88 functionals per utterance of prosodic, voice-quality and
spectral descriptors, chosen by their theoretical and empirical relevance and computed by
openSMILE (`data_prep.egemaps`). A model on them is the reference a learned front end is
usually measured against; the `classic` baseline (`classic.py`) is the same classifier on
statistics of the networks' own MFCC matrices, so the two together tell how much of a
deep model's score a hand-made feature set already gets (docs/SWEEPS.md).

Everything after the features is `classic.run_linear`: standardisation with the training
utterances' statistics, a class-balanced linear classifier, its C chosen by
leave-one-speaker-out inside the training speakers, one score of the test speakers, and a
run directory with the classic baseline's files and keys. The features are read from each
utterance's audio file (`data_prep.Split.paths`), whole, not from the 2 s / 8 s crop of
the MFCC matrices; a fold without audio paths (a toy fold) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from emodarts_core.config import ConfigError, TrainConfig

from .classic import ClassicConfig, run_linear

EGEMAPS = "egemaps"


@dataclass
class EgemapsConfig(ClassicConfig):
    """The egemaps baseline's settings: the classic classifiers', and the analysis rate."""

    baseline: ClassVar[str] = EGEMAPS
    sample_rate: int | None = None  # None: each recording's own rate; a number resamples to it first

    def validate(self) -> "EgemapsConfig":
        super().validate()
        if self.sample_rate is not None and (not isinstance(self.sample_rate, int) or isinstance(
                self.sample_rate, bool) or self.sample_rate < 8000):
            raise ConfigError(f"egemaps sample_rate must be None (the recording's own rate) or an integer >= 8000 "
                              f"(Hz), got {self.sample_rate!r}")
        if self.n_mfcc is not None:
            raise ConfigError(f"egemaps has no MFCC coefficients to choose (n_mfcc is the classic baseline's), got "
                              f"{self.n_mfcc!r}")
        return self


def fold_audio(fold_data) -> dict[str, str]:
    """utterance id -> its audio file, over the fold's splits; a fold without them is refused."""
    from data_prep import DataError

    out = {}
    for name in ("search", "train", "test"):
        split = getattr(fold_data, name, None)
        if split is None:
            continue
        paths = getattr(split, "paths", None)
        if paths is None:
            raise DataError(f"the fold's {name} split carries no audio paths (a toy fold, or splits made without "
                            "data_prep.load_fold): the egemaps baseline reads each utterance's audio file; "
                            "load the fold from a corpus with data_prep.load_fold")
        out.update(zip(split.ids, paths))
    return out


def egemaps_featuriser(fold_data, cfg: EgemapsConfig, progress: bool = False):
    """split -> [n, 88] float64 for the fold's splits: the whole fold's table is computed
    (or read from the cache) at the first call, for every utterance of the fold at once."""
    from data_prep.egemaps import egemaps_table

    audio = fold_audio(fold_data)
    table: dict[str, np.ndarray] = {}

    def featurise(split) -> np.ndarray:
        if not table:
            ids = list(audio)
            table.update(zip(ids, egemaps_table([audio[i] for i in ids], sample_rate=cfg.sample_rate,
                                                progress=progress)))
        return np.stack([table[i] for i in split.ids]) if len(split.ids) else np.zeros((0, 88))

    return featurise


def run_egemaps(fold_data, train_cfg: TrainConfig, run_dir, resume: bool = False, study: dict | None = None,
                cfg: EgemapsConfig | None = None):
    """Fit the egemaps baseline under `train_cfg.protocol` (its `seed` is recorded only) and
    score the protocol's score split once; returns a `train.TrainResult` (`classic.run_linear`)."""
    cfg = (cfg or EgemapsConfig()).validate()
    featurise = egemaps_featuriser(fold_data, cfg, train_cfg.progress)  # refuses a fold without audio at once
    return run_linear(fold_data, train_cfg, run_dir, cfg, featurise, "standardised eGeMAPS functionals",
                      resume=resume, study=study)


__all__ = ["EGEMAPS", "EgemapsConfig", "egemaps_featuriser", "fold_audio", "run_egemaps"]
