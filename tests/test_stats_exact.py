"""The study's primary test: the exact sign-flip test over test speakers' paired UA differences."""

import itertools

import numpy as np
import pytest

from emodarts_core.study import stats


def test_exact_sign_flip_p_equals_a_hand_enumeration_of_32_patterns():
    d = np.array([5.0, 3.0, 2.0, 1.0, -1.0])  # observed sum 10
    # By hand: flipping the subset S turns the sum into 10 - 2 * sum(d[S]); it is as extreme
    # (|sum| >= 10) when sum(d[S]) <= 0 or >= 10: S = {}, {-1}, {1, -1} and their complements
    # {5, 3, 2, 1}, {5, 3, 2, 1, -1} ... i.e. the full set, {5, 3, 2, 1} and {5, 3, 2}: 6 of 32.
    assert stats.exact_sign_flip_p(d) == pytest.approx(6 / 32)
    sums = [abs(sum(s * x for s, x in zip(signs, d))) for signs in itertools.product((1, -1), repeat=5)]
    assert len(sums) == 32 and sum(v >= 10 for v in sums) == 6


def test_exact_p_floor_edge_cases_and_agreement_with_the_enumeration():
    assert stats.exact_min_p(10) == pytest.approx(2 / 1024)
    assert stats.exact_sign_flip_p([0.3, 0.1, 0.2, 0.4, 0.5, 0.6, 0.7, 0.2, 0.9, 0.1]) == pytest.approx(2 / 1024)
    assert stats.exact_sign_flip_p([0.0, 0.0, 0.0]) == 1.0  # no difference at all
    assert np.isnan(stats.exact_sign_flip_p([])) and np.isnan(stats.exact_min_p(0))
    assert stats.exact_sign_flip_p([4.0]) == 1.0  # one pair: both signs as extreme
    with pytest.raises(ValueError, match="NaN"):
        stats.exact_sign_flip_p([1.0, np.nan])
    rng = np.random.default_rng(3)
    for _ in range(5):  # the module's own meet-in-the-middle enumeration agrees with scipy's
        d = rng.normal(0.5, 1.0, size=8).round(2)
        assert stats.exact_sign_flip_p(d) == pytest.approx(stats.paired_permutation_p(d, np.zeros(8)))


def test_speaker_exact_test_pairs_each_speakers_ua():
    # two speakers, two classes each; model a right everywhere, b right on half of each class of s1
    labels = np.array([0, 0, 1, 1, 0, 1])
    speakers = np.array(["s1", "s1", "s1", "s1", "s2", "s2"])
    a = np.ones(6)
    b = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    names, uas = stats.speaker_uas(b, labels, speakers)
    assert names.tolist() == ["s1", "s2"] and uas == pytest.approx([0.5, 0.5])
    out = stats.speaker_exact_test(a, b, labels, speakers)
    assert out["n_speakers"] == 2 and out["speaker_diff_mean"] == pytest.approx(0.5)
    assert out["p"] == pytest.approx(2 / 4) and out["p_min"] == pytest.approx(2 / 4)
