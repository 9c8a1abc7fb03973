"""The `classic` baseline: statistics of each utterance's MFCCs and a classifier chosen nested.

Speech emotion recognition toolkits and the openSMILE + SVM literature report a model
that trains in seconds on utterance-level statistics beside any deep one; a deep search
has to beat it to mean something. This one uses the same MFCC matrices as the networks
(`data_prep.features`, [F, T] per utterance) and computes per coefficient:

- the mean, standard deviation, minimum and maximum over the frames;
- the mean and standard deviation of the deltas (librosa's regression deltas, width 9);

6 F values per utterance, standardised with the mean and standard deviation of the
utterances it trains on (never a test speaker), then a classifier with class weights
balanced so that its objective is near the unweighted accuracy the study reports:
multinomial logistic regression (`logistic`), a linear SVM (`svm`) or an SVM with an RBF
kernel (`rbf`; gamma = 1 / (d · variance), scikit-learn's "scale", which on standardised
features is 1 / d: a rule fixed before any data, as in the eGeMAPS literature's SVMs).

Every setting is chosen nested, on the run's training speakers only: each candidate of
the grid (family x number of MFCC coefficients x C, `ClassicConfig.candidates`) is scored
by leave-one-speaker-out, every training speaker held out in turn with the
standardisation and the classifier fitted on the others, and the candidate whose pooled
held-out predictions have the best UA wins (ties: the earlier candidate, i.e. the family
listed first, fewer coefficients, the smaller C). The statistics of the first k
coefficients are the columns of those coefficients (`statistics_columns`), so a smaller
k is the same features with the higher coefficients left out. The classifier is then
fitted on all the training utterances with the chosen setting and scores the test
speakers once. result.json records the choice, every candidate's score and which
speakers judged it (`choice.judged_by`, never a test speaker).

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
MODELS = ("logistic", "svm", "rbf")
RESULT = "result.json"


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


@dataclass
class ClassicConfig:
    """The classic baseline's settings: the classifier families, numbers of MFCC
    coefficients and C values it chooses among (each a value or a list of candidates).

    Another baseline on other utterance features (`egemaps`) extends it."""

    baseline: ClassVar[str] = CLASSIC  # the name in errors, config.json and the sweep's `baselines`
    model: str | tuple[str, ...] = "logistic"
    Cs: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
    n_mfcc: int | tuple[int, ...] | None = None  # None: every coefficient of the features
    max_iter: int = 5000

    def validate(self) -> "ClassicConfig":
        name = self.baseline
        models = _as_tuple(self.model)
        if not models or any(m not in MODELS for m in models) or len(set(models)) != len(models):
            raise ConfigError(f"unknown or repeated {name} model {self.model!r}; valid: {', '.join(MODELS)} "
                              "(one, or a list to choose among)")
        Cs = tuple(self.Cs)
        if not Cs or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0 for c in Cs):
            raise ConfigError(f"{name} Cs must be a non-empty list of numbers > 0, got {self.Cs!r}")
        if self.n_mfcc is not None:
            counts = _as_tuple(self.n_mfcc)
            if not counts or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in counts):
                raise ConfigError(f"{name} n_mfcc must be None, an integer >= 1 or a list of them, got {self.n_mfcc!r}")
            self.n_mfcc = counts[0] if len(counts) == 1 else tuple(sorted(set(counts)))
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ConfigError(f"{name} max_iter must be a positive integer, got {self.max_iter!r}")
        self.model, self.Cs = models[0] if len(models) == 1 else models, tuple(float(c) for c in Cs)
        return self

    def candidates(self) -> list[dict]:
        """The grid chosen among, in tie-break order: family as listed, then fewer
        coefficients, then the smaller C."""
        counts = (None,) if self.n_mfcc is None else _as_tuple(self.n_mfcc)
        return [{"model": m, "n_mfcc": k, "C": c} for m in _as_tuple(self.model) for k in counts
                for c in sorted(self.Cs)]


def candidate_key(candidate: dict) -> str:
    """A candidate's name in result.json: 'rbf, 20 coefficients, C=1' style, stable."""
    k = candidate.get("n_mfcc")
    return f"{candidate['model']} n_mfcc={'all' if k is None else k} C={candidate['C']:g}"


def statistics_columns(n_coefficients: int, k: int | None) -> np.ndarray:
    """The columns of `utterance_statistics` (6 blocks of `n_coefficients`) that belong to
    the first `k` coefficients (all of them for None)."""
    if k is None or k >= n_coefficients:
        return np.arange(6 * n_coefficients)
    return np.concatenate([block * n_coefficients + np.arange(k) for block in range(6)])


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


def _classifier(cfg: ClassicConfig, C: float, model: str | None = None):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = model or _as_tuple(cfg.model)[0]
    if model == "svm":
        from sklearn.svm import LinearSVC

        clf = LinearSVC(C=C, class_weight="balanced", max_iter=cfg.max_iter)
    elif model == "rbf":
        from sklearn.svm import SVC

        clf = SVC(C=C, kernel="rbf", gamma="scale", class_weight="balanced", max_iter=-1)
    else:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=cfg.max_iter)
    return make_pipeline(StandardScaler(), clf)  # the scaler is fitted on the training rows only


def _ua(y_true, y_pred) -> float:
    from emodarts_core.training.metrics import unweighted_accuracy

    return float(unweighted_accuracy(np.asarray(y_true), np.asarray(y_pred)))


def choose_setting(features, y, speakers, cfg: ClassicConfig, columns=None) -> tuple[dict, dict]:
    """The candidate of `cfg.candidates()` with the best leave-one-speaker-out UA over
    `speakers` (ties: the earlier candidate), and each candidate's UA by `candidate_key`.
    `columns(n_mfcc)` gives the feature columns of a candidate's coefficient count (None:
    every column). Needs at least two speakers."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    speakers = np.asarray([str(s) for s in speakers])
    groups = sorted(set(speakers))
    if len(groups) < 2:
        raise ConfigError(f"choosing by leave-one-speaker-out needs at least 2 training speakers, got {groups}")
    y, features = np.asarray(y), np.asarray(features)
    scores, best = {}, None
    for candidate in cfg.candidates():
        view = features if columns is None else features[:, columns(candidate["n_mfcc"])]
        pred = np.empty_like(y)
        for spk in groups:
            out = speakers == spk
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                pred[out] = _classifier(cfg, candidate["C"], candidate["model"]).fit(view[~out], y[~out]).predict(
                    view[out])
        scores[candidate_key(candidate)] = _ua(y, pred)
        if best is None or scores[candidate_key(candidate)] > scores[candidate_key(best)]:
            best = candidate
    return best, scores


#: Choices already made in this process, by the data and grid that made them (`remembered_choice`).
_CHOICES: dict[str, tuple[dict, dict]] = {}


def remembered_choice(features, y, speakers, cfg: ClassicConfig, columns=None) -> tuple[dict, dict]:
    """`choose_setting`, made once per process for the same training data and grid: the
    choice is deterministic, and a study fits the same fold's training utterances once per
    seed (a sweep's worker process runs many of its tasks)."""
    import hashlib
    import json

    features, y = np.ascontiguousarray(features, dtype=np.float64), np.ascontiguousarray(y)
    grid = [{**c, "columns": None if columns is None else np.asarray(columns(c["n_mfcc"])).tolist()}
            for c in cfg.candidates()]
    digest = hashlib.sha256()
    for part in (features.tobytes(), str(features.shape).encode(), y.tobytes(), str(y.dtype).encode(),
                 "\0".join(str(s) for s in speakers).encode(),
                 json.dumps([cfg.baseline, cfg.max_iter, grid], sort_keys=True).encode()):
        digest.update(part)
    key = digest.hexdigest()
    if key not in _CHOICES:
        if len(_CHOICES) >= 64:
            _CHOICES.pop(next(iter(_CHOICES)))
        _CHOICES[key] = choose_setting(features, y, speakers, cfg, columns)
    chosen, scores = _CHOICES[key]
    return dict(chosen), dict(scores)


def forget_choices() -> None:
    """Forget the choices `remembered_choice` holds, so that the next run chooses again."""
    _CHOICES.clear()


def choose_C(features, y, speakers, cfg: ClassicConfig) -> tuple[float, dict]:
    """The C of `cfg.Cs` with the best leave-one-speaker-out UA for `cfg`'s first family
    (ties: the smaller C), and the UA of each C (`choose_setting` over C alone)."""
    import dataclasses

    one = dataclasses.replace(cfg, model=_as_tuple(cfg.model)[0], n_mfcc=None).validate()
    best, scores = choose_setting(features, y, speakers, one)
    return best["C"], {c["C"]: scores[candidate_key(c)] for c in one.candidates()}


def run_classic(fold_data, train_cfg: TrainConfig, run_dir, resume: bool = False, study: dict | None = None,
                cfg: ClassicConfig | None = None):
    """Fit the classic baseline under `train_cfg.protocol` (its `seed` is recorded only) and
    score the protocol's score split once; returns a `train.TrainResult` (`run_linear`)."""
    n_coefficients = int(fold_data.test.X.shape[1])  # an array or data_prep.rows.Rows, never copied
    return run_linear(fold_data, train_cfg, run_dir, cfg or ClassicConfig(),
                      lambda split: utterance_statistics(split.X), "standardised utterance statistics",
                      resume=resume, study=study, columns=lambda k: statistics_columns(n_coefficients, k))


def run_linear(fold_data, train_cfg: TrainConfig, run_dir, cfg: ClassicConfig, featurise: Callable,
               normalise: str, resume: bool = False, study: dict | None = None, columns: Callable | None = None):
    """Fit a linear baseline on `featurise(split)` ([n, d] per utterance) under
    `train_cfg.protocol` and score the protocol's score split once; returns a
    `train.TrainResult`. `cfg.baseline` names it; `normalise` says what is standardised.

    The training utterances are the protocol's (`protocols.protocol_data`): the 30 %
    training split under ``paper``, every training speaker under ``full``. The family, C
    and (with `columns`, the feature columns of a number of MFCC coefficients) the
    coefficients are chosen by leave-one-speaker-out inside them (`choose_setting`), and the
    standardisation is fitted on them alone (`_classifier`). The features are computed only when the run is not finished
    already. Same run-directory rules as `run_retrain`.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from emodarts_core.training.loop import claim_run_dir, describe_fold, software_versions
    from emodarts_core.training.metrics import confusion_matrix, weighted_accuracy
    from emodarts_core.training.protocols import protocol_data
    from emodarts_core.training.train import (SELECTIONS, TrainResult, _split_ids, _stored_result, one_class,
                                              prediction_record)

    cfg = cfg.validate()
    train_cfg = train_cfg.validate()
    splits = protocol_data(fold_data, train_cfg.protocol, train_cfg.seed)
    classes = list(getattr(fold_data, "classes", []) or [])
    n_classes = len(classes) or int(max(np.max(splits.train.y), np.max(splits.score.y))) + 1
    selection = "family, C and coefficients by leave-one-speaker-out UA inside the training utterances"
    config = {"kind": "retrain", "model": {"baseline": cfg.baseline}, cfg.baseline: to_dict(cfg),
              "train": {"protocol": train_cfg.protocol, "seed": train_cfg.seed}, "selection": selection,
              "data": describe_fold(fold_data),
              "protocol": {"name": train_cfg.protocol, "scored_on": splits.scored_on,
                           "train": _split_ids(splits.train), "select": None, "score": _split_ids(splits.score)},
              "environment": software_versions()}
    if study is not None:
        config["study"] = dict(study)
    rd, mode = claim_run_dir(run_dir, config, resume)
    try:
        if mode == "finished":
            return _stored_result(rd)
        train_x, score_x = featurise(splits.train), featurise(splits.score)
        y_train = np.asarray(splits.train.y)
        chosen, loso = remembered_choice(train_x, y_train, splits.train.speakers, cfg, columns)
        if columns is not None:
            keep = columns(chosen["n_mfcc"])
            train_x, score_x = train_x[:, keep], score_x[:, keep]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = _classifier(cfg, chosen["C"], chosen["model"]).fit(train_x, y_train)
        y_true, y_pred = np.asarray(splits.score.y), model.predict(score_x)
        confusion = confusion_matrix(y_true, y_pred, n_classes)
        n_params = _n_parameters(model[-1])
        judged_by = sorted({str(s) for s in splits.train.speakers})
        ua, wa = _ua(y_true, y_pred), float(weighted_accuracy(y_true, y_pred))
        result = {"test_ua": ua, "test_wa": wa, "confusion": confusion.tolist(), "classes": classes,
                  "params": n_params, "best_epoch": 0, "best_val_ua": loso[candidate_key(chosen)],
                  "selection": f"{selection} ({SELECTIONS.get(train_cfg.protocol, train_cfg.protocol)} otherwise)",
                  "protocol": train_cfg.protocol, "scored_on": splits.scored_on, "n_test": int(len(y_true)),
                  "one_class": one_class(y_pred), "normalise": normalise,
                  "choice": {**chosen, "loso_ua": loso, "judged_by": judged_by,
                             "judged_how": "leave-one-speaker-out over these training speakers",
                             "test_speakers": sorted({str(s) for s in splits.score.speakers})},
                  "predictions": prediction_record(splits.score, y_pred), "device": "cpu", "precision": "float64"}
        rd.atomic_write_json(RESULT, result)
        rd.mark_finished({"kind": "retrain", **{k: v for k, v in result.items() if k != "predictions"}})
        return TrainResult(ua, wa, confusion, n_params, 0, [])
    finally:
        rd.release()


def _n_parameters(clf) -> int:
    """Fitted numbers of a classifier: weights and biases, or an RBF SVM's support vectors
    and their coefficients."""
    if hasattr(clf, "support_vectors_"):
        return int(np.size(clf.support_vectors_) + np.size(clf.dual_coef_) + np.size(clf.intercept_))
    return int(np.size(clf.coef_) + np.size(clf.intercept_))


__all__ = ["CLASSIC", "MODELS", "ClassicConfig", "candidate_key", "statistics_columns", "utterance_statistics",
           "choose_setting", "remembered_choice", "forget_choices", "choose_C", "run_classic", "run_linear"]
