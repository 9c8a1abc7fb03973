"""Self-checks of notebook 05 (the study's statistics): a permutation test by hand, how many
seeds a significant result needs, and what the study's p-value says."""

from __future__ import annotations

import numpy as np

from .marking import Marking, Verdict, as_integer, as_number, is_close, is_unset, mark_choice, self_check


@self_check("05.1 · a permutation test by hand")
def check_permutation_p(m: Marking, differences, p_by_hand) -> Verdict:
    """The two-sided sign-flip permutation p of the paired `differences` (reference:
    `study.stats.paired_permutation_p`, exact for up to 20 pairs)."""
    from emodarts_core.study import stats

    if is_unset(p_by_hand):
        m.absent("p_by_hand")
        return m.verdict()
    d = np.asarray(differences, dtype=float).ravel()
    ref = stats.paired_permutation_p(d, np.zeros_like(d))
    smallest = stats.paired_permutation_p(np.ones_like(d), np.zeros_like(d))
    given = as_number(p_by_hand, "p_by_hand")
    if is_close(given, ref, 1e-9):
        m.right(f"p = {ref:g}: {round(ref * 2 ** d.size)} of the {2 ** d.size} sign flips are at least as extreme.")
    elif is_close(given, ref / 2, 1e-9):
        m.wrong("that is one-sided; count the sign flips whose mean is at least as far from 0 on either side "
                "(|mean| >= |observed mean|).")
    else:
        m.wrong(f"p = {given:g} is not it: flip the sign of each difference in every one of the 2^{d.size} "
                "ways, and count the flips whose |mean| is at least the observed |mean| (the observed signs "
                "count too).")
    m.note(f"with {d.size} pairs the smallest possible p is 2 / 2^{d.size} = {smallest:g} "
           "(every difference of the same sign).")
    return m.verdict()


@self_check("05.2 · how many seeds until p < 0.05 is possible")
def check_seeds_needed(m: Marking, folds, seeds_needed, level: float = 0.05) -> Verdict:
    """The fewest seeds per fold for which a paired permutation test over folds x seeds
    cells can reach p < `level` at all (every difference of one sign)."""
    from emodarts_core.study import stats

    if is_unset(seeds_needed):
        m.absent("seeds_needed")
        return m.verdict()
    folds = as_integer(folds, "folds")

    def smallest_p(seeds: int) -> float:
        n = folds * seeds
        return stats.paired_permutation_p(np.ones(n), np.zeros(n))

    ref = next(s for s in range(1, 64) if smallest_p(s) < level)
    given = as_integer(seeds_needed, "seeds_needed")
    if given == ref:
        m.right(f"{ref} seed(s): {folds * ref} pairs, smallest p = {smallest_p(ref):g}.")
    elif given > ref:
        m.wrong(f"{given} would do, but fewer suffice: compute the smallest p for {folds} x s pairs for s = 1, 2, ...")
    else:
        m.wrong(f"with {given} seed(s) the smallest possible p is {smallest_p(given):g}, not below {level}.")
    m.note(f"with {folds} pairs (one seed) no test can reach {level}: the smallest p is {smallest_p(1):g}. "
           "Power comes from the number of paired cells.")
    return m.verdict()


@self_check("05.3 · reading the paired p of searched vs random architectures")
def check_study_p(m: Marking, study, p_random, meaning, protocol: str = "full") -> Verdict:
    """The permutation p (`p_perm`) of emoDARTS vs the random architectures under
    `protocol`, from `study.results.compare_study(study)`, and what it means (multiple
    choice `p_value`, whose options hold for any p). Where the study has too few (fold,
    seed) cells for p to go below 0.05 the verdict says so: no lead could be shown there."""
    premises_hold = True
    if is_unset(p_random):
        m.absent("p_random")
    if study is None or len(study) == 0:
        if not is_unset(p_random):
            m.cannot("this results folder holds no study: run the notebook on the study committed with the "
                     "repository (results/emodb, the default) or a sweep's results to check `p_random`.")
    else:
        from emodarts_core.study import results, stats

        comparisons = results.compare_study(study)
        rows = comparisons[(comparisons["model"] == "random") & (comparisons["protocol"] == protocol)]
        if rows.empty:
            m.cannot(f"no comparison with random architectures under protocol {protocol!r} in this study "
                     f"(protocols: {', '.join(sorted(set(comparisons['protocol']))) or 'none'}).")
            premises_hold = False
        else:
            main = rows[rows["reference_scope"] == "emodarts"]
            row = (main if not main.empty else rows).iloc[0]
            n = int(row["n"])
            floor = stats.paired_permutation_p(np.ones(n), np.zeros(n)) if n else 1.0
            if not is_unset(p_random):
                given = as_number(p_random, "p_random")
                if is_close(given, row["p_perm"], 1e-3):
                    m.right(f"p_perm = {row['p_perm']:g} over n = {n} (fold, seed) cells, whose smallest possible "
                            f"p is 2/2^{n} = {floor:.2g}; emoDARTS - random = {row['mean_diff']:+.2f} points "
                            f"[{row['diff_low']:.2f}, {row['diff_high']:.2f}].")
                elif is_close(given, row["p_boot"], 1e-3):
                    m.wrong("that is the bootstrap p (`p_boot`); the question asks for the permutation p (`p_perm`).")
                elif is_close(given, row["p_perm_holm"], 1e-3):
                    m.wrong("that is the Holm-adjusted p; the question asks for the plain permutation p (`p_perm`).")
                else:
                    m.wrong(f"p = {given:g} is not it: take `p_perm` of the row with model 'random' and protocol "
                            f"{protocol!r} of the comparison table.")
            if floor >= 0.05:
                m.note(f"with n = {n} cells no sign pattern is rarer than {floor:.2g}: this study could not show "
                       "a lead at 0.05 whatever the models did.")
    if premises_hold:
        mark_choice(m, "p_value", meaning, "meaning")
    return m.verdict()
