"""Statistics of the study: UA with intervals that respect speakers, and paired tests between models.

The primary p-value of a comparison is exact: the sign-flip permutation test over the
test speakers' paired UA differences with all 2^n sign patterns (`speaker_exact_test`),
Holm-adjusted over a protocol's comparisons by the caller; with n speakers it cannot fall
below 2 / 2^n (`exact_min_p`: 0.002 for EmoDB's 10 test speakers). The intervals resample
the study's independent units, the speakers (`speaker_ua_ci`, `speaker_paired_comparison`,
whose bootstrap p is kept as a secondary figure): test utterances of one speaker are not
independent (the same voice, the same recording session), and an utterance scored under
several seeds (and, for the random control, several architectures) is one utterance, so
each utterance's correctness is first averaged over the runs that scored it. The
speaker-level bootstrap then draws speakers with replacement and, within each drawn
speaker, utterances with replacement (a two-stage bootstrap).

The (fold, seed) permutation test (`paired_permutation_p`, `paired_comparison`) is kept as
a secondary figure: it assumes the n (fold, seed) cells are independent pairs whose two
members are exchangeable under the null. The cells are not independent: the seeds of a fold
share its test speakers, and the searches of one seed share their initialisation across
folds, so its n overstates the number of independent units (nearer the number of folds).

Small, pure numpy functions; every random draw comes from `numpy.random.default_rng(seed)`,
so the same inputs always give the same numbers.

In the secondary tests the unit of pairing is a (fold, seed) cell of the speaker-independent cross-validation: two
models trained on the same training speakers with the same seed and tested on the same
held-out speakers. Differences are taken per cell, so the large fold-to-fold spread (some
test speakers are simply harder) cancels, which a comparison of the two means would not do.

Definitions (d_i = a_i - b_i for the n common cells, d̄ their mean):

* percentile bootstrap CI (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*,
  ch. 13): resample the n items with replacement B times, compute the statistic each
  time, and report the (1-level)/2 and (1+level)/2 quantiles of the B values;
* paired sign-flip permutation test (Fisher 1935; Good 2005, *Permutation, Parametric and
  Bootstrap Tests of Hypotheses*, ch. 3): under H0 "a and b are exchangeable within each
  pair" every d_i is equally likely to carry either sign, so
  p = #{s in {±1}^n : |mean(s·d)| >= |d̄|} / 2^n by exact enumeration when n <= 20, and
  p = (1 + #{b : |mean(s_b·d)| >= |d̄|}) / (1 + B) over B random sign vectors otherwise
  (Phipson & Smyth 2010: the +1 keeps a Monte-Carlo p-value valid and never zero);
* paired bootstrap p (Efron & Tibshirani 1993, ch. 16, the one-sample test with the data
  shifted to the null): resample the centred differences d_i - d̄ B times and report
  p = (1 + #{b : |mean(d*_b - d̄)| >= |d̄|}) / (1 + B); this is the two-sided form of
  Berg-Kirkpatrick et al. 2012's paired bootstrap (count of δ(x*) > 2δ(x)).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np

#: Above this many pairs the permutation test draws random sign vectors instead of all 2^n.
EXACT_MAX_N = 20


class Interval(NamedTuple):
    """A point estimate with the bounds of its confidence interval."""

    estimate: float
    low: float
    high: float


# --------------------------------------------------------------------------- UA

def unweighted_accuracy_from_confusion(conf) -> float:
    """UA of a confusion matrix: mean over classes with support of diag[c] / row_sum[c].

    Rows are the true class, columns the predicted class (as `training.metrics.confusion_matrix`
    writes it). This is the confusion-matrix form of `training.metrics.unweighted_accuracy`
    (mean per-class recall over the classes present in the ground truth; that one takes label
    vectors and imports torch, this module stays numpy only). NaN for an empty matrix.
    """
    conf = np.asarray(conf, dtype=float)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {conf.shape}")
    support = conf.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(conf)[present] / support[present]))


def _ua_from_counts(correct: np.ndarray, support: np.ndarray) -> np.ndarray:
    """UA per row of `[B, K]` correct counts and class supports (classes without support skipped)."""
    present = support > 0
    recall = np.divide(correct, support, out=np.zeros(correct.shape, dtype=float), where=present)
    with np.errstate(invalid="ignore", divide="ignore"):
        return recall.sum(axis=1) / present.sum(axis=1)


def _resample_run(rng: np.random.Generator, conf: np.ndarray, n_resamples: int) -> tuple[np.ndarray, np.ndarray]:
    """Correct counts and class supports `[B, K]` of B resamples (with replacement) of one run's utterances.

    UA depends on a confusion matrix only through its diagonal and its row sums, so instead
    of drawing all K*K cells the resample is drawn in two exact stages: the class supports
    N ~ Multinomial(n, row_sums / n) (as conditional binomials), then the correct counts
    diag_c ~ Binomial(N_c, C[c, c] / row_sum_c).
    """
    rows = conf.sum(axis=1)
    left = np.full(n_resamples, int(rows.sum()), dtype=np.int64)
    remaining = int(rows.sum())
    support = np.zeros((n_resamples, len(rows)), dtype=np.int64)
    for c, size in enumerate(rows):
        if remaining <= 0:
            break
        support[:, c] = left if size == remaining else rng.binomial(left, size / remaining)
        left = left - support[:, c]
        remaining -= int(size)
    recall = np.divide(np.diag(conf), rows, out=np.zeros(len(rows)), where=rows > 0)
    return rng.binomial(support, recall), support


# --------------------------------------------------------------------------- bootstrap CIs

def _quantiles(boot: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(data, statistic: Callable[[np.ndarray], float] = np.mean, n_resamples: int = 10_000,
                 level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap CI of `statistic(data)` (Efron & Tibshirani 1993, ch. 13).

    `data` is a 1-D array of values, or a 2-D array of n rows (e.g. `[n, 2]` pairs) whose rows
    are resampled together. Each of the `n_resamples` resamples draws n rows with replacement;
    the interval is the ((1-level)/2, (1+level)/2) quantiles (numpy's linear interpolation)
    of the resampled statistics, the estimate is `statistic(data)`. The CI of a constant is
    the point itself; an empty sample gives NaN.
    """
    data = np.asarray(data, dtype=float)
    n = data.shape[0] if data.ndim else 0
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    estimate = float(statistic(data))
    rng = np.random.default_rng(seed)
    boot = np.empty(n_resamples)
    chunk = 10_000
    for start in range(0, n_resamples, chunk):
        index = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        if statistic is np.mean:  # the common case, vectorised; same draws, same numbers
            boot[start:start + len(index)] = data[index].mean(axis=1)
        else:
            boot[start:start + len(index)] = [statistic(data[row]) for row in index]
    return Interval(estimate, *_quantiles(boot, level))


def pooled_ua_ci(confusions: Sequence, n_resamples: int = 2_000, level: float = 0.95, seed: int = 0) -> Interval:
    """Pooled UA over all test utterances of a model's runs, with a percentile bootstrap CI.

    The estimate is the UA of the summed confusion matrices Σ_r C_r (every test utterance of
    every run weighs the same). A confusion matrix is a multiset of n_r (true, predicted)
    pairs; the bootstrap resamples utterances with replacement *within each run* (stratified,
    so each run keeps its size n_r), sums the resampled runs and takes the UA of the sum;
    the interval is the percentile interval of those UAs. Drawing n_r pairs with replacement
    from C_r draws the cells from Multinomial(n_r, C_r / n_r); as UA needs only the diagonal
    and the row sums, those are drawn directly (`_resample_run`, same distribution, fewer
    draws). The interval reflects the sampling of test utterances only (not of speakers,
    folds or seeds). The default 2,000 resamples (a study holds hundreds of runs, each
    drawn separately) put the Monte-Carlo error of a 95 % bound near 0.06 bootstrap
    standard errors, small beside the interval's width of about 4 (Efron & Tibshirani
    1993, ch. 19). NaN when there is no utterance.
    """
    mats = [np.asarray(c, dtype=np.int64) for c in confusions if c is not None and np.size(c)]
    if not mats:
        return Interval(float("nan"), float("nan"), float("nan"))
    shapes = {m.shape for m in mats}
    if len(shapes) != 1:
        raise ValueError(f"confusion matrices differ in shape: {sorted(shapes)}")
    k = mats[0].shape[0]
    total = np.sum(mats, axis=0)
    estimate = unweighted_accuracy_from_confusion(total)
    if total.sum() == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    correct = np.zeros((n_resamples, k), dtype=np.int64)
    support = np.zeros((n_resamples, k), dtype=np.int64)
    for mat in mats:
        if mat.sum():
            run_correct, run_support = _resample_run(rng, mat, n_resamples)
            correct += run_correct
            support += run_support
    return Interval(estimate, *_quantiles(_ua_from_counts(correct, support), level))


# --------------------------------------------------------------------------- paired tests

def _differences(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")
    d = a - b
    if not np.isfinite(d).all():
        raise ValueError("paired samples hold NaN or inf; drop incomplete pairs first")
    return d


def _all_sign_sums(d: np.ndarray) -> np.ndarray:
    """Σ s_i d_i for every s in {±1}^len(d) (2^len(d) values)."""
    sums = np.zeros(1)
    for x in d:
        sums = np.concatenate([sums + x, sums - x])
    return sums


def paired_permutation_p(a, b, n_resamples: int = 100_000, seed: int = 0, exact_max_n: int = EXACT_MAX_N) -> float:
    """Two-sided paired sign-flip permutation p-value of mean(a - b) (Fisher 1935; Good 2005).

    With d = a - b: p = #{s : |Σ s_i d_i| >= |Σ d_i|} / 2^n over all sign vectors s in
    {±1}^n when n <= `exact_max_n` (the observed signs included, so p >= 2/2^n), else
    p = (1 + #{b : |Σ s_b,i d_i| >= |Σ d_i|}) / (1 + n_resamples) over seeded random sign
    vectors (Phipson & Smyth 2010). Identical samples give p = 1; no pair gives NaN.
    The exact sums are enumerated meet-in-the-middle (two halves of 2^(n/2) sums each).
    """
    d = _differences(a, b)
    n = d.size
    if n == 0:
        return float("nan")
    observed = abs(d.sum())
    tol = 1e-9 * max(1.0, float(np.abs(d).sum()))  # ties up to rounding count as "as extreme"
    if n <= exact_max_n:
        half = n // 2
        left, right = _all_sign_sums(d[:half]), _all_sign_sums(d[half:])
        extreme = sum(int(np.count_nonzero(np.abs(x + right) >= observed - tol)) for x in left)
        return extreme / float(2 ** n)
    rng = np.random.default_rng(seed)
    extreme, chunk = 0, 10_000
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        signs = rng.integers(0, 2, size=(size, n), dtype=np.int8) * 2 - 1
        extreme += int(np.count_nonzero(np.abs(signs @ d) >= observed - tol))
    return (1 + extreme) / (1 + n_resamples)


def paired_bootstrap_p(a, b, n_resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired bootstrap p-value of mean(a - b), shifted-null form.

    With d = a - b and d̄ = mean(d): the null distribution is the empirical distribution of
    d shifted to mean zero (Efron & Tibshirani 1993, ch. 16, the one-sample problem). Draw
    n values of d - d̄ with replacement `n_resamples` times and report
    p = (1 + #{b : |mean(d*_b) - d̄| >= |d̄|}) / (1 + n_resamples). This equals the two-sided
    form of Berg-Kirkpatrick et al. (2012). Identical samples give p = 1; fewer than two
    pairs give NaN (one difference has no spread to build a null from: every resample
    would equal it). With few pairs the bootstrap null is coarse; prefer the permutation
    p there.
    """
    d = _differences(a, b)
    n = d.size
    if n < 2:
        return float("nan")
    centred = d - d.mean()
    observed = abs(d.mean())
    tol = 1e-9 * max(1.0, float(np.abs(d).max()))
    rng = np.random.default_rng(seed)
    extreme, chunk = 0, 10_000
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        means = centred[rng.integers(0, n, size=(size, n))].mean(axis=1)
        extreme += int(np.count_nonzero(np.abs(means) >= observed - tol))
    return (1 + extreme) / (1 + n_resamples)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values for a family of tests (NaN entries stay NaN).

    Sort the m finite p-values ascending, p_(i) -> max_{j<=i} min(1, (m - j + 1) p_(j)).
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def paired_comparison(a, b, n_resamples: int = 10_000, n_permutations: int = 100_000, level: float = 0.95,
                      seed: int = 0) -> dict:
    """Everything the summary reports for one paired comparison of a against b.

    `n`, `mean_a`, `mean_b`, `mean_diff` (= mean(a - b)), its percentile bootstrap CI
    (`diff_low`, `diff_high`), `p_perm` (`paired_permutation_p`) and `p_boot`
    (`paired_bootstrap_p`). Pairs where either side is NaN are dropped first.
    """
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = a - b
    ci = bootstrap_ci(d, n_resamples=n_resamples, level=level, seed=seed)
    nan = float("nan")
    return {"n": int(d.size), "mean_a": float(a.mean()) if d.size else nan,
            "mean_b": float(b.mean()) if d.size else nan, "mean_diff": ci.estimate, "diff_low": ci.low,
            "diff_high": ci.high, "p_perm": paired_permutation_p(a, b, n_resamples=n_permutations, seed=seed),
            "p_boot": paired_bootstrap_p(a, b, n_resamples=n_resamples, seed=seed)}


# --------------------------------------------------------------------------- exact test over speakers

def speaker_uas(correct, labels, speakers) -> tuple[np.ndarray, np.ndarray]:
    """Each speaker's UA from utterance correctness: (sorted speaker names, UA per speaker).

    A speaker's UA is the mean over the classes that speaker has of the mean correctness of
    its utterances of that class (the study's metric, restricted to one speaker)."""
    correct, labels, speakers = _utterances(correct, labels, speakers)
    names = np.unique(speakers)
    uas = np.array([float(_weighted_ua(np.ones((1, int(np.sum(speakers == s)))), correct[speakers == s],
                                       labels[speakers == s])[0]) for s in names])
    return names, uas


def exact_min_p(n: int) -> float:
    """The smallest two-sided p the exact sign-flip test over n pairs can give: 2 / 2^n
    (only the observed signs and their mirror image are as extreme); NaN without pairs."""
    return 2.0 / 2.0 ** n if n > 0 else float("nan")


def exact_sign_flip_p(differences) -> float:
    """Two-sided exact sign-flip permutation p of mean(differences) (Fisher 1935; Good 2005).

    Under H0 "the two models are exchangeable within each pair" every difference carries
    either sign with probability 1/2, independently; the p-value is the share of all 2^n
    sign patterns whose |mean| is at least the observed one, every pattern enumerated
    (`scipy.stats.permutation_test` with `permutation_type='samples'` and
    `n_resamples=inf`, scipy's own tolerance for ties). It can be no smaller than
    `exact_min_p(n)`. No difference gives NaN; all-zero differences give 1."""
    from scipy.stats import permutation_test

    d = np.asarray(differences, dtype=float).ravel()
    if not np.isfinite(d).all():
        raise ValueError("paired differences hold NaN or inf; drop incomplete pairs first")
    if d.size == 0:
        return float("nan")
    if not np.any(d) or d.size == 1:  # one pair: both of its signs are as extreme as observed
        return 1.0
    result = permutation_test((d, np.zeros_like(d)), lambda x, y, axis: np.mean(x - y, axis=axis),
                              permutation_type="samples", vectorized=True, n_resamples=np.inf,
                              alternative="two-sided")
    return float(result.pvalue)


def speaker_exact_test(correct_a, correct_b, labels, speakers) -> dict:
    """The study's primary test of UA(a) - UA(b): the exact sign-flip test over the test
    speakers' paired UA differences (`speaker_uas`, `exact_sign_flip_p`).

    A speaker, not an utterance or a (fold, seed) cell, is the independent unit: its
    utterances share a voice and a session, and every run scoring it shares its test
    fold. Returns `n_speakers`, `speaker_diff_mean` (the mean of the per-speaker
    differences), `p` and `p_min` (`exact_min_p`)."""
    names, ua_a = speaker_uas(correct_a, labels, speakers)
    _, ua_b = speaker_uas(correct_b, labels, speakers)
    d = ua_a - ua_b
    return {"n_speakers": int(d.size), "speaker_diff_mean": float(d.mean()) if d.size else float("nan"),
            "p": exact_sign_flip_p(d), "p_min": exact_min_p(int(d.size)), "speakers": names.tolist()}


# --------------------------------------------------------------------------- speakers, then utterances

def resample_weights(speakers, n_resamples: int, rng: np.random.Generator, hierarchical: bool = True) -> np.ndarray:
    """How often each utterance is drawn in each of `n_resamples` resamples: `[B, N]` counts.

    Hierarchical (Davison & Hinkley 1997, *Bootstrap Methods and their Application*, sec.
    3.8, the two-stage bootstrap of clustered data): draw S speakers with replacement from
    the S of `speakers`, then for each draw of speaker s, n_s of its utterances with
    replacement. A speaker drawn k times contributes k n_s utterance draws, which is one
    draw from Multinomial(k n_s, uniform over its utterances). With `hierarchical=False`
    the N utterances are drawn with replacement, ignoring the speakers.
    """
    speakers = np.asarray([str(s) for s in speakers])
    n = len(speakers)
    if not hierarchical:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples)
    names, index = np.unique(speakers, return_inverse=True)
    drawn = rng.multinomial(len(names), np.full(len(names), 1.0 / len(names)), size=n_resamples)  # [B, S]
    weights = np.zeros((n_resamples, n), dtype=np.int64)
    for s in range(len(names)):
        members = np.flatnonzero(index == s)
        weights[:, members] = rng.multinomial(drawn[:, s] * len(members), np.full(len(members), 1.0 / len(members)))
    return weights


def _chunk_sizes(n_resamples: int, n_utterances: int, cells: int = 4_000_000) -> list[int]:
    """Resamples per chunk, so that a chunk's [B, N] weights stay near `cells` numbers
    (a corpus of thousands of utterances would otherwise need gigabytes at once)."""
    step = max(1, cells // max(1, n_utterances))
    return [min(step, n_resamples - start) for start in range(0, n_resamples, step)]


@lru_cache(maxsize=1)
def _one_chunk_of_weights(speakers: tuple[str, ...], n_resamples: int, seed: int, hierarchical: bool) -> np.ndarray:
    weights = resample_weights(speakers, n_resamples, np.random.default_rng(seed), hierarchical)
    weights.setflags(write=False)  # shared by every caller with the same arguments
    return weights


def _resamples(speakers: np.ndarray, n_resamples: int, seed: int, hierarchical: bool) -> Iterator[np.ndarray]:
    """The `resample_weights` of `n_resamples` resamples from `default_rng(seed)`, chunk by
    chunk. A study's summary draws the same ones for every model and comparison of a protocol
    (same utterances, same seed): where they fit in one chunk and `seed` is a number (not a
    generator, whose draws move on), they are drawn once (`_one_chunk_of_weights`)."""
    sizes = _chunk_sizes(n_resamples, len(speakers))
    if len(sizes) == 1 and isinstance(seed, (int, np.integer)):
        return iter([_one_chunk_of_weights(tuple(speakers.tolist()), n_resamples, int(seed), hierarchical)])
    rng = np.random.default_rng(seed)
    return (resample_weights(speakers, size, rng, hierarchical) for size in sizes)


def _weighted_ua(weights: np.ndarray, correct: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """UA of each resample: per class, the weighted mean correctness; then the mean over the
    classes the resample holds."""
    classes = np.unique(labels)
    onehot = (labels[:, None] == classes[None, :]).astype(float)  # [N, K]
    support = weights @ onehot
    hits = weights @ (onehot * correct[:, None])
    return _ua_from_counts(hits, support)


def _utterances(correct, labels, speakers) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    correct, labels = np.asarray(correct, dtype=float).ravel(), np.asarray(labels).ravel()
    speakers = np.asarray([str(s) for s in speakers])
    if not len(correct) == len(labels) == len(speakers):
        raise ValueError(f"{len(correct)} correctness values, {len(labels)} labels and {len(speakers)} speakers")
    if len(correct) and not np.all((correct >= 0) & (correct <= 1)):
        raise ValueError("correctness must lie in [0, 1] (the share of runs right on an utterance)")
    return correct, labels, speakers


def speaker_ua_ci(correct, labels, speakers, n_resamples: int = 10_000, level: float = 0.95, seed: int = 0,
                  hierarchical: bool = True) -> Interval:
    """UA with a percentile interval from resampling speakers, then their utterances.

    `correct[i]` is utterance i's correctness in [0, 1], already averaged over the runs that
    scored it (seeds, and architectures for a random control), so that an utterance scored
    by several runs counts once; `labels[i]` its true class, `speakers[i]` its speaker. The
    estimate is the UA of the data (mean over classes of the mean correctness), the interval
    the (1-level)/2 and (1+level)/2 quantiles over `resample_weights` resamples; with
    `hierarchical=False` only utterances are resampled. NaN without utterances.

    Resampling at both stages counts the within-speaker variation twice (once in the
    spread of the drawn speakers' means, once in the redrawn utterances), so the interval
    errs on the wide side: by a factor up to about √2 when all speakers are alike
    (Davison & Hinkley 1997, sec. 3.8). When speakers differ, the first stage dominates.
    """
    correct, labels, speakers = _utterances(correct, labels, speakers)
    if not len(correct):
        return Interval(float("nan"), float("nan"), float("nan"))
    estimate = float(_weighted_ua(np.ones((1, len(correct))), correct, labels)[0])
    boot = np.concatenate([_weighted_ua(weights, correct, labels)
                           for weights in _resamples(speakers, n_resamples, seed, hierarchical)])
    return Interval(estimate, *_quantiles(boot, level))


def speaker_paired_comparison(correct_a, correct_b, labels, speakers, n_resamples: int = 10_000,
                              level: float = 0.95, seed: int = 0, hierarchical: bool = True) -> dict:
    """UA(a) - UA(b) on the same utterances, with an interval and a p-value from the same
    hierarchical resamples (speakers, then their utterances) for both models.

    Each resample draws one set of utterance weights and computes both models' UA on it,
    so what the two share (which speakers and utterances were drawn) cancels in the
    difference. The interval is the percentile interval of the resampled differences; the
    p-value is the shifted-null bootstrap p (Efron & Tibshirani 1993, ch. 16):
    p = (1 + #{b : |d*_b - d| >= |d|}) / (1 + B). Identical models give d = 0 and p = 1; a
    model right on every utterance against one wrong on every utterance gives d*_b = d in
    every resample, hence p = 1 / (1 + B), the smallest this p can be.
    Returns `n_utterances`, `n_speakers`, `ua_a`, `ua_b`, `diff`, `diff_low`, `diff_high`, `p`.
    """
    correct_a, labels, speakers = _utterances(correct_a, labels, speakers)
    correct_b, _, _ = _utterances(correct_b, labels, speakers)
    nan = float("nan")
    out = {"n_utterances": int(len(labels)), "n_speakers": int(len(set(speakers.tolist()))), "ua_a": nan,
           "ua_b": nan, "diff": nan, "diff_low": nan, "diff_high": nan, "p": nan}
    if not len(labels):
        return out
    ones = np.ones((1, len(labels)))
    ua_a, ua_b = float(_weighted_ua(ones, correct_a, labels)[0]), float(_weighted_ua(ones, correct_b, labels)[0])
    diffs = []
    for weights in _resamples(speakers, n_resamples, seed, hierarchical):
        diffs.append(_weighted_ua(weights, correct_a, labels) - _weighted_ua(weights, correct_b, labels))
    diffs = np.concatenate(diffs)
    observed = ua_a - ua_b
    tol = 1e-9 * max(1.0, abs(observed))
    extreme = int(np.count_nonzero(np.abs(diffs - observed) >= abs(observed) - tol))
    low, high = _quantiles(diffs, level)
    out.update(ua_a=ua_a, ua_b=ua_b, diff=observed, diff_low=low, diff_high=high,
               p=(1 + extreme) / (1 + n_resamples))
    return out


__all__ = ["Interval", "EXACT_MAX_N", "unweighted_accuracy_from_confusion", "bootstrap_ci", "pooled_ua_ci",
           "paired_permutation_p", "paired_bootstrap_p", "holm", "paired_comparison", "resample_weights",
           "speaker_ua_ci", "speaker_paired_comparison", "speaker_uas", "exact_min_p", "exact_sign_flip_p",
           "speaker_exact_test"]
