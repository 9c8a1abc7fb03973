"""The study's statistics on cases with known answers: bootstrap CIs, pooled UA, paired tests."""

import numpy as np
import pytest

from emodarts_core.study import stats


def test_ua_from_confusion_is_mean_recall_over_classes_with_support():
    conf = [[2, 1, 0], [0, 1, 1], [0, 0, 1]]  # recalls 2/3, 1/2, 1
    assert stats.unweighted_accuracy_from_confusion(conf) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    with_empty_class = [[3, 1, 0], [0, 0, 0], [1, 0, 4]]  # class 1 has no test utterance: skipped
    assert stats.unweighted_accuracy_from_confusion(with_empty_class) == pytest.approx((3 / 4 + 4 / 5) / 2)
    assert np.isnan(stats.unweighted_accuracy_from_confusion(np.zeros((4, 4))))


def test_ua_from_confusion_agrees_with_label_metric():
    from emodarts_core.training.metrics import confusion_matrix, unweighted_accuracy

    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 4, 60), rng.integers(0, 4, 60)
    conf = confusion_matrix(y_true, y_pred, 4)
    assert stats.unweighted_accuracy_from_confusion(conf) == pytest.approx(unweighted_accuracy(y_true, y_pred))


def test_bootstrap_ci_of_a_constant_is_a_point():
    ci = stats.bootstrap_ci(np.full(7, 61.25))
    assert ci.estimate == ci.low == ci.high == 61.25
    pairs = np.column_stack([np.full(5, 3.0), np.full(5, 1.0)])
    diff = stats.bootstrap_ci(pairs, statistic=lambda p: np.mean(p[:, 0] - p[:, 1]))
    assert diff.estimate == diff.low == diff.high == 2.0


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    values = np.arange(20.0)
    first, again = stats.bootstrap_ci(values, seed=5), stats.bootstrap_ci(values, seed=5)
    assert first == again
    assert first.estimate == pytest.approx(9.5) and first.low < 9.5 < first.high
    wider = stats.bootstrap_ci(values, level=0.99, seed=5)
    assert wider.low <= first.low and wider.high >= first.high
    # a custom statistic draws the same resamples as the vectorised mean
    assert stats.bootstrap_ci(values, statistic=lambda x: float(np.mean(x)), seed=5) == pytest.approx(first)
    assert all(np.isnan(stats.bootstrap_ci([])))


def test_permutation_p_of_identical_samples_is_one():
    a = np.array([55.0, 61.0, 70.5, 48.0])
    assert stats.paired_permutation_p(a, a) == 1.0
    big = np.linspace(40, 80, 30)  # the random-flip branch
    assert stats.paired_permutation_p(big, big) == 1.0


def test_permutation_p_exact_small_case():
    b = np.array([50.0, 60.0, 55.0, 70.0, 65.0])
    # every difference is +1: only the all-plus and all-minus sign vectors are as extreme
    assert stats.paired_permutation_p(b + 1, b) == pytest.approx(2 / 32)
    # d = (1, 2, 3): |sum| = 6 reached by (+,+,+) and (-,-,-) only
    assert stats.paired_permutation_p([1, 2, 3], [0, 0, 0]) == pytest.approx(2 / 8)
    # d = (1, 2, -1): the sign sums are ±4, ±2 (four times) and 0 (twice), so 6 of 8 reach |2|
    assert stats.paired_permutation_p([1, 2, -1], [0, 0, 0]) == pytest.approx(6 / 8)


def test_permutation_p_random_branch_is_seeded_and_near_the_exact_value():
    rng = np.random.default_rng(0)
    d = rng.normal(0.3, 1.0, 22)
    p = stats.paired_permutation_p(d, np.zeros(22), n_resamples=20_000, seed=1)
    assert p == stats.paired_permutation_p(d, np.zeros(22), n_resamples=20_000, seed=1)
    exact = stats.paired_permutation_p(d, np.zeros(22), exact_max_n=22)
    assert p == pytest.approx(exact, abs=0.01)
    assert np.isnan(stats.paired_permutation_p([], []))
    with pytest.raises(ValueError, match="NaN"):
        stats.paired_permutation_p([1.0, np.nan], [0.0, 0.0])


def test_paired_bootstrap_p_small_for_a_consistent_shift_and_one_for_none():
    rng = np.random.default_rng(2)
    b = rng.normal(60, 8, 25)
    shifted = b + 5 + rng.normal(0, 0.5, 25)
    assert stats.paired_bootstrap_p(shifted, b, n_resamples=5000) == pytest.approx(1 / 5001)
    assert stats.paired_bootstrap_p(b, b) == 1.0
    noise = b + rng.normal(0, 1.0, 25)
    assert stats.paired_bootstrap_p(noise, b) > 0.05
    assert stats.paired_bootstrap_p(shifted, b, seed=4) == stats.paired_bootstrap_p(shifted, b, seed=4)


def test_pooled_ua_is_the_ua_of_summed_confusions():
    run1 = np.array([[5, 1], [2, 4]])
    run2 = np.array([[3, 0], [1, 2]])
    ci = stats.pooled_ua_ci([run1, run2], n_resamples=2000)
    assert ci.estimate == pytest.approx((8 / 9 + 6 / 9) / 2)  # summed: [[8, 1], [3, 6]]
    assert ci.low <= ci.estimate <= ci.high
    assert stats.pooled_ua_ci([run1, run2], n_resamples=2000) == ci  # seeded


def test_pooled_ua_ci_shrinks_with_more_utterances():
    conf = np.array([[7, 2, 1], [1, 6, 3], [2, 2, 6]])
    small = stats.pooled_ua_ci([conf])
    large = stats.pooled_ua_ci([conf * 20])
    assert small.estimate == pytest.approx(large.estimate)
    assert (large.high - large.low) < 0.5 * (small.high - small.low)
    perfect = stats.pooled_ua_ci([np.diag([4, 5, 6])])  # every resample is perfect
    assert perfect == (1.0, 1.0, 1.0)
    assert all(np.isnan(stats.pooled_ua_ci([])))


def test_holm_and_paired_comparison():
    assert stats.holm([0.01, 0.04, np.nan, 0.03]) == pytest.approx([0.03, 0.06, np.nan, 0.06], nan_ok=True)
    result = stats.paired_comparison([3.0, 4.0, np.nan, 6.0], [1.0, 2.0, 5.0, 4.0])
    assert result["n"] == 3 and result["mean_diff"] == pytest.approx(2.0)
    assert result["diff_low"] == result["diff_high"] == pytest.approx(2.0)
    assert result["p_perm"] == pytest.approx(2 / 8)


def test_two_stage_resample_matches_resampling_whole_confusion_matrices():
    """Drawing supports then correct counts has the law of drawing all K*K cells (multinomial)."""
    conf = np.array([[7, 2, 1, 0], [1, 6, 3, 0], [2, 2, 6, 1], [0, 0, 0, 0]])
    rng = np.random.default_rng(0)
    correct, support = stats._resample_run(rng, conf, 40_000)
    assert (support.sum(axis=1) == conf.sum()).all() and (support[:, 3] == 0).all()
    cells = rng.multinomial(conf.sum(), conf.ravel() / conf.sum(), size=40_000).reshape(-1, 4, 4)
    direct = stats._ua_from_counts(np.diagonal(cells, axis1=1, axis2=2), cells.sum(axis=2))
    two_stage = stats._ua_from_counts(correct, support)
    assert two_stage.mean() == pytest.approx(direct.mean(), abs=0.003)
    assert two_stage.std() == pytest.approx(direct.std(), rel=0.03)


def test_paired_bootstrap_needs_two_pairs():
    """One difference has no spread: every resample would equal it, and p would come out
    as 1 / (1 + B) however small the difference."""
    from emodarts_core.study.stats import paired_bootstrap_p

    assert np.isnan(paired_bootstrap_p([0.7], [0.2]))
    assert np.isnan(paired_bootstrap_p([], []))
