"""The emoDARTS search space in plain PyTorch: the version to read first.

This module is the search space as the paper writes it, with no fast path. Each class is
an equation:

- `MixedOp`, one edge (i, j) of a cell: the continuous relaxation of paper eq. 2,

      o_bar(x) = sum_{o in O} softmax(alpha^(i,j))_o * o(x),

  every candidate op run on x, `none` included (its output is zeros, but its alpha takes
  part in the softmax), as in DARTS' own `MixedOp` (Liu et al. 2019; pt.darts).
- `SearchCell`, a normal or reduction CNN cell: the states are the two preprocessed cell
  inputs s_0, s_1 and the nodes x_j = sum_{i < j} o_bar^(i,j)(x_i); the cell's output is
  the channel concatenation of the nodes. A reduction cell's edges from s_0 and s_1 have
  stride 2.
- `SeqSearchCell`, a SeqNN cell on sequences [B, T, d] (paper eq. 4, y_t = f(y_{t-1},
  y_{t-2})): the same nodes over the SeqNN ops, then a Linear map of the concatenated
  nodes back to d.
- `SearchNetwork`, the joint supernet (paper Fig. 2): stem -> CNN cells -> the map
  [B, C, F, T] read as a sequence [B, T, C*F] -> Linear + LayerNorm -> SeqNN cells -> mean
  over time -> classifier. The alphas `alpha_normal`, `alpha_reduce`, `alpha_seq` are
  shared by all cells of a kind.

The candidate ops are those of `space/ops.py`, under the paper's names, each with its own
ReLU. Every forward here runs with `emodarts_core.fast` switched off, so their building
blocks compute exactly as `nn.BatchNorm2d`, `nn.Conv2d` and `nn.AvgPool2d`, in PyTorch's
default layout.

`space/search_network.SearchNetwork` (with `space/cells.py`) is the same network in its
fast form: it skips `none`, shares each state's ReLU, pools and subsamples between its
edges, fuses each op's last BatchNorm with its op weight, and runs on channels-last maps
(docs/PERFORMANCE.md). `SearchNetwork.from_search_network` copies its weights, alphas and
BatchNorm statistics into this one, so the two can be compared on the same weights
(tests/test_fast_switch.py). The reference is exact DARTS: PC-DARTS' partial channels
(a different algorithm) exist only in the fast form.
"""

from __future__ import annotations

import functools
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core import fast
from emodarts_core.config import NetworkConfig
from emodarts_core.space.macro import build_macro
from emodarts_core.space.ops import CNN_OPS, SEQ_OPS, FactorizedReduce, PoolBN, ReLUConvBN
from emodarts_core.space.search_space import CNN_PRIMITIVES, seq_primitives


def plain(forward):
    """Run a forward with every fast path off (`emodarts_core.fast.disabled`)."""
    @functools.wraps(forward)
    def run(*args, **kwargs):
        with fast.disabled():
            return forward(*args, **kwargs)
    return run


def n_edges(nodes: int) -> int:
    """Edges of a cell with `nodes` nodes and two inputs: node j reads the 2 + j earlier states."""
    return sum(2 + j for j in range(nodes))


class MixedOp(nn.Module):
    """One CNN edge: o_bar(x) = sum_o softmax(alpha)_o * o(x) over all `primitives` (paper eq. 2).

    The ops' BatchNorms are affine-free, and the pools are followed by one, as DARTS
    searches them. `ops` maps each primitive's name to its op, in `primitives` order.
    """

    def __init__(self, C: int, stride: int, primitives: tuple[str, ...]):
        super().__init__()
        self.ops = nn.ModuleDict()
        for name in primitives:
            op = CNN_OPS[name](C, stride, False)
            self.ops[name] = PoolBN(op, C) if "pool" in name else op

    @plain
    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """`weights`: softmax(alpha) of this edge, one per primitive."""
        return sum(w * op(x) for w, op in zip(weights, self.ops.values()))


class SearchCell(nn.Module):
    """A normal or reduction search cell: x_j = sum_{i < j} o_bar^(i,j)(x_i), output concat(x_j).

    s_0 is the output of the cell before the previous one (halved by a FactorizedReduce
    when the previous cell reduced), s_1 that of the previous cell; both are brought to C
    channels by a 1x1 ReLU-conv-BN.
    """

    def __init__(self, nodes: int, C_pp: int, C_p: int, C: int, reduction: bool, reduction_prev: bool,
                 primitives: tuple[str, ...]):
        super().__init__()
        self.nodes = nodes
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(C_pp, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(MixedOp(C, 2 if reduction and i < 2 else 1, primitives)
                                   for j in range(nodes) for i in range(2 + j))

    @plain
    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """`weights` [edges, primitives]: the softmax of this cell kind's alpha, one row per edge."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for _ in range(self.nodes):
            node = sum(self.edges[e + i](h, weights[e + i]) for i, h in enumerate(states))
            e += len(states)
            states.append(node)
        return torch.cat(states[2:], dim=1)


class SeqMixedOp(nn.Module):
    """One SeqNN edge on [B, T, d]: sum_o softmax(alpha)_o * o(x) over all `primitives` (eq. 2).

    `attention`: the form of the attention ops (`ops.SEQ_ATTENTION_FORMS`)."""

    def __init__(self, d: int, primitives: tuple[str, ...], attention: str = "paper"):
        super().__init__()
        self.ops = nn.ModuleDict((name, SEQ_OPS[name](d, attention)) for name in primitives)

    @plain
    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops.values()))


class SeqSearchCell(nn.Module):
    """A SeqNN search cell (paper eq. 4): nodes y_j = sum_{i < j} o_bar^(i,j)(y_i) over the two
    previous cells' outputs y_0, y_1; output Linear(concat(y_j)) back to d."""

    def __init__(self, nodes: int, d: int, primitives: tuple[str, ...], attention: str = "paper"):
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList(SeqMixedOp(d, primitives, attention) for j in range(nodes) for _ in range(2 + j))
        self.out = nn.Linear(nodes * d, d)

    @plain
    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [s0, s1]
        e = 0
        for _ in range(self.nodes):
            node = sum(self.edges[e + i](h, weights[e + i]) for i, h in enumerate(states))
            e += len(states)
            states.append(node)
        return self.out(torch.cat(states[2:], dim=-1))


class SearchNetwork(nn.Module):
    """The joint CNN -> SeqNN supernet of `net_cfg` (paper Fig. 2), with its alphas."""

    def __init__(self, net_cfg: NetworkConfig):
        super().__init__()
        cfg = net_cfg.validate()
        if cfg.partial_channels != 1:
            raise ValueError("the reference network is exact DARTS; PC-DARTS (partial_channels > 1) "
                             "is only in space/search_network.py")
        self.cfg = cfg
        self.seq_prims = seq_primitives(cfg.scope)
        build_macro(
            self, cfg,
            lambda C_pp, C_p, C, reduction, reduction_prev: (
                SearchCell(cfg.nodes, C_pp, C_p, C, reduction, reduction_prev, CNN_PRIMITIVES), cfg.nodes),
            lambda: SeqSearchCell(cfg.seq_nodes, cfg.seq_dim, self.seq_prims, cfg.seq_attention))
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(n_edges(cfg.nodes), len(CNN_PRIMITIVES)))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(n_edges(cfg.nodes), len(CNN_PRIMITIVES)))
        if cfg.seq_cells:
            self.alpha_seq = nn.Parameter(1e-3 * torch.randn(n_edges(cfg.seq_nodes), len(self.seq_prims)))

    def named_alphas(self):
        return [(n, p) for n, p in self.named_parameters() if n.startswith("alpha_")]

    def alphas(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_alphas()]

    def weights(self):
        return (p for n, p in self.named_parameters() if not n.startswith("alpha_"))

    @plain
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_classes] of inputs [B, in_channels, F, T]."""
        w_normal = F.softmax(self.alpha_normal, dim=-1)
        w_reduce = F.softmax(self.alpha_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w_reduce if cell.reduction else w_normal)
        if not self.seq_cells:
            return self.classifier(self.dropout(s1.mean(dim=(2, 3))))
        B, C, Fq, T = s1.shape
        y0 = y1 = self.adapter(s1.permute(0, 3, 1, 2).reshape(B, T, C * Fq))
        w_seq = F.softmax(self.alpha_seq, dim=-1)
        for cell in self.seq_cells:
            y0, y1 = y1, cell(y0, y1, w_seq)
        return self.classifier(self.dropout(y1.mean(dim=1)))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(x), y)

    @classmethod
    def from_search_network(cls, net: nn.Module) -> "SearchNetwork":
        """A reference network with the weights, alphas and BatchNorm statistics of `net`
        (a `space.search_network.SearchNetwork` of an exact-DARTS configuration), on its
        device and in its dtype. Building it leaves torch's random state as it was."""
        with torch.random.fork_rng(devices=[]):
            ref = cls(net.cfg)
        like = next(net.parameters())
        ref.to(device=like.device, dtype=like.dtype)
        ref.load_state_dict(state_dict_from_search_network(net))
        return ref


_EDGE_OP = re.compile(r"^(cells|seq_cells)\.(\d+)\.edges\.(\d+)\.ops\.(\d+)\.(.+)$")


def reference_key(net: nn.Module, key: str) -> str:
    """The name in this module of `net`'s parameter or buffer `key`. The fast mixed ops hold
    their ops in a list without `none` (`MixedOp.index` gives each op's primitive); here
    they are keyed by primitive name. Every other name is the same."""
    m = _EDGE_OP.match(key)
    if not m:
        return key
    kind, cell, edge, position, rest = m.groups()
    primitives = CNN_PRIMITIVES if kind == "cells" else net.seq_prims
    op = getattr(net, kind)[int(cell)].edges[int(edge)]
    return f"{kind}.{cell}.edges.{edge}.ops.{primitives[op.index[int(position)]]}.{rest}"


def state_dict_from_search_network(net: nn.Module) -> dict[str, torch.Tensor]:
    """`net.state_dict()` (a `space.search_network.SearchNetwork`) under this module's names."""
    return {reference_key(net, key): value for key, value in net.state_dict().items()}


__all__ = ["MixedOp", "SearchCell", "SeqMixedOp", "SeqSearchCell", "SearchNetwork", "n_edges", "plain",
           "reference_key", "state_dict_from_search_network"]
