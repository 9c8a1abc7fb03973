"""How stable a searched genotype is: over the epochs of one search, and across seeds.

A search records the genotype it would return after every epoch (`alpha_history.json`,
`emodarts_core.darts.search`). Two measures answer "is the search budget long enough?"
and "does the search find the same thing twice?":

- **agreement with the final genotype** at epoch e: the share of the final genotype's
  edges (cell, node, input, op) that the epoch-e genotype already holds. A curve that
  reaches 1 long before the last epoch says that more epochs would not change the
  answer; one that still climbs at the end says the budget decides it.
- **agreement across seeds**: for two searches of the same fold under different seeds,
  the share of edges their final genotypes share. Near 1 means the data decide the
  architecture; near the agreement of two random genotypes means the seed does.

Edges are compared as (cell, node, input, op): an edge that keeps its input but changes
its op counts as different (`emodarts_core.darts.diagnostics.agreement`).

Two more say whether a genotype's agreement means anything (docs and
`emodarts_core/darts/diagnostics.py`): the **lift** at the end of each search (top op's
weight over the uniform weight; a search whose α barely moved returns a genotype of its
initialisation, and two such searches agree or differ by their seeds alone), and the
**α correlation across seeds** (`diagnostics.alpha_correlation`, per cell type): whether
two seeds' op weights lean the same way even where their parsed winners differ.
"""

from __future__ import annotations

import itertools
import json
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

import numpy as np

from emodarts_core.darts import diagnostics

CELLS = diagnostics.CELL_KINDS


def agreement(a: dict, b: dict) -> float:
    """Share of `a`'s edges (cell, node, input, op) that `b` also holds (both genotypes of
    the same space); nan for a genotype without edges."""
    share = diagnostics.agreement(a, b)
    return float("nan") if share is None else share


def epoch_agreement(alpha_history: dict) -> list[float]:
    """Per epoch of one search, the agreement of that epoch's genotype with the last one."""
    epochs = alpha_history["epochs"]
    final = epochs[-1]["genotype"]
    return [agreement(final, e["genotype"]) for e in epochs]


def read_alpha_history(search_dir) -> dict:
    return json.loads((Path(search_dir) / "alpha_history.json").read_text(encoding="utf-8"))


def seed_agreement(genotypes: list[dict]) -> float:
    """Mean pairwise agreement of the final genotypes of one fold's searches (one per seed)."""
    pairs = [agreement(a, b) for a, b in itertools.combinations(genotypes, 2)]
    return float(np.mean(pairs)) if pairs else float("nan")


def seed_alpha_correlation(probs: list[dict]) -> dict[str, float]:
    """Per cell type, the mean over pairs of one fold's searches of the correlation of
    their final softmax(α) (`diagnostics.alpha_correlation`); cell types without a
    defined correlation are left out."""
    out = {}
    for cell in CELLS:
        values = [diagnostics.alpha_correlation(a[cell], b[cell]) for a, b in itertools.combinations(probs, 2)
                  if np.size(a.get(cell, [])) and np.size(b.get(cell, []))]
        values = [v for v in values if v is not None]
        if values:
            out[cell] = float(np.mean(values))
    return out


def search_stability(root, dataset: str = "emodb", model: str = "emodarts") -> dict:
    """For every search of `model` under `root/<dataset>/<model>/fold<k>/seed<s>/search`
    (a run directory, or its packed copy in `root/<dataset>`'s pack):
    the mean agreement with the final genotype per epoch (over searches), the share of
    searches whose genotype no longer changes in the last half of the budget, the mean
    lift at the end (mean, min and max over searches, and the share that reached
    `diagnostics.MIN_LIFT`), and per fold the mean across-seed agreement of the genotypes
    and the across-seed α correlation per cell type."""
    from emodarts_core.study.results.pack import find_runs

    curves, lifts, by_fold, probs_by_fold = [], [], {}, {}
    for search in find_runs(Path(root) / dataset):  # run directories or the study's pack alike
        parts = PurePosixPath(search.rel).parts
        if not (len(parts) == 4 and parts[0] == model and fnmatch(parts[1], "fold*") and fnmatch(parts[2], "seed*")
                and parts[3] == "search") or not search.has("FINISHED"):
            continue
        history = search.json("alpha_history.json")
        curves.append(epoch_agreement(history))
        last, fold = history["epochs"][-1], parts[1]
        by_fold.setdefault(fold, []).append(last["genotype"])
        if last.get("lift"):
            lifts.append(diagnostics.mean_lift(last["lift"]))
        if last.get("probs"):
            probs_by_fold.setdefault(fold, []).append(last["probs"])
    if not curves:
        return {"n_searches": 0}
    length = min(len(c) for c in curves)
    matrix = np.array([c[:length] for c in curves])
    settled = [all(v == 1.0 for v in c[len(c) // 2:]) for c in curves]
    out = {"n_searches": len(curves), "epochs": length,
           "mean_agreement_per_epoch": [round(float(v), 4) for v in matrix.mean(axis=0)],
           "settled_in_second_half": float(np.mean(settled)),
           "seed_agreement_per_fold": {f: round(seed_agreement(g), 4) for f, g in sorted(by_fold.items())
                                       if len(g) > 1}}
    if lifts:
        out["final_lift"] = {"mean": round(float(np.mean(lifts)), 3), "min": round(float(np.min(lifts)), 3),
                             "max": round(float(np.max(lifts)), 3),
                             "moved": round(float(np.mean([v >= diagnostics.MIN_LIFT for v in lifts])), 4)}
    correlations = {f: seed_alpha_correlation(p) for f, p in sorted(probs_by_fold.items()) if len(p) > 1}
    if any(correlations.values()):
        out["seed_alpha_correlation_per_fold"] = {f: {c: round(v, 3) for c, v in cells.items()}
                                                  for f, cells in correlations.items() if cells}
    return out


__all__ = ["agreement", "epoch_agreement", "seed_agreement", "seed_alpha_correlation", "search_stability",
           "read_alpha_history"]
