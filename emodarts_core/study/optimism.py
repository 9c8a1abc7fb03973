"""The optimism of reporting the best test epoch, measured on the study's own runs.

The authors' `augment.py` reports the best test UA over its epochs, which chooses the
epoch on the test speakers (docs/REFERENCE_CODE.md). The study's `full` retrainings keep
their last epoch and score the test speakers once (the honest UA), and they also write
each epoch's test UA to a file that nothing in training reads
(`emodarts_core.training.optimism_trace`). Per model, `optimism_table` reports the mean
gap between the maximum over epochs and the honest UA: the bias a reader should subtract
from numbers published the authors' way. It is a measurement of a bias, never a result of
the study, and the table says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emodarts_core.training.optimism_trace import TEST_TRACE, read_trace

#: Columns of `optimism_table` (UA in percent).
OPTIMISM_COLUMNS = ("model", "n_runs", "honest_ua", "best_epoch_ua", "gap_mean", "gap_max", "best_epoch_mean")
LABEL = ("A measurement of a bias, never a result: the best test UA over epochs (the epoch chosen on the test "
         "speakers, as the authors' augment.py reports) minus the honest UA of the same `full` retraining "
         "(last epoch, no selection).")


def run_gaps(study: pd.DataFrame, root=None) -> pd.DataFrame:
    """One row per `full` retraining that kept a trace: model, fold, seed, arch, the honest
    UA, the best UA over its epochs, that epoch, and their gap (percentage points). The
    traces are read through the study's runs under `root` (packed or not), else from disk."""
    from emodarts_core.study.results.pack import find_runs

    runs = {str(run.path): run for run in find_runs(root)} if root is not None else {}
    rows = []
    for row in study[study["protocol"] == "full"].itertuples():
        run = runs.get(str(row.run_dir))
        if run is not None:
            trace = run.jsonl(TEST_TRACE) if run.has(TEST_TRACE) else []
        else:
            trace = read_trace(row.run_dir) if isinstance(row.run_dir, str) else []
        if not trace or not np.isfinite(row.ua):
            continue
        best = max(trace, key=lambda t: (t["test_ua"], -t["epoch"]))
        rows.append({"model": row.model, "fold": row.fold, "seed": row.seed, "arch": row.arch,
                     "honest_ua": float(row.ua), "best_epoch_ua": 100.0 * best["test_ua"],
                     "best_epoch": best["epoch"], "gap": 100.0 * best["test_ua"] - float(row.ua)})
    return pd.DataFrame(rows, columns=["model", "fold", "seed", "arch", "honest_ua", "best_epoch_ua", "best_epoch",
                                       "gap"])


def optimism_table(study: pd.DataFrame, root=None) -> pd.DataFrame:
    """`OPTIMISM_COLUMNS`: per model, the mean honest UA, the mean best-epoch UA, the mean
    and largest gap, and the mean best epoch, over its `full` retrainings with a trace."""
    gaps = run_gaps(study, root)
    rows = [{"model": model, "n_runs": len(g), "honest_ua": g["honest_ua"].mean(),
             "best_epoch_ua": g["best_epoch_ua"].mean(), "gap_mean": g["gap"].mean(), "gap_max": g["gap"].max(),
             "best_epoch_mean": g["best_epoch"].mean()} for model, g in gaps.groupby("model", sort=True)]
    return pd.DataFrame(rows, columns=list(OPTIMISM_COLUMNS))


def optimism_markdown(table: pd.DataFrame) -> str:
    """The table as a Markdown section, under its label."""
    if table.empty:
        return ""
    lines = ["## Optimism of the best test epoch (a measured bias, not a result)", "", LABEL, "",
             "| model | runs | honest UA | best-epoch UA | gap (mean) | gap (max) | best epoch (mean) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in table.itertuples():
        lines.append(f"| {r.model} | {r.n_runs} | {r.honest_ua:.1f} | {r.best_epoch_ua:.1f} | {r.gap_mean:+.1f} | "
                     f"{r.gap_max:+.1f} | {r.best_epoch_mean:.1f} |")
    return "\n".join(lines) + "\n"


__all__ = ["LABEL", "OPTIMISM_COLUMNS", "optimism_markdown", "optimism_table", "run_gaps"]
