"""The derived (discrete) network a genotype describes, for retraining from scratch.

Same macro structure as the search network (stem, CNN cells with reductions at C/3 and
2C/3, sequence adapter, SeqNN cells reading the two previous outputs, mean over time,
classifier), but each node keeps only its two chosen edges with ordinary ops and affine
BatchNorm.  DARTS drop-path zeroes whole samples of non-identity edges with probability
`drop_path_prob`, which the trainer sets (and ramps) per epoch; it acts in training mode
only and makes its mask on the input's device.  This is the plain PyTorch form;
`emodarts_core.fast.networks.FastDerivedNetwork` is the same network, with the same parameter
names, in its fast form (`emodarts_core.networks.derived_network` builds the form the
fast-path switch chooses).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from emodarts_core.config import NetworkConfig
from emodarts_core.space.genotypes import Edge, Genotype, check_compatible
from emodarts_core.space.macro import build_macro
from emodarts_core.space.ops import CNN_OPS, SEQ_OPS, FactorizedReduce, ReLUConvBN, drop_path


def _is_identity(op: nn.Module) -> bool:
    return isinstance(op, nn.Identity)


class _DerivedCellBase(nn.Module):
    """Nodes summing two chosen edges each; subclasses supply preprocessing and output."""

    def _nodes(self, states: list[torch.Tensor], drop_prob: float) -> list[torch.Tensor]:
        for i in range(len(self.ops) // 2):
            node = 0
            for op, src in zip(self.ops[2 * i:2 * i + 2], self.sources[2 * i:2 * i + 2]):
                h = op(states[src])
                if self.training and drop_prob > 0.0 and not _is_identity(op):
                    h = drop_path(h, drop_prob)
                node = node + h
            states.append(node)
        return states


class DerivedCell(_DerivedCellBase):
    """A CNN normal or reduction cell with the genotype's ops (affine BN)."""

    def __init__(self, edges: list[Edge], concat: list[int], C_pp: int, C_p: int, C: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(C_pp, C) if reduction_prev else ReLUConvBN(C_pp, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0)
        self.sources = [src for _, src in edges]
        self.ops = nn.ModuleList(CNN_OPS[name](C, 2 if reduction and src < 2 else 1, True) for name, src in edges)
        self.concat = list(concat)
        self.multiplier = len(concat)

    def forward(self, s0, s1, drop_prob: float = 0.0):
        states = self._nodes([self.preprocess0(s0), self.preprocess1(s1)], drop_prob)
        return torch.cat([states[i] for i in self.concat], dim=1)


class DerivedSeqCell(_DerivedCellBase):
    """A SeqNN cell on [B, T, d] with the genotype's ops, output Linear(concat -> d);
    `attention` is the form of its attention ops (`ops.SEQ_ATTENTION_FORMS`)."""

    def __init__(self, edges: list[Edge], concat: list[int], d: int, attention: str = "paper"):
        super().__init__()
        self.sources = [src for _, src in edges]
        self.ops = nn.ModuleList(SEQ_OPS[name](d, attention) for name, _ in edges)
        self.concat = list(concat)
        self.out = nn.Linear(len(concat) * d, d)

    def forward(self, s0, s1, drop_prob: float = 0.0):
        states = self._nodes([s0, s1], drop_prob)
        return self.out(torch.cat([states[i] for i in self.concat], dim=-1))


class DerivedNetwork(nn.Module):
    """The network of `genotype` at the shape of `net_cfg`; raises GenotypeError if they do not fit.

    `net_cfg` must be valid (as for `SearchNetwork`: validated once, where it was made or
    where the run began).
    """

    def __init__(self, genotype: Genotype, net_cfg: NetworkConfig):
        super().__init__()
        cfg = net_cfg
        check_compatible(genotype, cfg)
        self.cfg = cfg
        self.genotype = genotype
        self.drop_path_prob = 0.0

        def make_cell(C_pp, C_p, C, reduction, reduction_prev):
            edges, concat = ((genotype.reduce, genotype.reduce_concat) if reduction
                             else (genotype.normal, genotype.normal_concat))
            cell = DerivedCell(edges, concat, C_pp, C_p, C, reduction, reduction_prev)
            return cell, cell.multiplier

        build_macro(self, cfg, make_cell, lambda: DerivedSeqCell(genotype.seq, genotype.seq_concat, cfg.seq_dim,
                                                                    cfg.seq_attention))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_classes] of inputs [B, in_channels, F, T]."""
        p = self.drop_path_prob
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, p)
        if not self.seq_cells:
            return self.classifier(self.dropout(s1.mean(dim=(2, 3))))
        B, C, Fq, T = s1.shape
        y0 = y1 = self.adapter(s1.permute(0, 3, 1, 2).reshape(B, T, C * Fq))
        for cell in self.seq_cells:
            y0, y1 = y1, cell(y0, y1, p)
        return self.classifier(self.dropout(y1.mean(dim=1)))


__all__ = ["DerivedNetwork", "DerivedCell", "DerivedSeqCell"]
