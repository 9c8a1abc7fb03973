"""The seeds/controls study's results: one row per study retraining (study.csv), paired
comparisons of emoDARTS against every other model, and the study's summary.csv.

A study run carries `config["study"] = {dataset, protocol, model, scope, fold, seed, arch}`
(written by `emodarts_core.study.sweep`); the statistics are `emodarts_core.study.stats`'.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .pack import DiskRun, RunFiles, find_runs
from .runs import atomic_csv, dataset_from_path, lookup, percent, read_object, read_result
from .speakers import NOT_COMPARED, SPEAKER_COLUMNS, speaker_statistics


#: Columns of `collect_study` (and of study.csv). UA and WA in percent; `arch` numbers the
#: random architectures of one (fold, seed) and is empty for every other model.
STUDY_COLUMNS = ("dataset", "protocol", "model", "scope", "fold", "seed", "arch", "ua", "wa", "params", "n_test",
                 "one_class", "run_dir")
#: Columns of `compare_study`: reference minus model, paired over common (fold, seed) cells.
COMPARISON_COLUMNS = ("dataset", "protocol", "reference", "reference_scope", "model", "scope", "n", "mean_reference",
                      "mean_model", "mean_diff", "diff_low", "diff_high", "p_perm", "p_boot", "p_perm_holm")
#: Columns of `summarise_study` (and of the study's summary.csv).
STUDY_SUMMARY_COLUMNS = ("dataset", "protocol", "model", "scope", "n_runs", "n_folds", "n_seeds", "n_archs",
                         "n_one_class", "n_cells", "ua_mean", "ua_std", "wa_mean", "wa_std", "params_mean", "n_test", "pooled_ua",
                         "pooled_ua_low", "pooled_ua_high", "cmp_n", "cmp_diff", "cmp_diff_low", "cmp_diff_high",
                         "p_perm", "p_boot", "p_perm_holm", *SPEAKER_COLUMNS)
_STUDY_KEYS = ["dataset", "protocol", "model", "scope"]


def study_row(run: RunFiles | Path) -> dict | None:
    """One study.csv row for a study retraining run (a `pack.RunFiles`, or a run directory's
    path), or None for any other run; a file of the wrong type is a gap named in `problem`."""
    run = run if isinstance(run, RunFiles) else DiskRun(Path(run), ".")
    config, _ = read_object(run, "config.json")
    study = config.get("study") if config is not None else None
    if not isinstance(study, dict) or lookup(config, "kind", "task") == "search":
        return None
    result, problem = read_result(run)  # a half-written or damaged result is a gap
    result = result or {"confusion": None, "one_class": None, "predictions": None,
                        **dict.fromkeys(("test_ua", "test_wa", "params", "n_test"), math.nan)}

    def integer(value):
        return int(value) if isinstance(value, (int, float, str)) and str(value).lstrip("-").isdigit() else None

    confusion = result["confusion"]
    n_test = result["n_test"] if not math.isnan(result["n_test"]) or confusion is None else float(confusion.sum())
    one_class = result["one_class"]
    if one_class is None and confusion is not None:  # a result without the flag: every prediction in one column
        one_class = bool(np.count_nonzero(confusion.sum(axis=0)) <= 1)
    return {"dataset": study.get("dataset") or dataset_from_path(run.path), "protocol": study.get("protocol", ""),
            "model": study.get("model", ""), "scope": study.get("scope") or "", "fold": integer(study.get("fold")),
            "seed": integer(study.get("seed")), "arch": integer(study.get("arch")),
            "ua": percent(result["test_ua"]), "wa": percent(result["test_wa"]), "params": result["params"],
            "n_test": n_test, "one_class": None if one_class is None else bool(one_class), "run_dir": str(run.path),
            "confusion": confusion, "predictions": result["predictions"], "problem": problem}


def collect_study(root: str | Path) -> pd.DataFrame:
    """One row per retraining run of the seeds/controls study under `root` (`STUDY_COLUMNS` + `confusion`).

    A study run carries `config["study"] = {dataset, protocol, model, scope, fold, seed, arch}`;
    runs without it and search runs are left out. An unfinished run is a row with NaN scores.
    `one_class` flags a run whose test predictions are all one class (result.json's flag, or
    where result.json has none, a confusion matrix with a single non-empty column). The
    `confusion` column holds each run's test confusion matrix (numpy array, rows = true
    class) for `summarise_study`'s pooled UA, and `predictions` its per-utterance test
    predictions (result.json's, None where it has none) for the speaker-level
    statistics (`speakers`); `write_study` keeps both out of study.csv.
    Sorted by dataset, protocol, model, scope, fold, seed, arch.
    """
    rows = [row for row in (study_row(run) for run in find_runs(root)) if row is not None]
    frame = pd.DataFrame(rows, columns=[*STUDY_COLUMNS, "confusion", "predictions", "problem"])
    for column in ("fold", "seed", "arch"):
        frame[column] = pd.array(frame[column].tolist(), dtype="Int64")
    for column in ("ua", "wa", "params", "n_test"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in ("dataset", "protocol", "model", "scope", "run_dir"):
        frame[column] = frame[column].fillna("").astype(str)
    return frame.sort_values(["dataset", "protocol", "model", "scope", "fold", "seed", "arch"],
                             na_position="last", kind="stable").reset_index(drop=True)


def _cell_means(part: pd.DataFrame, column: str = "ua") -> pd.Series:
    """`column` (UA or WA, %) per (fold, seed) cell: the mean over a cell's runs (a random
    model's architectures), so that each cell weighs the same."""
    scored = part[part[column].notna() & part["fold"].notna() & part["seed"].notna()]
    return scored.groupby(["fold", "seed"])[column].mean()


def compare_study(study: pd.DataFrame, reference: str = "emodarts", n_resamples: int = 10_000,
                  n_permutations: int = 100_000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Paired comparisons of `reference` against every other model of the same dataset and protocol.

    Each model's UA is first reduced to one value per (fold, seed) cell, the mean over that
    cell's runs (for `random` the mean over its architectures, so every cell weighs the same);
    the comparison then uses the n cells both models have. `mean_diff` = mean over cells of
    (reference - model) in UA points with its percentile bootstrap CI; `p_perm` is the
    two-sided paired sign-flip permutation p (`stats.paired_permutation_p`), `p_boot` the
    shifted-null paired bootstrap p (`stats.paired_bootstrap_p`), and `p_perm_holm` the
    permutation p Holm-adjusted over the comparisons of one (dataset, protocol, reference
    scope). With n = 0 the numbers are NaN. The models in `speakers.NOT_COMPARED` (the
    ranking's ceiling) are not compared.
    """
    from emodarts_core.study import stats

    rows = []
    for (dataset, protocol), group in study.groupby(["dataset", "protocol"], sort=True):
        for ref_scope, ref_part in group[group["model"] == reference].groupby("scope", sort=True):
            ref_cells = _cell_means(ref_part)
            family = []
            for (model, scope), part in group.groupby(["model", "scope"], sort=True):
                if (model == reference and scope == ref_scope) or model in NOT_COMPARED:
                    continue
                cells = _cell_means(part)
                common = ref_cells.index.intersection(cells.index)
                result = stats.paired_comparison(ref_cells.loc[common].to_numpy(), cells.loc[common].to_numpy(),
                                                 n_resamples=n_resamples, n_permutations=n_permutations,
                                                 level=level, seed=seed)
                family.append({"dataset": dataset, "protocol": protocol, "reference": reference,
                               "reference_scope": ref_scope, "model": model, "scope": scope, "n": result["n"],
                               "mean_reference": result["mean_a"], "mean_model": result["mean_b"],
                               "mean_diff": result["mean_diff"], "diff_low": result["diff_low"],
                               "diff_high": result["diff_high"],
                               "p_perm": result["p_perm"], "p_boot": result["p_boot"]})
            for row, adjusted in zip(family, stats.holm([r["p_perm"] for r in family])):
                row["p_perm_holm"] = float(adjusted)
            rows.extend(family)
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def summarise_study(study: pd.DataFrame, reference: str = "emodarts", ddof: int = 0, n_resamples: int = 10_000,
                    n_permutations: int = 100_000, pooled_resamples: int = 2_000, level: float = 0.95,
                    seed: int = 0) -> pd.DataFrame:
    """The study's summary.csv: one row per (dataset, protocol, model, scope).

    * `n_runs` finished runs, `n_folds` / `n_seeds` distinct folds / seeds among them,
      `n_archs` distinct random architecture numbers (0 for every other model),
      `n_one_class` runs whose test predictions are all one class;
    * `ua_mean`/`ua_std`, `wa_mean`/`wa_std`: mean and standard deviation (`ddof`, 0 =
      population std as in `summarise`) over the (fold, seed) cells, each cell first
      reduced to the mean of its runs (for `random` the mean over its architectures), so
      that every cell weighs the same and the std is the spread of cells, not of runs;
      `params_mean` is the mean over runs;
    * `pooled_ua` with `pooled_ua_low`/`pooled_ua_high`: UA of the summed confusion matrices
      of all the runs (`n_test` utterances in all) and its `level` percentile bootstrap CI
      over utterances resampled within each run (`stats.pooled_ua_ci`, `pooled_resamples`
      resamples), in percent;
    * `n_cells`: the (fold, seed) cells behind the means and standard deviations;
    * `cmp_*`, `p_perm`, `p_boot`, `p_perm_holm`: the paired comparison of `reference`
      against this model (`compare_study`; `cmp_diff` = reference - this model, `cmp_n`
      common (fold, seed) cells; `n_resamples` bootstrap and `n_permutations` permutation
      draws); empty on the reference's own row. These treat the (fold, seed) cells as
      independent pairs (`emodarts_core.study.stats`): a secondary figure;
    * `SPEAKER_COLUMNS` (`speakers.speaker_statistics`, `n_resamples` resamples): the UA of
      each utterance's correctness averaged over the model's runs, with a speaker-then-
      utterance bootstrap interval, and the comparison with `reference`: `speaker_diff`
      with its interval on the same resamples, the primary `p_exact` (the exact sign-flip
      test over the test speakers' paired UA differences, `stats.speaker_exact_test`),
      `p_exact_holm` (Holm over a protocol's comparisons), `p_exact_min` (the smallest p
      that test can give with these speakers), and the secondary bootstrap `p_speakers`
      and `p_speakers_holm`; NaN where runs lack per-utterance predictions.
    """
    from emodarts_core.study import stats

    rows = []
    for (dataset, protocol, model, scope), part in study.groupby(_STUDY_KEYS, sort=True):
        done = part[part["ua"].notna()]
        ua, wa = _cell_means(done, "ua").to_numpy(float), _cell_means(done, "wa").to_numpy(float)
        params = done["params"].dropna().to_numpy(float)
        confusions = [c for c in done["confusion"] if c is not None] if "confusion" in done else []
        pooled = stats.pooled_ua_ci(confusions, n_resamples=pooled_resamples, level=level, seed=seed)
        rows.append({"dataset": dataset, "protocol": protocol, "model": model, "scope": scope,
                     "n_runs": int(len(done)), "n_folds": int(done["fold"].nunique()),
                     "n_seeds": int(done["seed"].nunique()), "n_archs": int(done["arch"].nunique()),
                     "n_one_class": int(done["one_class"].fillna(False).astype(bool).sum()), "n_cells": int(ua.size),
                     "ua_mean": float(ua.mean()) if ua.size else math.nan,
                     "ua_std": float(ua.std(ddof=ddof)) if ua.size > ddof else math.nan,
                     "wa_mean": float(wa.mean()) if wa.size else math.nan,
                     "wa_std": float(wa.std(ddof=ddof)) if wa.size > ddof else math.nan,
                     "params_mean": float(params.mean()) if params.size else math.nan,
                     "n_test": float(sum(int(c.sum()) for c in confusions)) if confusions else math.nan,
                     "pooled_ua": 100.0 * pooled.estimate, "pooled_ua_low": 100.0 * pooled.low,
                     "pooled_ua_high": 100.0 * pooled.high})
    summary = pd.DataFrame(rows, columns=list(STUDY_SUMMARY_COLUMNS[:19]))
    comparisons = compare_study(study, reference=reference, n_resamples=n_resamples,
                                n_permutations=n_permutations, level=level, seed=seed)
    comparisons = comparisons.rename(columns={"n": "cmp_n", "mean_diff": "cmp_diff", "diff_low": "cmp_diff_low",
                                              "diff_high": "cmp_diff_high"})
    ref_scopes = sorted(set(comparisons["reference_scope"]))
    if len(ref_scopes) > 1:  # one reference per row: the scope named like the reference, else the first
        main = reference if reference in ref_scopes else ref_scopes[0]
        comparisons = comparisons[comparisons["reference_scope"] == main]
    merged = summary.merge(comparisons.drop(columns=["reference", "reference_scope", "mean_reference",
                                                     "mean_model"]), on=_STUDY_KEYS, how="left")
    merged["cmp_n"] = merged["cmp_n"].astype("Int64")
    if "predictions" in study:
        merged = merged.merge(speaker_statistics(study, reference, n_resamples, level, seed), on=_STUDY_KEYS,
                              how="left")
    else:
        merged = merged.assign(**dict.fromkeys(SPEAKER_COLUMNS, math.nan))
    return merged[list(STUDY_SUMMARY_COLUMNS)]


def complete_cells(study: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study restricted to its complete (fold, seed) cells, and the state of every cell.

    While a sweep runs, models finish cells in different orders; a summary over whatever has
    finished would then compare a model's mean over some folds with another's over others,
    and weigh one model's seeds differently from another's. A cell of one (dataset,
    protocol) is complete when every model (and scope) seen under that protocol has
    finished, in that cell, as many runs as in its fullest cell (the random architectures'
    count for `random`, one run for every other model). Returns the rows of the complete
    cells, and one row per (dataset, protocol, fold, seed) cell that holds any run:
    `complete`, and `missing`, the models (with their finished and expected runs) it lacks.
    """
    keys = ["dataset", "protocol", "fold", "seed"]
    located = study[study["fold"].notna() & study["seed"].notna()]
    done = located[located["ua"].notna()]
    counts = done.groupby([*keys, "model", "scope"]).size().to_dict()
    expected: dict[tuple, int] = {}
    for (dataset, protocol, _, _, model, scope), n in counts.items():
        key = (dataset, protocol, model, scope)
        expected[key] = max(expected.get(key, 0), int(n))
    states, keep = [], set()
    for (dataset, protocol), group in located.groupby(["dataset", "protocol"], sort=True):
        models = sorted(set(zip(group["model"], group["scope"])))
        for (fold, seed), _ in group.groupby(["fold", "seed"], sort=True):
            missing = []
            for model, scope in models:
                want = expected.get((dataset, protocol, model, scope), 1)
                have = counts.get((dataset, protocol, fold, seed, model, scope), 0)
                if have < want:
                    name = model if not scope or scope in (model, "emodarts") else f"{model} [{scope}]"
                    missing.append(f"{name} {have}/{want}")
            states.append({"dataset": dataset, "protocol": protocol, "fold": int(fold), "seed": int(seed),
                           "complete": not missing, "missing": ", ".join(missing)})
            if not missing:
                keep.add((dataset, protocol, int(fold), int(seed)))
    cells = pd.DataFrame(states, columns=[*keys, "complete", "missing"])
    in_complete = [(d, p, int(f), int(s)) in keep if pd.notna(f) and pd.notna(s) else False
                   for d, p, f, s in study[keys].itertuples(index=False)]
    kept = study[in_complete].reset_index(drop=True)
    return kept, cells


def write_study(root: str | Path, summary_path: str | Path | None = None, study_path: str | Path | None = None,
                complete_only: bool = False, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """Collect the study under `root`; write study.csv and summary.csv atomically; return
    both frames and, with `complete_only`, the cells' states (else None).

    Defaults: `<root>/study.csv` (one row per run, without the confusion matrices) and
    `<root>/summary.csv` (`summarise_study`, whose keyword arguments `kwargs` are). With
    `complete_only`, both hold the complete (fold, seed) cells only (`complete_cells`), and
    `<root>/cells.csv` records every cell's state: the tables of a study still running.
    """
    study, cells = collect_study(root), None
    if complete_only:
        study, cells = complete_cells(study)
        atomic_csv(cells, Path(study_path).with_name("cells.csv") if study_path else Path(root) / "cells.csv")
    summary = summarise_study(study, **kwargs)
    atomic_csv(study.drop(columns=["confusion", "predictions", "problem"], errors="ignore"),
               Path(study_path) if study_path else Path(root) / "study.csv")
    atomic_csv(summary, Path(summary_path) if summary_path else Path(root) / "summary.csv")
    return study, summary, cells


def wall_times(root: str | Path) -> pd.DataFrame:
    """Compute time per kind of run under `root`: searches, retrainings per protocol,
    random-search candidates and selections by perturbation. A run's time is the sum of its
    epochs' `seconds` (metrics.jsonl; model building and the final test scoring are not
    included); a selection's is the `seconds` its selection.json records (its scoring
    passes and fine-tuning epochs, `darts.perturbation`), so that it reads beside the
    search it selects from. The table gives, per kind, how many runs, the median and the
    total in minutes."""
    rows = []
    for run in find_runs(root):
        if run.has("selection.json") and not run.has("metrics.jsonl"):
            record = read_object(run, "selection.json")[0] or {}
            if isinstance(record.get("seconds"), (int, float)):
                rows.append({"kind": "selection by perturbation", "seconds": float(record["seconds"])})
            continue
        if not run.has("metrics.jsonl"):
            continue
        try:
            seconds = sum(float(r.get("seconds") or 0.0) for r in run.jsonl("metrics.jsonl") if isinstance(r, dict))
        except (OSError, ValueError, TypeError):  # an unreadable log is a gap, as in collect_study
            continue
        config = read_object(run, "config.json")[0] or {}
        if config.get("kind") == "search":
            kind = "search"
        elif "/nested/" in run.path.as_posix():  # emodarts_core.study.nested's tuning runs
            kind = "nested choice"
        elif "study" not in config and lookup(config, "train.protocol") == "holdout":
            kind = "random-search candidate"
        else:
            kind = f"retrain ({lookup(config, 'study.protocol', 'train.protocol', default='paper')})"
        rows.append({"kind": kind, "seconds": seconds})
    frame = pd.DataFrame(rows, columns=["kind", "seconds"])
    out = frame.groupby("kind")["seconds"].agg(runs="count", median_s="median", total_s="sum").reset_index()
    out["total_min"] = out.pop("total_s") / 60.0
    return out
