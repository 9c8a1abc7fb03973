"""Self-checks of notebook 06 ("Does the search help?"): the seeds' consensus, how well the
supernet ranks architectures, perturbation against the size of α, and the optimism of the
best test epoch. Every reference is computed here from the notebook's own objects with the
library (`study.stability.agreement`, `scipy.stats.kendalltau`)."""

from __future__ import annotations

import numpy as np

from .marking import Marking, Verdict, as_number, is_close, is_unset, self_check


def _genotype_dict(genotype) -> dict:
    data = genotype.to_dict() if hasattr(genotype, "to_dict") else dict(genotype)
    return {k: v for k, v in data.items() if k != "metadata"}


def _share(m: Marking, given, ref: float, name: str, what: str) -> None:
    value = as_number(given, name)
    if is_close(value, ref, 1e-6):
        m.right(f"{what}: {ref:.3f} of the edges.")
    elif is_close(value, 100 * ref, 1e-4):
        m.wrong(f"`{name}` looks like a percentage; give it as a share between 0 and 1.")
    else:
        m.wrong(f"{value:g} is not it: count the edges (cell, node, input, op) of the first genotype that the "
                "second one also holds, over the first one's edges (`stability.agreement`).")


@self_check("06.1 · what the seeds share")
def check_consensus_share(m: Marking, consensus, seed_genotype, share) -> Verdict:
    """The share of the consensus genotype's edges that seed 0's genotype also holds."""
    from emodarts_core.study.stability import agreement

    if is_unset(share):
        m.absent("share")
        return m.verdict()
    ref = agreement(_genotype_dict(consensus), _genotype_dict(seed_genotype))
    _share(m, share, ref, "share", "the consensus shares with seed 0")
    m.note("Compare it with two random genotypes of this space (0.09 in the EmoDB study's space) and with two "
           "searches of the prior, whose α never moved: a consensus of noise shares edges with each seed too.")
    return m.verdict()


@self_check("06.2 · does the supernet rank architectures?")
def check_ranking_tau(m: Marking, one_shot_ua, stand_alone_ua, tau) -> Verdict:
    """Kendall's τ between the architectures' one-shot UA and their stand-alone UA."""
    from scipy import stats

    if is_unset(tau):
        m.absent("tau")
        return m.verdict()
    a, b = np.asarray(one_shot_ua, dtype=float), np.asarray(stand_alone_ua, dtype=float)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        ref = float("nan")
    else:
        ref = float(stats.kendalltau(a, b).statistic)
    given = as_number(tau, "tau")
    if np.isnan(ref):
        if np.isnan(given):
            m.right("one of the two scores is the same for every architecture, so τ is not defined (nan).")
        else:
            m.wrong("one score is constant over the architectures: τ is not defined here (nan).")
    elif is_close(given, ref, 1e-6):
        m.right(f"τ = {ref:+.3f}.")
    elif is_close(given, float(stats.spearmanr(a, b).statistic), 1e-6):
        m.wrong("that is Spearman's ρ; the exercise asks for Kendall's τ (scipy.stats.kendalltau).")
    else:
        m.wrong(f"{given:g} is not it: use scipy.stats.kendalltau on the two lists, in the same architecture order.")
    m.note("A handful of architectures gives a wide interval; read τ against the ceiling of two stand-alone "
           "retrainings of the same architectures (study.ranking.seed_ceiling).")
    return m.verdict()


@self_check("06.3 · perturbation against the size of α")
def check_pt_agreement(m: Marking, alpha_genotype, pt_genotype, share) -> Verdict:
    """The share of the α-parsed genotype's edges that the perturbation-selected one also holds."""
    from emodarts_core.study.stability import agreement

    if is_unset(share):
        m.absent("share")
        return m.verdict()
    ref = agreement(_genotype_dict(alpha_genotype), _genotype_dict(pt_genotype))
    _share(m, share, ref, "share", "perturbation keeps of the α parse")
    m.note("Where they differ, the supernet relies on an op that α did not rank first (Wang et al., ICLR 2021).")
    return m.verdict()


@self_check("06.4 · the optimism of the best test epoch")
def check_optimism_gap(m: Marking, trace, honest_ua, gap) -> Verdict:
    """The best test UA over the epochs of a traced `full` retraining minus its honest
    (last-epoch) UA, in UA points."""
    if is_unset(gap):
        m.absent("gap")
        return m.verdict()
    best = max(float(t["test_ua"]) for t in trace)
    ref = 100.0 * (best - float(honest_ua))
    given = as_number(gap, "gap")
    if is_close(given, ref, 1e-6):
        m.right(f"best epoch - honest = {ref:+.2f} points.")
    elif is_close(100.0 * given, ref, 1e-4):
        m.wrong("`gap` looks like a difference of fractions; give it in UA points (percent).")
    else:
        m.wrong(f"{given:g} is not it: the largest `test_ua` of the trace minus the run's `test_ua`, times 100.")
    m.note("It is never below zero, and it is what choosing the epoch on the test speakers adds: a bias to "
           "subtract from numbers reported that way, never a result.")
    return m.verdict()


__all__ = ["check_consensus_share", "check_optimism_gap", "check_pt_agreement", "check_ranking_tau"]
