"""Did the architecture weights move? Per-epoch diagnostics of softmax(α) and the genotype.

DARTS relaxes each edge to a softmax-weighted sum of its candidate ops (DARTS eq. 2) and
keeps, per node, the two strongest edges by their strongest op other than `none` (eq. 3
of the emoDARTS paper; `emodarts_core.space.genotypes.parse`). The α start near 0
(`SearchNetwork`: 1e-3 · N(0, 1)), so every edge starts at the uniform weight 1/K over
its K ops. Until the α steps have moved the α well away from that, the parse ranks ops by
their random initial offsets and by its tie-breaks: the genotype then reflects the
initialisation, not the data. The measures here say how far a search got, per cell type
(`normal`, `reduce`: the CNN cells; `seq`: the SeqNN cell):

- **lift**: the top op's weight over the uniform weight, K · max_o p_o, averaged over
  the cell's edges. Uniform gives 1, a one-hot edge gives K.
- **entropy**: the Shannon entropy of each edge's softmax divided by log K, averaged over
  edges. Uniform gives 1, one-hot gives 0.
- **margin**: on each edge, the weight of the strongest op other than `none` minus that of
  the second strongest (the gap the parse's choice of op rests on), averaged over edges.
- **agreement**: the share of a genotype's edges (node, input, op) that another genotype
  also holds; per epoch, with the previous epoch's genotype and with the genotype of the
  initial α. The edges are compared as `emodarts_core.study.stability` compares them.
- **α correlation**: between two searches of one space (two seeds), the Pearson
  correlation of their op weights on the same edge, averaged over edges. Shared edges
  count only the parse's winners, so two searches whose α lean the same way but whose
  winners differ by a small margin share none; the correlation sees that lean. It is 1
  for identical weights, near 0 for unrelated ones and negative for opposed ones.

`search_verdict` turns a search's records into the verdict every run states at its end
(log, `genotype.json`'s metadata, `FINISHED`): whether the α moved (mean lift at least
`MIN_LIFT`) and whether the genotype stayed the same over the last quarter of the epochs.
The remedy for a search that did not move is more α steps (`SearchConfig.alpha_steps`, or
more epochs) or a larger α learning rate (`SearchConfig.alpha_lr`); results/emodb/README.md
records how a budget was chosen for EmoDB.
"""

from __future__ import annotations

import math

import numpy as np

CELL_KINDS = ("normal", "reduce", "seq")
#: A search whose mean lift (over cell types) stays below this has α that barely left the
#: uniform weight: its genotype comes from the initialisation and the parse's tie-breaks.
MIN_LIFT = 1.2
#: The share of epochs, at the end, over which the genotype must not change.
LAST_SHARE = 0.25


def _probs(probs) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise ValueError(f"softmax(α) must be an [edges, ops] matrix with at least 2 ops, got shape {p.shape}")
    return p


def edge_lift(probs) -> np.ndarray:
    """Per edge, the top op's weight over the uniform weight 1/K: K · max_o p_o, in [1, K]."""
    p = _probs(probs)
    return p.shape[1] * p.max(axis=1)


def edge_entropy(probs) -> np.ndarray:
    """Per edge, the entropy of the softmax over log K: 1 for uniform, 0 for one-hot."""
    p = _probs(probs)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=1) / math.log(p.shape[1])


def edge_margin(probs, primitives) -> np.ndarray:
    """Per edge, the weight of the strongest op other than `none` minus the second strongest's."""
    p = _probs(probs)
    if len(primitives) != p.shape[1]:
        raise ValueError(f"{len(primitives)} op names for {p.shape[1]} columns of softmax(α)")
    keep = [i for i, op in enumerate(primitives) if op != "none"]
    if len(keep) < 2:
        return np.zeros(p.shape[0])
    top2 = np.sort(p[:, keep], axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def cell_diagnostics(probs, primitives) -> dict[str, float]:
    """Mean lift, entropy and margin over one cell type's edges."""
    return {"lift": float(edge_lift(probs).mean()), "entropy": float(edge_entropy(probs).mean()),
            "margin": float(edge_margin(probs, primitives).mean())}


def edge_set(genotype, kind: str) -> set[tuple[int, int, str]]:
    """One cell type's edges of a genotype (a `Genotype` or its dict) as (node, input, op)."""
    cell = genotype.get(kind, []) if isinstance(genotype, dict) else getattr(genotype, kind)
    return {(n // 2, int(src), str(op)) for n, (op, src) in enumerate(cell)}


def agreement(genotype, other, kind: str | None = None) -> float | None:
    """The share of `genotype`'s edges, in cell type `kind` or in all of them, that `other`
    also holds; None where `genotype` has no such edge."""
    kinds = CELL_KINDS if kind is None else (kind,)
    mine = {(k, *e) for k in kinds for e in edge_set(genotype, k)}
    theirs = {(k, *e) for k in kinds for e in edge_set(other, k)}
    return len(mine & theirs) / len(mine) if mine else None


def alpha_correlation(probs, other) -> float | None:
    """The mean over edges of the Pearson correlation between two searches' softmax(α) on
    the same edge (two [edges, ops] matrices of one cell type); edges where either search
    is exactly uniform (no correlation defined) are left out, and None is returned when
    every edge is."""
    a, b = _probs(probs), _probs(other)
    if a.shape != b.shape:
        raise ValueError(f"softmax(α) of different shapes: {a.shape} and {b.shape}")
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    norms = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    defined = norms > 0
    if not defined.any():
        return None
    return float(((a * b).sum(axis=1)[defined] / norms[defined]).mean())


def epoch_diagnostics(probs: dict, primitives: dict, genotype, previous=None, initial=None) -> dict:
    """One epoch's record: {"lift"|"entropy"|"margin": {kind: value}}, plus
    {"agreement_previous"|"agreement_initial": {kind: share, "all": share}} where the
    previous epoch's genotype or the genotype of the initial α is given."""
    cells = {kind: cell_diagnostics(probs[kind], primitives[kind]) for kind in CELL_KINDS
             if kind in probs and np.size(probs[kind])}
    out = {measure: {kind: values[measure] for kind, values in cells.items()}
           for measure in ("lift", "entropy", "margin")}
    for name, other in (("agreement_previous", previous), ("agreement_initial", initial)):
        if other is not None:
            out[name] = {kind: agreement(genotype, other, kind) for kind in cells}
            out[name]["all"] = agreement(genotype, other)
    return out


def mean_lift(lifts: dict) -> float:
    """The mean of the per-cell-type lifts: each cell type counts once."""
    return float(np.mean([float(v) for v in lifts.values()]))


def last_quarter_changed(genotypes: list, share: float = LAST_SHARE) -> bool:
    """Whether any genotype of the last ceil(share · n) epochs differs from the one that
    entered that stretch (the genotype of the epoch before it; the first epoch's, when the
    stretch is the whole search)."""
    n = len(genotypes)
    if n < 2:
        return False
    q = max(1, math.ceil(share * n))
    tail = genotypes[max(0, n - q - 1):]
    return any(agreement(g, tail[0]) != 1.0 or agreement(tail[0], g) != 1.0 for g in tail[1:])


def search_verdict(history: list[dict], genotypes: list, *, alpha_lr: float, alpha_steps: int,
                   min_lift: float = MIN_LIFT) -> dict:
    """Whether a search's α moved and its genotype settled, with a message in plain words.

    `history` holds the epoch records (each with "lift"), `genotypes` each epoch's parsed
    genotype, `alpha_steps` the number of α updates the search took. Returns
    {"alpha_moved", "genotype_settled", "mean_lift", "lift", "alpha_steps", "message"};
    "message" is None when both hold.
    """
    if not history:
        return {"alpha_moved": False, "genotype_settled": False, "mean_lift": None, "lift": {},
                "alpha_steps": alpha_steps, "message": "the search ran no epoch."}
    lifts = history[-1].get("lift") or {}
    moved_lift = mean_lift(lifts) if lifts else 1.0
    moved = moved_lift >= min_lift
    settled = not last_quarter_changed(genotypes)
    problems = []
    if not moved:
        problems.append(f"the architecture weights barely moved: after {alpha_steps} α steps at α lr "
                        f"{alpha_lr:g} the top op's weight is on average {moved_lift:.3f} times the uniform "
                        f"weight (below {min_lift})")
    if not settled:
        problems.append("the genotype still changed in the last quarter of the epochs")
    message = None
    if problems:
        why = ("the genotype reflects the initialisation (and the parse's tie-breaks) rather than the data" if not moved
               else "the genotype reflects where the search stopped rather than the data")
        message = ("; ".join(problems) + f". So {why}. Give the search more α steps (SearchConfig.alpha_steps, "
                   "or more epochs) or a larger α learning rate (SearchConfig.alpha_lr), and check that the "
                   "lift rises and the genotype settles in alpha_history.json.")
    return {"alpha_moved": moved, "genotype_settled": settled, "mean_lift": moved_lift,
            "lift": {k: float(v) for k, v in lifts.items()}, "alpha_steps": int(alpha_steps), "message": message}


__all__ = ["CELL_KINDS", "MIN_LIFT", "LAST_SHARE", "edge_lift", "edge_entropy", "edge_margin", "cell_diagnostics",
           "edge_set", "agreement", "epoch_diagnostics", "mean_lift", "last_quarter_changed", "search_verdict"]
