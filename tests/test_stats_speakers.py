"""Speaker-level statistics: a two-stage bootstrap (speakers, then utterances), checked on known answers."""

import numpy as np
import pytest

from emodarts_core.study import stats


def _corpus(accuracies, per_speaker=30, seed=0):
    """Utterances of speakers whose accuracy differs: correctness 0/1, two classes alternating."""
    rng = np.random.default_rng(seed)
    correct, labels, speakers = [], [], []
    for s, acc in enumerate(accuracies):
        correct += (rng.random(per_speaker) < acc).astype(float).tolist()
        labels += [i % 2 for i in range(per_speaker)]
        speakers += [f"spk{s}"] * per_speaker
    return np.asarray(correct), np.asarray(labels), np.asarray(speakers)


def test_identical_models_differ_by_zero_with_p_one():
    correct, labels, speakers = _corpus([0.3, 0.6, 0.9, 0.5])
    out = stats.speaker_paired_comparison(correct, correct, labels, speakers, n_resamples=500)
    assert out["diff"] == 0 and out["diff_low"] == 0 and out["diff_high"] == 0 and out["p"] == 1.0
    assert out["n_speakers"] == 4 and out["n_utterances"] == 120


def test_right_everywhere_against_wrong_everywhere_gives_the_smallest_p():
    _, labels, speakers = _corpus([0.5] * 5)
    right, wrong = np.ones(len(labels)), np.zeros(len(labels))
    for n in (99, 999):
        out = stats.speaker_paired_comparison(right, wrong, labels, speakers, n_resamples=n)
        assert out["diff"] == 1.0 and out["diff_low"] == out["diff_high"] == 1.0
        assert out["p"] == pytest.approx(1 / (1 + n))  # no resample is as far from the observed as 0


def test_the_hierarchical_interval_is_wider_when_speakers_differ():
    correct, labels, speakers = _corpus([0.1, 0.95, 0.2, 0.9, 0.15, 0.85], per_speaker=40)
    both = stats.speaker_ua_ci(correct, labels, speakers, n_resamples=4000)
    utterances = stats.speaker_ua_ci(correct, labels, speakers, n_resamples=4000, hierarchical=False)
    assert both.estimate == utterances.estimate
    assert (both.high - both.low) > 3 * (utterances.high - utterances.low)
    # when every speaker is alike, only the within-speaker noise counted twice remains (at most about √2)
    alike = _corpus([0.6] * 6, per_speaker=40, seed=1)
    a, b = (stats.speaker_ua_ci(*alike, n_resamples=4000, hierarchical=h) for h in (True, False))
    assert (a.high - a.low) < 1.6 * (b.high - b.low)


def test_the_estimate_is_the_ua_of_the_averaged_correctness():
    correct = np.array([1.0, 0.5, 0.0, 1 / 3])  # e.g. right under 3 of 3, 1 of 2, 0 of 3, 1 of 3 runs
    labels = np.array([0, 0, 1, 1])
    est = stats.speaker_ua_ci(correct, labels, ["a", "b", "a", "b"], n_resamples=200).estimate
    assert est == pytest.approx(((1.0 + 0.5) / 2 + (0.0 + 1 / 3) / 2) / 2)


def test_a_speaker_drawn_k_times_brings_k_times_its_utterances():
    speakers = np.array(["a"] * 3 + ["b"] * 5 + ["c"] * 2)
    w = stats.resample_weights(speakers, 1000, np.random.default_rng(0))
    assert w.shape == (1000, 10) and (w >= 0).all()
    draws_a, draws_b, draws_c = w[:, :3].sum(1), w[:, 3:8].sum(1), w[:, 8:].sum(1)
    assert (draws_a % 3 == 0).all() and (draws_b % 5 == 0).all() and (draws_c % 2 == 0).all()
    assert ((draws_a // 3) + (draws_b // 5) + (draws_c // 2) == 3).all()  # 3 speakers drawn each time
    flat = stats.resample_weights(speakers, 10, np.random.default_rng(0), hierarchical=False)
    assert (flat.sum(1) == 10).all()


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="labels"):
        stats.speaker_ua_ci([1, 0], [0], ["a", "b"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.speaker_ua_ci([2.0], [0], ["a"])
    assert np.isnan(stats.speaker_ua_ci([], [], []).estimate)


# --------------------------------------------------------------------------- in the study's tables

def _run(root, model, fold, seed, ids, speakers, y_true, y_pred, arch=None, predictions=True):
    import json

    path = root / model / f"fold{fold}" / f"seed{seed}" / (f"arch{arch}" if arch is not None else "r")
    path.mkdir(parents=True)
    study = {"dataset": "emodb", "protocol": "full", "model": model, "scope": "", "fold": fold, "seed": seed,
             "arch": arch}
    (path / "config.json").write_text(json.dumps({"kind": "retrain", "study": study}))
    conf = np.zeros((2, 2), dtype=int)
    for t, p in zip(y_true, y_pred):
        conf[t, p] += 1
    result = {"test_ua": 0.5, "test_wa": 0.5, "confusion": conf.tolist(), "params": 1}
    if predictions:
        result["predictions"] = {"ids": ids, "speakers": speakers, "y_true": y_true, "y_pred": y_pred}
    (path / "result.json").write_text(json.dumps(result))


FOLDS = {1: (["a1", "a2", "b1", "b2"], ["a", "a", "b", "b"], [0, 1, 0, 1]),
         2: (["c1", "c2", "d1", "d2"], ["c", "c", "d", "d"], [0, 1, 1, 0])}


def test_the_study_averages_each_utterance_over_seeds_and_architectures(tmp_path):
    from emodarts_core.study.results import collect_study, summarise_study
    from emodarts_core.study.results.speakers import utterance_correctness

    for fold, (ids, spk, y) in FOLDS.items():
        for seed in (0, 1):
            _run(tmp_path, "emodarts", fold, seed, ids, spk, y, y)  # right on every utterance
            _run(tmp_path, "cnn", fold, seed, ids, spk, y, [1 - v for v in y])  # wrong on every one
            _run(tmp_path, "same", fold, seed, ids, spk, y, y)
            for arch in range(2):  # random: right on the first utterance of each speaker under arch 0 only
                pred = [v if (arch == 0 and i % 2 == 0) else 1 - v for i, v in enumerate(y)]
                _run(tmp_path, "random", fold, seed, ids, spk, y, pred, arch=arch)
            _run(tmp_path, "old", fold, seed, ids, spk, y, y, predictions=False)
            # the ceiling's second training of random's architectures: reported, never compared
            _run(tmp_path, "random_reseed", fold, seed, ids, spk, y, [1 - v for v in y], arch=0)
    study = collect_study(tmp_path)
    random = utterance_correctness(study[study["model"] == "random"]).set_index("id")
    assert random.loc["a1", "correct"] == 0.5 and random.loc["a2", "correct"] == 0.0
    assert (random["runs"] == 4).all()  # 2 seeds x 2 architectures
    summary = summarise_study(study, n_resamples=500, n_permutations=500, pooled_resamples=100).set_index("model")
    assert summary.loc["random", "speaker_ua"] == pytest.approx(25.0)
    assert (summary.loc["random", "n_speakers"], summary.loc["random", "n_utterances"]) == (4, 8)
    assert summary.loc["cnn", "speaker_diff"] == 100.0 and summary.loc["cnn", "p_speakers"] == pytest.approx(1 / 501)
    assert summary.loc["same", "speaker_diff"] == 0.0 and summary.loc["same", "p_speakers"] == 1.0
    assert np.isnan(summary.loc["emodarts", "speaker_diff"]) and summary.loc["emodarts", "speaker_ua"] == 100.0
    assert np.isnan(summary.loc["old", "speaker_ua"]) and np.isnan(summary.loc["old", "p_speakers"])
    assert summary.loc["old", "ua_mean"] == pytest.approx(50.0)  # the run-level figures stay
    # the primary p: exact over the 4 test speakers (16 sign patterns), Holm over the 3 comparisons
    assert summary.loc["cnn", "p_exact"] == pytest.approx(2 / 16) and summary.loc["cnn", "p_exact_min"] == 2 / 16
    assert summary.loc["same", "p_exact"] == 1.0 and np.isnan(summary.loc["old", "p_exact"])
    # random: a speaker's UA is 25 %, so emoDARTS leads by 75 points on each of the 4 speakers
    assert summary.loc["random", "p_exact"] == pytest.approx(2 / 16)
    # Holm over the 3 finite p (cnn, random, same): 3 x 2/16, then max(that, 2 x 2/16), then 1
    assert summary.loc["cnn", "p_exact_holm"] == pytest.approx(3 * 2 / 16) == summary.loc["random", "p_exact_holm"]
    assert summary.loc["same", "p_exact_holm"] == 1.0
    # the ceiling arm has its UA but no comparison, and is not in the Holm family (else 4 x 2/16)
    assert summary.loc["random_reseed", "speaker_ua"] == 0.0
    assert np.isnan(summary.loc["random_reseed", "p_exact"]) and np.isnan(summary.loc["random_reseed", "cmp_diff"])
    assert np.isnan(summary.loc["random_reseed", "p_exact_holm"])


def test_chunked_resampling_agrees_with_one_draw(monkeypatch):
    assert stats._chunk_sizes(10_000, 5_000, cells=1_000_000) == [200] * 50
    assert stats._chunk_sizes(250, 10, cells=1_000) == [100, 100, 50]
    correct, labels, speakers = _corpus([0.2, 0.8, 0.5], per_speaker=20)
    whole = stats.speaker_ua_ci(correct, labels, speakers, n_resamples=300)
    monkeypatch.setattr(stats, "_chunk_sizes", lambda n, m, cells=0: [100, 100, 100])
    chunked = stats.speaker_ua_ci(correct, labels, speakers, n_resamples=300)
    assert chunked.estimate == whole.estimate
    assert chunked.low == pytest.approx(whole.low, abs=0.05) and chunked.high == pytest.approx(whole.high, abs=0.05)


def test_one_chunk_of_resamples_is_drawn_once_with_the_same_numbers():
    """A summary draws the same resamples for every model of a protocol: drawn once, kept read-only."""
    _, _, speakers = _corpus([0.2, 0.8, 0.5], per_speaker=20)
    first, again = list(stats._resamples(speakers, 300, 0, True)), list(stats._resamples(speakers, 300, 0, True))
    assert len(first) == 1 and again[0] is first[0] and not first[0].flags.writeable
    assert np.array_equal(first[0], stats.resample_weights(speakers, 300, np.random.default_rng(0)))
    other = next(stats._resamples(speakers, 300, 1, True))
    assert not np.array_equal(other, first[0])
    assert np.array_equal(other, stats.resample_weights(speakers, 300, np.random.default_rng(1)))
    generator = np.random.default_rng(0)  # a generator moves on: its draws are never kept
    assert next(stats._resamples(speakers, 300, generator, True)) is not next(stats._resamples(speakers, 300,
                                                                                                generator, True))
