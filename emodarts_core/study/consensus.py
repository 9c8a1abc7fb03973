"""The seeds' consensus: one genotype per fold, parsed from the mean over the fold's
searches (one per seed) of their final softmax(α).

Two searches of one fold under different seeds share few edges (results/emodb/README.md).
If each seed's α hold the data's signal plus seed noise, averaging the softmax(α) of the
seeds before the parse keeps the signal and averages the noise away, so the consensus
genotype is the one the method would choose given all of its searches of that fold. It is
parsed exactly as a search's genotype is (`emodarts_core.darts.alpha_record.chosen_genotype`:
the DARTS parse, or P-DARTS' skip cap when the search used it), and is retrained as the study model
`consensus` (`emodarts_core.study.sweep.task`). Only the fold's own searches enter, and
they see training speakers only, so no test speaker informs the choice.

`consensus_report` measures how far the consensus is from each seed's genotype (the share
of edges it shares with each, `emodarts_core.study.stability.agreement`) beside the
seeds' agreement with each other.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from emodarts_core.config import NetworkConfig, SearchConfig
from emodarts_core.darts import diagnostics
from emodarts_core.darts.collapse import capped_genotype
from emodarts_core.darts.diagnostics import CELL_KINDS
from emodarts_core.darts.search import primitives_of
from emodarts_core.space.genotypes import Genotype, GenotypeError, parse
from emodarts_core.study.stability import agreement, read_alpha_history


def mean_probs(probs: list[dict]) -> dict[str, np.ndarray]:
    """Per cell type, the mean over searches of softmax(α) ([edges, ops] each).

    Every search must have the same cell types and shapes (searches of one space)."""
    if not probs:
        raise ValueError("a consensus needs the softmax(α) of at least one search")
    kinds = set(probs[0])
    out = {}
    for kind in sorted(kinds):
        stack = [np.asarray(p.get(kind), dtype=np.float64) for p in probs]
        shapes = {s.shape for s in stack}
        if any(set(p) != kinds for p in probs) or len(shapes) != 1:
            raise GenotypeError(f"the searches' softmax(α) differ in cell types or shapes ({sorted(shapes)}); "
                                "a consensus averages searches of one space")
        out[kind] = np.mean(stack, axis=0)
    return out


def consensus_genotype(probs: list[dict], net_cfg: NetworkConfig, search_cfg: SearchConfig | None = None) -> Genotype:
    """The genotype parsed from `mean_probs(probs)`, with the rule the searches used
    (`search_cfg.collapse_remedy == "skip_cap"`: P-DARTS' cap; otherwise the DARTS parse)."""
    mean = mean_probs(probs)
    prims = primitives_of(net_cfg)
    if search_cfg is not None and search_cfg.collapse_remedy == "skip_cap":
        genotype, _ = capped_genotype(mean, prims, net_cfg, search_cfg.skip_cap)
        return genotype
    cells = {}
    for kind in CELL_KINDS:
        if kind not in mean:
            cells[kind], cells[kind + "_concat"] = [], []
            continue
        nodes = net_cfg.seq_nodes if kind == "seq" else net_cfg.nodes
        cells[kind], cells[kind + "_concat"] = parse(mean[kind], prims[kind], nodes)
    return Genotype(**cells)


def final_probs(search_dir) -> dict:
    """The last epoch's softmax(α) of a finished search (its `alpha_history.json`)."""
    history = read_alpha_history(search_dir)
    if not history.get("epochs"):
        raise GenotypeError(f"{Path(search_dir) / 'alpha_history.json'}: no epoch recorded; the search has not run")
    return history["epochs"][-1]["probs"]


def consensus_report(seed_genotypes: list[dict], consensus: dict) -> dict:
    """How the consensus genotype relates to the seeds' genotypes (dicts as `Genotype.to_dict`):
    its share of edges with each seed, their mean, and the seeds' mean pairwise agreement,
    each per cell type as well as over all edges."""
    def shares(a: dict, b: dict) -> dict:
        out = {"all": agreement(a, b)}
        for kind in CELL_KINDS:
            share = diagnostics.agreement(a, b, kind)
            if share is not None:
                out[kind] = share
        return out

    with_seeds = [shares(consensus, g) for g in seed_genotypes]
    pairs = [shares(a, b) for a, b in itertools.combinations(seed_genotypes, 2)]
    keys = with_seeds[0].keys() if with_seeds else ()
    return {"with_each_seed": with_seeds,
            "mean_with_seeds": {k: float(np.mean([s[k] for s in with_seeds])) for k in keys},
            "seed_pairs": {k: float(np.mean([p[k] for p in pairs])) for k in keys} if pairs else {}}


__all__ = ["consensus_genotype", "consensus_report", "final_probs", "mean_probs"]
