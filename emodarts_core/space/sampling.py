"""Architectures drawn uniformly at random from a search space: the control every NAS
result needs (Li & Talwalkar, "Random Search and Reproducibility for NAS", UAI 2019;
Yang et al., "NAS evaluation is frustratingly hard", ICLR 2020).

"Uniformly" means uniformly over the genotypes a DARTS parse can return
(`emodarts_core.space.genotypes.parse`): in every cell, node i keeps two distinct inputs
among its 2 + i predecessors, every pair equally likely, and each kept edge an op drawn
uniformly from the cell's candidates other than `none`. The SeqNN cell draws from the
scope's candidates (paper Table 6), so a random `rnn_only` genotype holds only RNN ops,
`skip_connect` included, exactly as a search in that scope could end.
"""

from __future__ import annotations

import numpy as np

from emodarts_core.config import NetworkConfig
from emodarts_core.space.genotypes import Edge, Genotype, validate
from emodarts_core.space.search_space import CNN_PRIMITIVES, seq_primitives

#: Mixed into every seed, so that the random architectures' streams are not the ones a
#: search or a retraining draws from with the same seed, nor each other's.
STREAMS = {"random": 0xA2C4, "random_search": 0x5EA2}


def _random_cell(rng: np.random.Generator, nodes: int, primitives: tuple[str, ...]) -> tuple[list[Edge], list[int]]:
    ops = [p for p in primitives if p != "none"]
    edges: list[Edge] = []
    for i in range(nodes):
        inputs = sorted(rng.choice(2 + i, size=2, replace=False).tolist())
        edges += [(ops[int(rng.integers(len(ops)))], int(j)) for j in inputs]
    return edges, list(range(2, 2 + nodes))


def random_genotype(net_cfg: NetworkConfig, rng: np.random.Generator) -> Genotype:
    """One genotype drawn uniformly from the space of `net_cfg` (its node counts and scope)."""
    normal, normal_concat = _random_cell(rng, net_cfg.nodes, CNN_PRIMITIVES)
    reduce, reduce_concat = _random_cell(rng, net_cfg.nodes, CNN_PRIMITIVES)
    seq, seq_concat = ([], []) if net_cfg.seq_cells == 0 else _random_cell(
        rng, net_cfg.seq_nodes, seq_primitives(net_cfg.scope))
    return validate(Genotype(normal, normal_concat, reduce, reduce_concat, seq, seq_concat))


def random_genotypes(net_cfg: NetworkConfig, n: int, *, seed: int, fold: int = 0,
                     stream: str = "random") -> list[Genotype]:
    """`n` random genotypes for one (fold, seed) of a study, reproducible from those numbers.

    Architecture k is the same whatever `n` is, so a study that asks for more later
    keeps the ones it already trained. `stream` keeps the random control's draws apart
    from the random search's candidates.
    """
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; valid: {', '.join(STREAMS)}")
    return [random_genotype(net_cfg, np.random.default_rng([STREAMS[stream], seed, fold, k])) for k in range(n)]


__all__ = ["random_genotype", "random_genotypes"]
