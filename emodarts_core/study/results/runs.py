"""Per-run results: collect run directories into tables, one row per run, then mean ± std
over folds (the paper's Tables 3-7).

A results folder holds any number of run directories, at any depth. A retraining run
(`run_retrain`) is recognised by `"kind": "retrain"` in its `config.json` or by its
`result.json`; a search run by `genotype.json` / `alpha_history.json`. The dataset of a
run is read from its config, or else from its path (`results/emodb/fold1/...` -> emodb). Only retraining runs
carry test scores; search runs are listed so that a search without its retraining is
visible.

The runs are read from the run directories on disk or from the study's pack
(`pack.find_runs`), alike.

Missing data is a gap, never an error: an unfinished run has NaN scores, and a file that
cannot be read, or holds the wrong type (`result.json` that is `null` or a list, a score
that is not a number, a ragged confusion matrix), is reported with its path in the
`problem` column while the value it should give stays a gap. `summarise(...,
expected=...)` adds NaN rows for model/scope combinations that have no run at all. UA and
WA are in percent (result files store fractions), like the paper's tables.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from emodarts_core.space.search_space import SCOPES

from .pack import RunFiles, find_runs, run_directories, write_text_atomic

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



def read_object(run: RunFiles, name: str) -> tuple[dict | None, str]:
    """File `name` of `run` as a JSON object: (the dict, "") when it is one, (None, "") when
    the run has no such file, and (None, a problem naming the file) when it cannot be read
    or holds another type."""
    if not run.has(name):
        return None, ""
    try:
        value = run.json(name)
    except (OSError, ValueError) as exc:
        return None, f"{run.path / name}: unreadable ({exc})"
    if not isinstance(value, dict):
        return None, f"{run.path / name}: holds {json.dumps(value)[:40]}, not a JSON object"
    return value, ""


def _number(result: dict, keys: tuple[str, ...], where: Path, problems: list[str]) -> float:
    value = lookup(result, *keys)
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{where}: {keys[0]} is {json.dumps(value)[:40]}, not a number")
        return math.nan
    return float(value)


def _confusion(value, where: Path, problems: list[str]) -> np.ndarray | None:
    """A square matrix of non-negative integer counts, or None (a problem where it is not)."""
    if value is None:
        return None
    rows = value if isinstance(value, list) else None
    if (not rows or any(not isinstance(r, list) or len(r) != len(rows) for r in rows)
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != int(v)
                   for r in rows for v in r)):
        problems.append(f"{where}: confusion is not a square matrix of counts")
        return None
    return np.asarray(rows, dtype=np.int64)


def _predictions(value, where: Path, problems: list[str]) -> dict | None:
    """Per-utterance predictions: lists `ids`, `speakers`, `y_true`, `y_pred` of one length, or None."""
    if value is None:
        return None
    keys = ("ids", "speakers", "y_true", "y_pred")
    if (not isinstance(value, dict) or any(not isinstance(value.get(k), list) for k in keys)
            or len({len(value[k]) for k in keys}) != 1):
        problems.append(f"{where}: predictions are not lists {', '.join(keys)} of one length")
        return None
    return value


def read_result(run: RunFiles) -> tuple[dict | None, str]:
    """A run's `result.json` with every field checked, and the problems found (one string).

    Returns None for a run without a result.json or with one that is not a JSON object;
    otherwise a dict of `test_ua`, `test_wa`, `params`, `best_epoch`, `n_test` (floats, NaN
    where missing or not a number), `confusion` (square integer array or None),
    `one_class` (bool or None) and `predictions` (dict or None): a field of the wrong type
    is a gap, and the problem names the file."""
    result, problem = read_object(run, "result.json")
    if result is None:
        return None, problem
    where, problems = run.path / "result.json", []
    one_class = result.get("one_class")
    if one_class is not None and not isinstance(one_class, bool):
        problems.append(f"{where}: one_class is {json.dumps(one_class)[:40]}, not true or false")
        one_class = None
    checked = {"test_ua": _number(result, ("test_ua", "ua"), where, problems),
               "test_wa": _number(result, ("test_wa", "wa"), where, problems),
               "params": _number(result, ("params", "parameters"), where, problems),
               "best_epoch": _number(result, ("best_epoch",), where, problems),
               "n_test": _number(result, ("n_test",), where, problems),
               "confusion": _confusion(result.get("confusion"), where, problems),
               "one_class": one_class,
               "predictions": _predictions(result.get("predictions"), where, problems)}
    return checked, "; ".join(problems)


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
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
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


def _run_row(run: RunFiles) -> dict:
    row = dict.fromkeys(RUN_COLUMNS, None)
    row.update(run_dir=str(run.path), ua=math.nan, wa=math.nan, params=math.nan, best_epoch=math.nan, problem="")
    config, config_problem = read_object(run, "config.json")
    result, result_problem = read_result(run)
    config = config or {}
    row["problem"] = "; ".join(p for p in (config_problem, result_problem) if p)
    kind = lookup(config, "kind", "task")
    if kind in ("search", "retrain", "train"):  # the run's own word decides, even before epoch 1
        is_retrain = kind != "search"
    else:
        is_retrain = result is not None or not (run.has("genotype.json") or run.has("alpha_history.json"))
    row["kind"] = "retrain" if is_retrain else "search"
    if is_retrain:
        row["protocol"] = lookup(config, "study.protocol", "train.protocol", "protocol")
        if row["protocol"] == "holdout":  # a random-search candidate: scored on training speakers
            row["kind"] = "candidate"
    row["dataset"] = (lookup(config, "study.dataset", "data.dataset", "data.corpus", "dataset")
                      or dataset_from_path(run.path))
    fold = lookup(config, "study.fold", "data.index", "data.fold", "fold.index", "fold")
    row["fold"] = int(fold) if isinstance(fold, (int, float, str)) and str(fold).isdigit() else None
    row["model"], row["scope"] = _model_and_scope(config)
    row["status"] = "finished" if run.has("FINISHED") else "unfinished"
    if result is not None:
        row["ua"], row["wa"] = percent(result["test_ua"]), percent(result["test_wa"])
        row["params"], row["best_epoch"] = result["params"], result["best_epoch"]
    return row


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every directory under `root` (itself included) that looks like a run directory."""
    return run_directories(root)


def collect_runs(root: str | Path) -> pd.DataFrame:
    """One row per run under `root` (run directories, or the study's pack: `pack.find_runs`)
    with `RUN_COLUMNS`; empty frame when none."""
    rows = [_run_row(run) for run in find_runs(root)]
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
    atomic_csv(summary, Path(path) if path is not None else Path(root) / "summary.csv", float_format="%.4f")
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


def atomic_csv(frame: pd.DataFrame, path: Path, float_format: str = "%.6g") -> Path:
    """Write `frame` as CSV to `path` with `write_text_atomic`. The default `float_format`
    keeps small p-values' digits."""
    return write_text_atomic(path, frame.to_csv(index=False, float_format=float_format))
