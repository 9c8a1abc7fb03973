"""Self-checks of notebook 01 (features, folds and the majority baseline): the time a
column of the MFCC image covers, a fold's test speakers, and the majority class's scores."""

from __future__ import annotations

import math

import numpy as np

from .marking import Marking, Verdict, as_integer, as_names, as_number, is_close, is_unset, mark_choice, self_check


@self_check("01.1 · time resolution of the MFCC image")
def check_column_time(m: Marking, feature_cfg, utterance_s, column_ms, audio_columns) -> Verdict:
    """Milliseconds of audio per column of the 128 x 128 image, and how many columns an
    utterance of `utterance_s` seconds reaches (a column counts when the first of its
    `time_pool` frames is centred on a sample of the utterance).

    Reference: `data_prep.features.FeatureConfig`: the hop is `hop_length` samples
    (`n_samples // (n_frames * time_pool - 1)`), a column pools `time_pool` frames, and
    the audio is cut to `duration_s`."""
    cfg = feature_cfg
    step = cfg.hop_length * cfg.time_pool  # samples between the first frames of two columns
    ref_ms = 1000.0 * step / cfg.sample_rate
    seconds = as_number(utterance_s, "utterance_s")
    length = min(int(round(seconds * cfg.sample_rate)), cfg.n_samples)
    ref_columns = min(cfg.n_frames, math.ceil(length / step))
    if is_unset(column_ms):
        m.absent("column_ms")
    else:
        given = as_number(column_ms, "column_ms")
        naive = 1000.0 * cfg.duration_s / cfg.n_frames
        if is_close(given, ref_ms, 0.01):
            m.right(f"a column covers {ref_ms:.3f} ms: hop {cfg.hop_length} samples x {cfg.time_pool} frames "
                    f"at {cfg.sample_rate} Hz.")
        elif is_close(given, naive, 0.01) and not is_close(naive, ref_ms, 0.01):
            m.wrong(f"{given:g} ms is duration / {cfg.n_frames}; but the hop is a whole number of samples, "
                    f"n_samples // (n_frames * time_pool - 1) = `feature_cfg.hop_length`, and a column pools "
                    f"`time_pool` hops.")
        elif is_close(given, ref_ms / cfg.time_pool, 0.01):
            m.wrong(f"{given:g} ms is one hop; a column max-pools `time_pool` = {cfg.time_pool} frames.")
        else:
            m.wrong(f"{given:g} ms is not it: how many samples lie between two columns "
                    "(`feature_cfg.hop_length`, `feature_cfg.time_pool`), and how long is that at the sample rate?")
    if is_unset(audio_columns):
        m.absent("audio_columns")
    else:
        given = as_integer(audio_columns, "audio_columns")
        if given == ref_columns:
            m.right(f"{ref_columns} of {cfg.n_frames} columns hold the {seconds:g} s utterance; "
                    f"the other {cfg.n_frames - ref_columns} are zero padding.")
        elif abs(given - ref_columns) == 1:
            m.wrong(f"off by one: column k starts at sample k x {step}; count the columns whose start lies "
                    f"before the utterance's last sample (a ceiling, not a floor).")
        elif seconds > cfg.duration_s and given != cfg.n_frames:
            m.wrong(f"the utterance is longer than `duration_s` = {cfg.duration_s:g} s: what happens to the "
                    "audio beyond it?")
        else:
            m.wrong(f"{given} columns is not it: the utterance has {length} samples (after cutting to "
                    f"{cfg.duration_s:g} s); how many column steps of {step} samples start inside it?")
    m.note(f"Every utterance becomes {cfg.n_frames} columns: a shorter one is zero-padded to "
           f"{cfg.duration_s:g} s, a longer one is cut (paper section 4.A).")
    return m.verdict()


@self_check("01.2 · the test speakers of a fold")
def check_fold_test_speakers(m: Marking, store, k, seed, test_speakers, why) -> Verdict:
    """The held-out speakers of fold `k` (as `data_prep.folds.make_folds` makes them), and
    why they never reach training (multiple choice `test_speakers`)."""
    from data_prep.folds import make_folds

    if is_unset(test_speakers):
        m.absent("test_speakers")
    else:
        folds = make_folds(store, seed=seed)
        k = as_integer(k, "k")
        if not 1 <= k <= len(folds):
            m.wrong(f"fold {k} does not exist for {store.corpus}: valid folds are 1..{len(folds)}.")
        else:
            ref = sorted(folds[k - 1].test_speakers)
            given = as_names(test_speakers, "test_speakers")
            other = [f.index for f in folds if sorted(f.test_speakers) == given]
            if given == ref:
                train = sorted({s for s in store.speakers if s not in set(ref)})
                m.right(f"fold {k} holds out {', '.join(ref)}; the other {len(train)} speakers train and select.")
            elif other:
                m.wrong(f"those are the test speakers of fold {other[0]}, not of fold {k}.")
            else:
                m.wrong(f"not the test speakers of fold {k}: look at `folds[k - 1]` or the fold table above.")
    mark_choice(m, "test_speakers", why, "why")
    return m.verdict()


@self_check("01.3 · a classifier that never listens")
def check_majority_baseline(m: Marking, fold_data, wa_percent, ua_percent) -> Verdict:
    """WA and UA (%) on the fold's test split of a classifier that always answers the most
    frequent class of the training speakers' utterances (search + training splits; a tie
    goes to the first class in `fold_data.classes`). Reference: `training.metrics`."""
    from emodarts_core.training.metrics import unweighted_accuracy, weighted_accuracy

    if is_unset(wa_percent):
        m.absent("wa_percent")
    if is_unset(ua_percent):
        m.absent("ua_percent")
    if is_unset(wa_percent) and is_unset(ua_percent):
        return m.verdict()
    classes = list(fold_data.classes)
    seen = np.concatenate([np.asarray(fold_data.search.y), np.asarray(fold_data.train.y)])
    majority = int(np.bincount(seen, minlength=len(classes)).argmax())
    test_y = np.asarray(fold_data.test.y)
    always = np.full(len(test_y), majority)
    ref = {"wa_percent": 100.0 * weighted_accuracy(test_y, always),
           "ua_percent": 100.0 * unweighted_accuracy(test_y, always)}
    for name, value in (("wa_percent", wa_percent), ("ua_percent", ua_percent)):
        if is_unset(value):
            continue
        given = as_number(value, name)
        if is_close(given, ref[name], 0.05):
            m.right(f"{name[:2].upper()} = {ref[name]:.2f} %.")
        elif is_close(100.0 * given, ref[name], 0.05):
            m.wrong(f"`{name}` looks like a fraction ({given:g}); give it in percent.")
        else:
            m.wrong(f"`{name}` = {given:g} % is not it: the classifier always answers "
                    f"{classes[majority]!r} (the most frequent class among the training speakers).")
    m.note(f"UA = 100 / {len(np.unique(test_y))} classes whatever the class balance, while WA rewards "
           "answering the frequent class: that is why the paper reports UA beside WA.")
    return m.verdict()
