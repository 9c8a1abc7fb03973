"""Per-run results: collect run directories into tables, one row per run, then mean ± std
over folds (the paper's Tables 3-7).

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
#: `kind` is "search", "retrain" or "candidate": a random-search candidate, trained on the
#: training speakers less a held-out group and scored on that group (protocol "holdout"),
#: whose UA is a held-out score, never a test score. `protocol` is the retraining protocol
#: (`emodarts_core.training.protocols`), None for a search.
RUN_COLUMNS = ("dataset", "model", "scope", "fold", "kind", "protocol", "status", "ua", "wa", "params", "best_epoch",
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


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def lookup(data: dict, *paths: str, default=None):
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


def percent(value) -> float:
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
    spec = lookup(config, "model_spec", "model", "baseline", "spec")
    if isinstance(spec, dict):
        spec = lookup(spec, "baseline", "name", "kind")
    if isinstance(spec, str) and spec in BASELINES:
        return spec, None
    seq_cells = lookup(config, "net_cfg.seq_cells", "network.seq_cells", "net.seq_cells", "seq_cells")
    scope = lookup(config, "net_cfg.scope", "network.scope", "net.scope", "scope", default="emodarts")
    if seq_cells == 0:
        return "cnn_darts", None
    return "emodarts", scope


def dataset_from_path(run_dir: Path) -> str:
    """The corpus a run belongs to, read from its path (`results/emodb/...`), or 'unknown'."""
    for part in reversed(run_dir.resolve().parts):
        if part in CORPORA:
            return part
    return "unknown"


def _run_row(run_dir: Path) -> dict:
    row = dict.fromkeys(RUN_COLUMNS, None)
    row.update(run_dir=str(run_dir), ua=math.nan, wa=math.nan, params=math.nan, best_epoch=math.nan, problem="")
    try:
        config = read_json(run_dir / "config.json") if (run_dir / "config.json").exists() else {}
        result = read_json(run_dir / "result.json") if (run_dir / "result.json").exists() else None
    except (OSError, json.JSONDecodeError) as exc:
        config, result = {}, None
        row["problem"] = f"unreadable: {exc}"
    kind = lookup(config, "kind", "task")
    if kind in ("search", "retrain", "train"):  # the run's own word decides, even before epoch 1
        is_retrain = kind != "search"
    else:
        is_retrain = result is not None or not ((run_dir / "genotype.json").exists()
                                                or (run_dir / "alpha_history.json").exists())
    row["kind"] = "retrain" if is_retrain else "search"
    if is_retrain:
        row["protocol"] = lookup(config, "study.protocol", "train.protocol", "protocol")
        if row["protocol"] == "holdout":  # a random-search candidate: scored on training speakers
            row["kind"] = "candidate"
    row["dataset"] = (lookup(config, "study.dataset", "data.dataset", "data.corpus", "dataset")
                      or dataset_from_path(run_dir))
    fold = lookup(config, "study.fold", "data.index", "data.fold", "fold.index", "fold")
    row["fold"] = int(fold) if isinstance(fold, (int, float, str)) and str(fold).isdigit() else None
    row["model"], row["scope"] = _model_and_scope(config)
    row["status"] = "finished" if (run_dir / "FINISHED").exists() else "unfinished"
    if result is not None:
        row["ua"] = percent(lookup(result, "test_ua", "ua"))
        row["wa"] = percent(lookup(result, "test_wa", "wa"))
        row["params"] = float(lookup(result, "params", "parameters", default=math.nan))
        row["best_epoch"] = float(lookup(result, "best_epoch", default=math.nan))
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


def atomic_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` as CSV to `path` atomically (a temporary file renamed over it, created
    with the umask's permissions, as every run file is: `RunDir.atomic_write_text`)."""
    from emodarts_core.training.rundir import RunDir

    text = frame.to_csv(index=False, float_format="%.6g")  # small p-values keep their digits
    return RunDir(Path(path).parent).atomic_write_text(Path(path).name, text)
