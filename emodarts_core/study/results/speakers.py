"""The study's statistics over speakers: each model's UA and its difference from emoDARTS,
with intervals from a two-stage bootstrap (speakers, then their utterances;
`emodarts_core.study.stats.speaker_ua_ci` and `speaker_paired_comparison`) and the primary
p-value from the exact sign-flip test over the test speakers' paired UA differences
(`stats.speaker_exact_test`), Holm-adjusted over a protocol's comparisons.

They need each run's per-utterance test predictions (result.json's "predictions": ids,
speakers, true and predicted labels). Each utterance's correctness is first averaged over
the model's runs that scored it: its seeds, and for the random control its architectures
too, so that an utterance counts once however many runs scored it. A model with a finished
run that has no per-utterance predictions (runs from before they were written) gets NaN
here rather than a figure from part of its runs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Columns this module adds to summary.csv: speakers and utterances behind the figures, the
#: UA with its speaker-level interval, and the comparison with the reference (reference -
#: model with its bootstrap interval; the primary p, the exact sign-flip test over the test
#: speakers' paired UA differences, Holm-adjusted over a protocol's comparisons, and the
#: smallest p that test can give; the bootstrap p and its Holm adjustment, secondary).
SPEAKER_COLUMNS = ("n_speakers", "n_utterances", "speaker_ua", "speaker_ua_low", "speaker_ua_high",
                   "speaker_diff", "speaker_diff_low", "speaker_diff_high", "p_exact", "p_exact_holm", "p_exact_min",
                   "p_speakers", "p_speakers_holm")
_KEYS = ["dataset", "protocol", "model", "scope"]
#: Models that measure the study rather than compete in it: `random_reseed`, the random
#: architectures retrained under a second seed, is the ceiling of the supernets' ranking
#: (`study.ranking.ceiling_table`). Their own UA is reported; they are left out of the
#: comparisons with the searched model and of the Holm families, which they would only widen.
NOT_COMPARED = frozenset({"random_reseed"})


def utterance_correctness(part: pd.DataFrame) -> pd.DataFrame | None:
    """One row per test utterance of `part`'s finished runs: `id`, `speaker`, `y_true`,
    `correct` (the share of the runs that were right on it) and `runs`; None when a finished
    run has no per-utterance predictions, or none is finished."""
    done = part[part["ua"].notna()]
    if done.empty or "predictions" not in done:
        return None
    rows = []
    for record in done["predictions"]:
        if not isinstance(record, dict):
            return None
        truth, pred = np.asarray(record["y_true"]), np.asarray(record["y_pred"])
        rows.append(pd.DataFrame({"id": record["ids"], "speaker": record["speakers"], "y_true": truth,
                                  "correct": (truth == pred).astype(float)}))
    table = pd.concat(rows, ignore_index=True)
    if table.groupby("id")["y_true"].nunique().max() > 1:
        raise ValueError("an utterance id has two different true labels among the runs of "
                         f"{done.iloc[0]['model']} ({done.iloc[0]['protocol']})")
    return table.groupby("id", sort=True).agg(speaker=("speaker", "first"), y_true=("y_true", "first"),
                                              correct=("correct", "mean"), runs=("correct", "size")).reset_index()


def _reference_scope(group: pd.DataFrame, reference: str) -> str | None:
    scopes = sorted(set(group.loc[group["model"] == reference, "scope"]))
    if not scopes:
        return None
    return reference if reference in scopes else scopes[0]


def speaker_statistics(study: pd.DataFrame, reference: str = "emodarts", n_resamples: int = 10_000,
                       level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """`SPEAKER_COLUMNS` per (dataset, protocol, model, scope) of `study` (`collect_study`
    with its `predictions` column), in percent; the comparison columns compare `reference`
    (its scope named like it, else its first) with each other model of the same dataset and
    protocol on the utterances both have, each comparison drawing the same resamples."""
    from emodarts_core.study import stats

    rows = []
    for (dataset, protocol), group in study.groupby(["dataset", "protocol"], sort=True):
        ref_scope = _reference_scope(group, reference)
        ref = None if ref_scope is None else utterance_correctness(
            group[(group["model"] == reference) & (group["scope"] == ref_scope)])
        family = []
        for (model, scope), part in group.groupby(["model", "scope"], sort=True):
            row = {"dataset": dataset, "protocol": protocol, "model": model, "scope": scope,
                   **dict.fromkeys(SPEAKER_COLUMNS, math.nan)}
            table = utterance_correctness(part)
            if table is not None:
                ci = stats.speaker_ua_ci(table["correct"], table["y_true"], table["speaker"], n_resamples, level, seed)
                row.update(n_speakers=table["speaker"].nunique(), n_utterances=len(table),
                           speaker_ua=100 * ci.estimate, speaker_ua_low=100 * ci.low, speaker_ua_high=100 * ci.high)
            if (table is not None and ref is not None and model not in NOT_COMPARED
                    and not (model == reference and scope == ref_scope)):
                both = ref.merge(table, on=["id", "speaker", "y_true"], suffixes=("_ref", ""))
                cmp = stats.speaker_paired_comparison(both["correct_ref"], both["correct"], both["y_true"],
                                                      both["speaker"], n_resamples, level, seed)
                exact = stats.speaker_exact_test(both["correct_ref"], both["correct"], both["y_true"],
                                                 both["speaker"])
                row.update(speaker_diff=100 * cmp["diff"], speaker_diff_low=100 * cmp["diff_low"],
                           speaker_diff_high=100 * cmp["diff_high"], p_speakers=cmp["p"], p_exact=exact["p"],
                           p_exact_min=exact["p_min"])
                family.append(row)
            rows.append(row)
        for row, adjusted, exact_adjusted in zip(family, stats.holm([r["p_speakers"] for r in family]),
                                                 stats.holm([r["p_exact"] for r in family])):
            row["p_speakers_holm"], row["p_exact_holm"] = float(adjusted), float(exact_adjusted)
    return pd.DataFrame(rows, columns=[*_KEYS, *SPEAKER_COLUMNS])


__all__ = ["NOT_COMPARED", "SPEAKER_COLUMNS", "utterance_correctness", "speaker_statistics"]
