"""The `classic` baseline: statistics of each utterance's MFCCs and a linear classifier.

Speech emotion recognition toolkits and the openSMILE + SVM literature report a model
that trains in seconds on utterance-level statistics beside any deep one; a deep search
has to beat it to mean something. This one uses the same MFCC matrices as the networks
(`data_prep.features`, [F, T] per utterance) and computes per coefficient:

- the mean, standard deviation, minimum and maximum over the frames;
- the mean and standard deviation of the deltas (librosa's regression deltas, width 9);

6 F values per utterance, standardised with the mean and standard deviation of the
utterances it trains on (never a test speaker), then a linear classifier: multinomial
logistic regression (`model="logistic"`) or a linear SVM (`model="svm"`), with class
weights balanced so that its objective is near the unweighted accuracy the study reports.

The regularisation C is chosen on training speakers only: for each C in `Cs`, every
training speaker in turn is held out, the standardisation and the classifier are fitted
on the others and the held-out speaker's utterances are predicted; the C whose pooled
leave-one-speaker-out predictions have the best UA wins (ties: the smaller C, the
stronger regularisation). The classifier is then fitted on all the training utterances
with that C and scores the test speakers once.

It writes a run directory like `run_retrain` (config.json, result.json with the same
keys, FINISHED), so the sweep and `emodarts_core.study.results` treat it as any other
baseline. Nothing in it is random (the solvers are deterministic), so every seed of a
(fold, seed) cell gets the same model; the sweep still writes one run per seed, so that
every cell of the study pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from emodarts_core.config import ConfigError, TrainConfig, to_dict

CLASSIC = "classic"
MODELS = ("logistic", "svm")
RESULT = "result.json"


@dataclass
class ClassicConfig:
    """The classic baseline's settings: the classifier and the C values it chooses among.

    Another linear baseline on other utterance features (`egemaps`) extends it."""

    baseline: ClassVar[str] = CLASSIC  # the name in errors, config.json and the sweep's `baselines`
    model: str = "logistic"
    Cs: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
    max_iter: int = 5000

    def validate(self) -> "ClassicConfig":
        name = self.baseline
        if self.model not in MODELS:
            raise ConfigError(f"unknown {name} model {self.model!r}; valid: {', '.join(MODELS)}")
        Cs = tuple(self.Cs)
        if not Cs or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0 for c in Cs):
            raise ConfigError(f"{name} Cs must be a non-empty list of numbers > 0, got {self.Cs!r}")
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ConfigError(f"{name} max_iter must be a positive integer, got {self.max_iter!r}")
        self.Cs = tuple(float(c) for c in Cs)
        return self


#: Utterances whose statistics are computed at once (32 MiB of float64 [128, 128] features).
STATISTICS_BLOCK = 256


def utterance_statistics(X) -> np.ndarray:
    """[N, 6F] float64: per coefficient the mean, std, min and max over frames, and the mean
    and std of its deltas, for MFCC matrices X [N, F, T] (an array, or `data_prep.rows.Rows`
    read from the store), computed a block of utterances at a time: each utterance's
    statistics are its own, and the features are never held whole in float64."""
    if len(X) <= STATISTICS_BLOCK:
        return _block_statistics(np.asarray(X))
    return np.concatenate([_block_statistics(np.asarray(X[start:start + STATISTICS_BLOCK]))
                           for start in range(0, len(X), STATISTICS_BLOCK)])


def _block_statistics(X: np.ndarray) -> np.ndarray:
    import librosa

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3 or X.shape[2] < 2:
        raise ValueError(f"features must be [N, F, T] with T >= 2, got shape {X.shape}")
    width = min(9, X.shape[2] if X.shape[2] % 2 else X.shape[2] - 1)
    delta = librosa.feature.delta(X, width=max(width, 3), axis=-1, mode="nearest") if X.shape[2] >= 3 \
        else np.diff(X, axis=-1)
    parts = [X.mean(axis=2), X.std(axis=2), X.min(axis=2), X.max(axis=2), delta.mean(axis=2), delta.std(axis=2)]
    return np.concatenate(parts, axis=1)


def _classifier(cfg: ClassicConfig, C: float):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if cfg.model == "svm":
        from sklearn.svm import LinearSVC

        clf = LinearSVC(C=C, class_weight="balanced", max_iter=cfg.max_iter)
    else:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=cfg.max_iter)
    return make_pipeline(StandardScaler(), clf)  # the scaler is fitted on the training rows only


def _ua(y_true, y_pred) -> float:
    from emodarts_core.training.metrics import unweighted_accuracy

    return float(unweighted_accuracy(np.asarray(y_true), np.asarray(y_pred)))


def choose_C(features, y, speakers, cfg: ClassicConfig) -> tuple[float, dict]:
    """The C of `cfg.Cs` with the best leave-one-speaker-out UA over `speakers` (ties: the
    smaller C), and the UA of each C. Needs at least two speakers."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    speakers = np.asarray([str(s) for s in speakers])
    groups = sorted(set(speakers))
    if len(groups) < 2:
        raise ConfigError(f"choosing C by leave-one-speaker-out needs at least 2 training speakers, got {groups}")
    y = np.asarray(y)
    scores = {}
    for C in sorted(cfg.Cs):
        pred = np.empty_like(y)
        for spk in groups:
            out = speakers == spk
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                pred[out] = _classifier(cfg, C).fit(features[~out], y[~out]).predict(features[out])
        scores[C] = _ua(y, pred)
    best = max(sorted(scores), key=lambda C: (scores[C], -C))
    return best, scores


def run_classic(fold_data, train_cfg: TrainConfig, run_dir, resume: bool = False, study: dict | None = None,
                cfg: ClassicConfig | None = None):
    """Fit the classic baseline under `train_cfg.protocol` (its `seed` is recorded only) and
    score the protocol's score split once; returns a `train.TrainResult` (`run_linear`)."""
    return run_linear(fold_data, train_cfg, run_dir, cfg or ClassicConfig(),
                      lambda split: utterance_statistics(split.X), "standardised utterance statistics",
                      resume=resume, study=study)


def run_linear(fold_data, train_cfg: TrainConfig, run_dir, cfg: ClassicConfig, featurise: Callable,
               normalise: str, resume: bool = False, study: dict | None = None):
    """Fit a linear baseline on `featurise(split)` ([n, d] per utterance) under
    `train_cfg.protocol` and score the protocol's score split once; returns a
    `train.TrainResult`. `cfg.baseline` names it; `normalise` says what is standardised.

    The training utterances are the protocol's (`protocols.protocol_data`): the 30 %
    training split under ``paper``, every training speaker under ``full``. C is chosen by
    leave-one-speaker-out inside them (`choose_C`), and the standardisation is fitted on
    them alone (`_classifier`). The features are computed only when the run is not finished
    already. Same run-directory rules as `run_retrain`.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from emodarts_core.training.loop import claim_run_dir, describe_fold, environment
    from emodarts_core.training.metrics import confusion_matrix, weighted_accuracy
    from emodarts_core.training.protocols import protocol_data
    from emodarts_core.training.train import (SELECTIONS, TrainResult, _split_ids, _stored_result, one_class,
                                              prediction_record)

    cfg = cfg.validate()
    train_cfg = train_cfg.validate()
    splits = protocol_data(fold_data, train_cfg.protocol, train_cfg.seed)
    classes = list(getattr(fold_data, "classes", []) or [])
    n_classes = len(classes) or int(max(np.max(splits.train.y), np.max(splits.score.y))) + 1
    selection = "C by leave-one-speaker-out UA inside the training utterances"
    config = {"kind": "retrain", "model": {"baseline": cfg.baseline}, cfg.baseline: to_dict(cfg),
              "train": {"protocol": train_cfg.protocol, "seed": train_cfg.seed}, "selection": selection,
              "data": describe_fold(fold_data),
              "protocol": {"name": train_cfg.protocol, "scored_on": splits.scored_on,
                           "train": _split_ids(splits.train), "select": None, "score": _split_ids(splits.score)},
              "environment": environment()}
    if study is not None:
        config["study"] = dict(study)
    rd, mode = claim_run_dir(run_dir, config, resume)
    try:
        if mode == "finished":
            return _stored_result(rd)
        train_x, score_x = featurise(splits.train), featurise(splits.score)
        y_train = np.asarray(splits.train.y)
        C, loso = choose_C(train_x, y_train, splits.train.speakers, cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = _classifier(cfg, C).fit(train_x, y_train)
        y_true, y_pred = np.asarray(splits.score.y), model.predict(score_x)
        confusion = confusion_matrix(y_true, y_pred, n_classes)
        linear = model[-1]
        n_params = int(np.size(linear.coef_) + np.size(linear.intercept_))
        ua, wa = _ua(y_true, y_pred), float(weighted_accuracy(y_true, y_pred))
        result = {"test_ua": ua, "test_wa": wa, "confusion": confusion.tolist(), "classes": classes,
                  "params": n_params, "best_epoch": 0, "best_val_ua": loso[C],
                  "selection": f"{selection} ({SELECTIONS.get(train_cfg.protocol, train_cfg.protocol)} otherwise)",
                  "protocol": train_cfg.protocol, "scored_on": splits.scored_on, "n_test": int(len(y_true)),
                  "one_class": one_class(y_pred), "normalise": normalise,
                  "choice": {"C": C, "loso_ua": {str(c): v for c, v in loso.items()}},
                  "predictions": prediction_record(splits.score, y_pred), "device": "cpu", "precision": "float64"}
        rd.atomic_write_json(RESULT, result)
        rd.mark_finished({"kind": "retrain", **{k: v for k, v in result.items() if k != "predictions"}})
        return TrainResult(ua, wa, confusion, n_params, 0, [])
    finally:
        rd.release()


__all__ = ["CLASSIC", "ClassicConfig", "utterance_statistics", "choose_C", "run_classic", "run_linear"]
