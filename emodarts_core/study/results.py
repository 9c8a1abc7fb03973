"""Collect run directories into tables: one row per run, then mean ± std over folds.

A results folder holds any number of run directories, at any depth. A retraining run
(`run_retrain`) is recognised by `"kind": "retrain"` in its `config.json` or by its
`result.json`; a search run by `genotype.json` / `alpha_history.json`. The dataset of a
run is read from its config, or else from its path (`results/emodb/fold1/...` -> emodb). Only retraining runs
carry test scores; search runs are listed so that a search without its retraining is
visible.

Missing data is a gap, never an error: an unfinished run has NaN scores, an unreadable
file is reported in the `problem` column, and `summarise(..., expected=...)` adds NaN
rows for model/scope combinations that have no run at all. UA and WA are in percent
(result files store fractions), like the paper's tables.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from emodarts_core.space.search_space import SCOPES

#: Columns of `collect_runs`.
RUN_COLUMNS = ("dataset", "model", "scope", "fold", "kind", "status", "ua", "wa", "params", "best_epoch",
               "run_dir", "problem")
#: Columns of `summarise` (and of summary.csv).
SUMMARY_COLUMNS = ("dataset", "model", "scope", "n_folds", "ua_mean", "ua_std", "wa_mean", "wa_std",
                   "params_mean", "params_std", "folds")

BASELINES = ("cnn", "cnn_lstm", "cnn_lstm_att")

#: Every model/scope pair of the one-seed EmoDB study: three baselines, emoDARTS and the
#: four restricted scopes of paper Table 6.
EXPECTED_MODELS: tuple[tuple[str, str | None], ...] = tuple((b, None) for b in BASELINES) + tuple(
    ("emodarts", scope) for scope in SCOPES)

#: Corpus names a run directory's path may contain (as `data_prep` names them).
CORPORA = ("iemocap", "msp_improv", "msp_podcast", "emodb", "ravdess", "crema_d", "synthetic")

_MARKERS = ("config.json", "result.json", "genotype.json", "alpha_history.json")


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _lookup(data: dict, *paths: str, default=None):
    """The first present value among dotted `paths` in nested dict `data`."""
    for dotted in paths:
        node = data
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            if node is not None:
                return node
    return default


def _percent(value) -> float:
    if value is None:
        return math.nan
    return 100.0 * float(value)


def _model_and_scope(config: dict) -> tuple[str, str | None]:
    """Name the model the way the paper's tables do: a baseline, `emodarts` or `cnn_darts`.

    A run of the seeds/controls study names itself in `config["study"]`; a restricted
    scope (`"rnn_only"`, ...) is then reported as `emodarts` with that scope, like the
    paper's Table 7, and a control (`random`, `random_search`) keeps its own name.
    """
    study = config.get("study") if isinstance(config, dict) else None
    if isinstance(study, dict) and study.get("model"):
        model, scope = str(study["model"]), study.get("scope") or None
        if model in SCOPES:
            return "emodarts", scope or model
        return model, scope
    spec = _lookup(config, "model_spec", "model", "baseline", "spec")
    if isinstance(spec, dict):
        spec = _lookup(spec, "baseline", "name", "kind")
    if isinstance(spec, str) and spec in BASELINES:
        return spec, None
    seq_cells = _lookup(config, "net_cfg.seq_cells", "network.seq_cells", "net.seq_cells", "seq_cells")
    scope = _lookup(config, "net_cfg.scope", "network.scope", "net.scope", "scope", default="emodarts")
    if seq_cells == 0:
        return "cnn_darts", None
    return "emodarts", scope


def _dataset_from_path(run_dir: Path) -> str:
    """The corpus a run belongs to, read from its path (`results/emodb/...`), or 'unknown'."""
    for part in reversed(run_dir.resolve().parts):
        if part in CORPORA:
            return part
    return "unknown"


def _run_row(run_dir: Path) -> dict:
    row = dict.fromkeys(RUN_COLUMNS, None)
    row.update(run_dir=str(run_dir), ua=math.nan, wa=math.nan, params=math.nan, best_epoch=math.nan, problem="")
    try:
        config = _read_json(run_dir / "config.json") if (run_dir / "config.json").exists() else {}
        result = _read_json(run_dir / "result.json") if (run_dir / "result.json").exists() else None
    except (OSError, json.JSONDecodeError) as exc:
        config, result = {}, None
        row["problem"] = f"unreadable: {exc}"
    kind = _lookup(config, "kind", "task")
    if kind in ("search", "retrain", "train"):  # the run's own word decides, even before epoch 1
        is_retrain = kind != "search"
    else:
        is_retrain = result is not None or not ((run_dir / "genotype.json").exists()
                                                or (run_dir / "alpha_history.json").exists())
    row["kind"] = "retrain" if is_retrain else "search"
    row["dataset"] = (_lookup(config, "study.dataset", "data.dataset", "data.corpus", "dataset")
                      or _dataset_from_path(run_dir))
    fold = _lookup(config, "study.fold", "data.index", "data.fold", "fold.index", "fold")
    row["fold"] = int(fold) if isinstance(fold, (int, float, str)) and str(fold).isdigit() else None
    row["model"], row["scope"] = _model_and_scope(config)
    row["status"] = "finished" if (run_dir / "FINISHED").exists() else "unfinished"
    if result is not None:
        row["ua"] = _percent(_lookup(result, "test_ua", "ua"))
        row["wa"] = _percent(_lookup(result, "test_wa", "wa"))
        row["params"] = float(_lookup(result, "params", "parameters", default=math.nan))
        row["best_epoch"] = float(_lookup(result, "best_epoch", default=math.nan))
    return row


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every directory under `root` (itself included) that looks like a run directory."""
    root = Path(root)
    if not root.exists():
        return []
    found = {p.parent for marker in _MARKERS for p in root.rglob(marker)}
    return sorted(found)


def collect_runs(root: str | Path) -> pd.DataFrame:
    """One row per run directory under `root` with `RUN_COLUMNS`; empty frame when none."""
    rows = [_run_row(d) for d in find_run_dirs(root)]
    frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    for column in ("ua", "wa", "params", "best_epoch"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def summarise(runs: pd.DataFrame, expected: tuple[tuple[str, str | None], ...] | None = EXPECTED_MODELS,
              datasets: list[str] | None = None, ddof: int = 0) -> pd.DataFrame:
    """Mean and std of UA, WA and parameters over folds, per dataset/model/scope.

    Only retraining runs count. `ddof=0` is the population std over folds (numpy's
    default). With `expected`, every (model, scope) pair appears for each dataset in
    `datasets` (default: those in `runs`), NaN where it has no finished run. `folds`
    lists the folds that contributed.
    """
    scored = runs[(runs["kind"] == "retrain")].copy()
    scored["scope"] = scored["scope"].fillna("")
    groups = []
    for (dataset, model, scope), part in scored.groupby(["dataset", "model", "scope"], sort=False):
        have = part[part["ua"].notna()]
        stats = {"dataset": dataset, "model": model, "scope": scope or None, "n_folds": int(len(have)),
                 "folds": " ".join(str(int(f)) for f in sorted(have["fold"].dropna())) if len(have) else ""}
        for name, column in (("ua", "ua"), ("wa", "wa"), ("params", "params")):
            values = have[column].dropna().to_numpy(dtype=float)
            stats[f"{name}_mean"] = float(values.mean()) if values.size else math.nan
            stats[f"{name}_std"] = float(values.std(ddof=ddof)) if values.size > ddof else math.nan
        groups.append(stats)
    summary = pd.DataFrame(groups, columns=list(SUMMARY_COLUMNS))
    if expected:
        datasets = datasets or sorted(set(runs["dataset"].dropna())) or ["unknown"]
        wanted = pd.DataFrame([{"dataset": d, "model": m, "scope": s} for d in datasets for m, s in expected])
        known = {(d, m, s) for d, m, s in wanted[["dataset", "model", "scope"]].itertuples(index=False)}
        extra = summary[[(d, m, s) not in known for d, m, s in
                         summary[["dataset", "model", "scope"]].itertuples(index=False)]]
        merged = wanted.merge(summary, on=["dataset", "model", "scope"], how="left")
        summary = pd.concat([merged, extra], ignore_index=True)[list(SUMMARY_COLUMNS)]
        summary["n_folds"] = summary["n_folds"].fillna(0).astype(int)
        summary["folds"] = summary["folds"].fillna("")
    return summary


def per_fold(runs: pd.DataFrame, metric: str = "ua", folds: range | None = None) -> pd.DataFrame:
    """A model x fold table of one metric (percent); a missing fold is NaN."""
    scored = runs[runs["kind"] == "retrain"].copy()
    scored["label"] = [m if not s or m != "emodarts" else f"{m}:{s}" for m, s in zip(scored["model"], scored["scope"])]
    table = scored.pivot_table(index=["dataset", "label"], columns="fold", values=metric, aggfunc="mean")
    if folds is not None:
        table = table.reindex(columns=list(folds))
    return table


def write_summary(root: str | Path, path: str | Path | None = None, **kwargs) -> pd.DataFrame:
    """Collect `root`, summarise, and write `summary.csv` (default `<root>/summary.csv`)."""
    summary = summarise(collect_runs(root), **kwargs)
    path = Path(path) if path is not None else Path(root) / "summary.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(path, index=False, float_format="%.4f")
    return summary


def format_mean_std(mean, std, digits: int = 2) -> str:
    """'76.56 ± 4.03' the way the paper prints it; '—' for a gap, the mean alone without std."""
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "—"
    if std is None or (isinstance(std, float) and np.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def side_by_side(published: pd.DataFrame, ours: pd.DataFrame, metrics=("ua", "wa", "params"),
                 keys=("model", "scope")) -> pd.DataFrame:
    """The paper's rows next to ours: one row per model/scope, one column block per source.

    Both frames carry `dataset`, the `keys` and `<metric>_mean` / `<metric>_std` columns
    (`paper.paper_table` uses `params` for the count, `summarise` uses `params_mean`).
    Column blocks are labelled "paper: IEMOCAP", "ours: EmoDB", ... so no number is shown
    without the dataset it came from; a pair missing on one side is "—".
    """
    from emodarts_core.study.paper import DATASET_TITLES

    def block(frame: pd.DataFrame, source: str) -> pd.DataFrame:
        rows = []
        for _, r in frame.iterrows():
            row = {k: (r[k] if pd.notna(r[k]) else "") for k in keys}
            row["source"] = f"{source}: {DATASET_TITLES.get(r['dataset'], r['dataset'])}"
            for m in metrics:
                if m == "params":
                    value = r.get("params_mean", r.get("params"))
                    row[m] = "—" if pd.isna(value) else f"{float(value):,.0f}"
                else:
                    row[m] = format_mean_std(r.get(f"{m}_mean"), r.get(f"{m}_std"))
            rows.append(row)
        return pd.DataFrame(rows)

    both = pd.concat([block(published, "paper"), block(ours, "ours")], ignore_index=True)
    order = list(dict.fromkeys(zip(*(both[k] for k in keys))))
    table = both.pivot_table(index=list(keys), columns="source", values=list(metrics), aggfunc="first")
    table = table.swaplevel(0, 1, axis=1)
    sources = list(dict.fromkeys(both["source"]))
    table = table.reindex(columns=pd.MultiIndex.from_product([sources, list(metrics)]))
    return table.reindex(pd.MultiIndex.from_tuples(order, names=list(keys))).fillna("—")


# --------------------------------------------------------------------------- the study

#: Columns of `collect_study` (and of study.csv). UA and WA in percent; `arch` numbers the
#: random architectures of one (fold, seed) and is empty for every other model.
STUDY_COLUMNS = ("dataset", "protocol", "model", "scope", "fold", "seed", "arch", "ua", "wa", "params", "n_test",
                 "run_dir")
#: Columns of `compare_study`: reference minus model, paired over common (fold, seed) cells.
COMPARISON_COLUMNS = ("dataset", "protocol", "reference", "reference_scope", "model", "scope", "n", "mean_reference",
                      "mean_model", "mean_diff", "diff_low", "diff_high", "p_perm", "p_boot", "p_perm_holm")
#: Columns of `summarise_study` (and of the study's summary.csv).
STUDY_SUMMARY_COLUMNS = ("dataset", "protocol", "model", "scope", "n_runs", "n_folds", "n_seeds", "n_archs",
                         "ua_mean", "ua_std", "wa_mean", "wa_std", "params_mean", "n_test", "pooled_ua",
                         "pooled_ua_low", "pooled_ua_high", "cmp_n", "cmp_diff", "cmp_diff_low", "cmp_diff_high",
                         "p_perm", "p_boot", "p_perm_holm")
_STUDY_KEYS = ["dataset", "protocol", "model", "scope"]


def _study_row(run_dir: Path) -> dict | None:
    """One study.csv row for a study retraining run, or None for any other run directory."""
    try:
        config = _read_json(run_dir / "config.json") if (run_dir / "config.json").exists() else {}
    except (OSError, json.JSONDecodeError):
        return None
    study = config.get("study") if isinstance(config, dict) else None
    if not isinstance(study, dict) or _lookup(config, "kind", "task") == "search":
        return None
    try:
        result = _read_json(run_dir / "result.json") if (run_dir / "result.json").exists() else {}
    except (OSError, json.JSONDecodeError):
        result = {}  # a half-written or damaged result is a gap

    def integer(value):
        return int(value) if isinstance(value, (int, float, str)) and str(value).lstrip("-").isdigit() else None

    confusion = result.get("confusion")
    confusion = np.asarray(confusion, dtype=np.int64) if confusion is not None else None
    n_test = result.get("n_test", int(confusion.sum()) if confusion is not None else None)
    return {"dataset": study.get("dataset") or _dataset_from_path(run_dir), "protocol": study.get("protocol", ""),
            "model": study.get("model", ""), "scope": study.get("scope") or "", "fold": integer(study.get("fold")),
            "seed": integer(study.get("seed")), "arch": integer(study.get("arch")),
            "ua": _percent(result.get("test_ua")), "wa": _percent(result.get("test_wa")),
            "params": float(result["params"]) if result.get("params") is not None else math.nan,
            "n_test": float(n_test) if n_test is not None else math.nan, "run_dir": str(run_dir),
            "confusion": confusion}


def collect_study(root: str | Path) -> pd.DataFrame:
    """One row per retraining run of the seeds/controls study under `root` (`STUDY_COLUMNS` + `confusion`).

    A study run carries `config["study"] = {dataset, protocol, model, scope, fold, seed, arch}`;
    runs without it (older runs) and search runs are left out. An unfinished run is a row with
    NaN scores. The `confusion` column holds each run's test confusion matrix (numpy array, rows
    = true class) for `summarise_study`'s pooled UA; `write_study` keeps it out of study.csv.
    Sorted by dataset, protocol, model, scope, fold, seed, arch.
    """
    rows = [row for row in (_study_row(d) for d in find_run_dirs(root)) if row is not None]
    frame = pd.DataFrame(rows, columns=[*STUDY_COLUMNS, "confusion"])
    for column in ("fold", "seed", "arch"):
        frame[column] = pd.array(frame[column].tolist(), dtype="Int64")
    for column in ("ua", "wa", "params", "n_test"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in ("dataset", "protocol", "model", "scope", "run_dir"):
        frame[column] = frame[column].fillna("").astype(str)
    return frame.sort_values(["dataset", "protocol", "model", "scope", "fold", "seed", "arch"],
                             na_position="last", kind="stable").reset_index(drop=True)


def _cell_means(part: pd.DataFrame) -> pd.Series:
    """UA (%) per (fold, seed) cell: the mean over a cell's runs (a random model's architectures)."""
    scored = part[part["ua"].notna() & part["fold"].notna() & part["seed"].notna()]
    return scored.groupby(["fold", "seed"])["ua"].mean()


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
    scope). With n = 0 the numbers are NaN.
    """
    from emodarts_core.study import stats

    rows = []
    for (dataset, protocol), group in study.groupby(["dataset", "protocol"], sort=True):
        for ref_scope, ref_part in group[group["model"] == reference].groupby("scope", sort=True):
            ref_cells = _cell_means(ref_part)
            family = []
            for (model, scope), part in group.groupby(["model", "scope"], sort=True):
                if model == reference and scope == ref_scope:
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
      `n_archs` distinct random architecture numbers (0 for every other model);
    * `ua_mean`/`ua_std`, `wa_mean`/`wa_std`: mean and std (`ddof`, 0 = population std as
      in `summarise`) over all finished runs, i.e. over folds x seeds, and for `random` over
      folds x seeds x architectures (the spread of random architectures included);
      `params_mean` likewise;
    * `pooled_ua` with `pooled_ua_low`/`pooled_ua_high`: UA of the summed confusion matrices
      of all the runs (`n_test` utterances in all) and its `level` percentile bootstrap CI
      over utterances resampled within each run (`stats.pooled_ua_ci`, `pooled_resamples`
      resamples), in percent;
    * `cmp_*`, `p_perm`, `p_boot`, `p_perm_holm`: the paired comparison of `reference`
      against this model (`compare_study`; `cmp_diff` = reference - this model, `cmp_n`
      common (fold, seed) cells; `n_resamples` bootstrap and `n_permutations` permutation
      draws); empty on the reference's own row.
    """
    from emodarts_core.study import stats

    rows = []
    for (dataset, protocol, model, scope), part in study.groupby(_STUDY_KEYS, sort=True):
        done = part[part["ua"].notna()]
        ua, wa = done["ua"].to_numpy(float), done["wa"].dropna().to_numpy(float)
        params = done["params"].dropna().to_numpy(float)
        confusions = [c for c in done["confusion"] if c is not None] if "confusion" in done else []
        pooled = stats.pooled_ua_ci(confusions, n_resamples=pooled_resamples, level=level, seed=seed)
        rows.append({"dataset": dataset, "protocol": protocol, "model": model, "scope": scope,
                     "n_runs": int(len(done)), "n_folds": int(done["fold"].nunique()),
                     "n_seeds": int(done["seed"].nunique()), "n_archs": int(done["arch"].nunique()),
                     "ua_mean": float(ua.mean()) if ua.size else math.nan,
                     "ua_std": float(ua.std(ddof=ddof)) if ua.size > ddof else math.nan,
                     "wa_mean": float(wa.mean()) if wa.size else math.nan,
                     "wa_std": float(wa.std(ddof=ddof)) if wa.size > ddof else math.nan,
                     "params_mean": float(params.mean()) if params.size else math.nan,
                     "n_test": float(sum(int(c.sum()) for c in confusions)) if confusions else math.nan,
                     "pooled_ua": 100.0 * pooled.estimate, "pooled_ua_low": 100.0 * pooled.low,
                     "pooled_ua_high": 100.0 * pooled.high})
    summary = pd.DataFrame(rows, columns=list(STUDY_SUMMARY_COLUMNS[:17]))
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
    return merged[list(STUDY_SUMMARY_COLUMNS)]


def _atomic_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` as CSV to `path` atomically (a temporary file renamed over it, created
    with the umask's permissions, as every run file is: `RunDir.atomic_write_text`)."""
    from emodarts_core.training.rundir import RunDir

    text = frame.to_csv(index=False, float_format="%.6g")  # small p-values keep their digits
    return RunDir(Path(path).parent).atomic_write_text(Path(path).name, text)


def write_study(root: str | Path, summary_path: str | Path | None = None, study_path: str | Path | None = None,
                **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Collect the study under `root`; write study.csv and summary.csv atomically; return both frames.

    Defaults: `<root>/study.csv` (one row per run, without the confusion matrices) and
    `<root>/summary.csv` (`summarise_study`, whose keyword arguments `kwargs` are).
    """
    study = collect_study(root)
    summary = summarise_study(study, **kwargs)
    _atomic_csv(study.drop(columns=["confusion"]), Path(study_path) if study_path else Path(root) / "study.csv")
    _atomic_csv(summary, Path(summary_path) if summary_path else Path(root) / "summary.csv")
    return study, summary


def wall_times(root: str | Path) -> pd.DataFrame:
    """Compute time per kind of run under `root`: searches, retrainings per protocol and
    random-search candidates. A run's time is the sum of its epochs' `seconds`
    (metrics.jsonl; model building and the final test scoring are not included); the
    table gives, per kind, how many runs, the median and the total in minutes."""
    rows = []
    for run_dir in find_run_dirs(root):
        path = run_dir / "metrics.jsonl"
        if not path.is_file():
            continue
        seconds = sum(float(json.loads(line).get("seconds") or 0.0)
                      for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        config = _read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
        if config.get("kind") == "search":
            kind = "search"
        elif "study" not in config and _lookup(config, "train.protocol") == "holdout":
            kind = "random-search candidate"
        else:
            kind = f"retrain ({_lookup(config, 'study.protocol', 'train.protocol', default='paper')})"
        rows.append({"kind": kind, "seconds": seconds})
    frame = pd.DataFrame(rows, columns=["kind", "seconds"])
    out = frame.groupby("kind")["seconds"].agg(runs="count", median_s="median", total_s="sum").reset_index()
    out["total_min"] = out.pop("total_s") / 60.0
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m emodarts_core.results RESULTS_DIR [--out summary.csv]`: write and print the summary.

    When the folder holds runs of the seeds/controls study (`config["study"]`), write
    study.csv and the study's summary.csv (`write_study`) and print the summary; otherwise
    write the per-fold summary of `write_summary`.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", help="a results folder holding run directories")
    parser.add_argument("--out", default=None, help="where to write summary.csv (default ROOT/summary.csv)")
    parser.add_argument("--markdown", default=None, metavar="FILE",
                        help="study only: also write its tables as Markdown (emodarts_core/study/report.py)")
    args = parser.parse_args(argv)
    if any(_study_row(d) is not None for d in find_run_dirs(args.root)):
        study_path = Path(args.out).with_name("study.csv") if args.out else None
        study, summary = write_study(args.root, summary_path=args.out, study_path=study_path)
        times = wall_times(args.root)
        _atomic_csv(times, Path(args.root) / "wall_time.csv")
        if args.markdown:
            from emodarts_core.study.report import markdown_report
            from emodarts_core.study.stability import search_stability
            from emodarts_core.training.rundir import RunDir

            root = Path(args.root)
            stability = search_stability(root.parent, dataset=root.name)
            text = markdown_report(summary, study, stability, times)
            out = Path(args.markdown)
            RunDir(out.parent).atomic_write_text(out.name, text)
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            for protocol, part in summary.groupby("protocol", sort=True):
                print(f"protocol {protocol}:")
                print(part.drop(columns=["protocol"]).round(4).to_string(index=False))
            print("compute time per run (sum of epoch times):")
            print(times.round(1).to_string(index=False))
        return 0
    summary = write_summary(args.root, args.out)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
