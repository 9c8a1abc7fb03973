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
its op counts as different.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

CELLS = ("normal", "reduce", "seq")


def edge_set(genotype: dict) -> set[tuple]:
    """A genotype's edges as (cell, node, input, op) tuples."""
    out = set()
    for cell in CELLS:
        for n, (op, src) in enumerate(genotype.get(cell, [])):
            out.add((cell, n // 2, int(src), op))
    return out


def agreement(a: dict, b: dict) -> float:
    """Share of `a`'s edges that `b` also holds (both genotypes of the same space)."""
    ea, eb = edge_set(a), edge_set(b)
    return len(ea & eb) / len(ea) if ea else float("nan")


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


def search_stability(root, dataset: str = "emodb", model: str = "emodarts") -> dict:
    """For every search of `model` under `root/<dataset>/<model>/fold<k>/seed<s>/search`:
    the mean agreement with the final genotype per epoch (over searches), the share of
    searches whose genotype no longer changes in the last half of the budget, and the
    mean across-seed agreement per fold."""
    base = Path(root) / dataset / model
    curves, by_fold = [], {}
    for search in sorted(base.glob("fold*/seed*/search")):
        if not (search / "FINISHED").exists():
            continue
        history = read_alpha_history(search)
        curves.append(epoch_agreement(history))
        by_fold.setdefault(search.parent.parent.name, []).append(history["epochs"][-1]["genotype"])
    if not curves:
        return {"n_searches": 0}
    length = min(len(c) for c in curves)
    matrix = np.array([c[:length] for c in curves])
    settled = [all(v == 1.0 for v in c[len(c) // 2:]) for c in curves]
    return {"n_searches": len(curves), "epochs": length,
            "mean_agreement_per_epoch": [round(float(v), 4) for v in matrix.mean(axis=0)],
            "settled_in_second_half": float(np.mean(settled)),
            "seed_agreement_per_fold": {f: round(seed_agreement(g), 4) for f, g in sorted(by_fold.items())
                                        if len(g) > 1}}


__all__ = ["edge_set", "agreement", "epoch_agreement", "seed_agreement", "search_stability", "read_alpha_history"]
