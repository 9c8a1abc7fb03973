"""Mixed operations and search cells in plain PyTorch: paper eq. 2 and the cells built on it.

- `MixedOp`, one edge (i, j) of a CNN cell: the continuous relaxation of paper eq. 2,

      o_bar(x) = sum_{o in O} softmax(alpha^(i,j))_o * o(x),

  every candidate op run on x, `none` included (its output is zeros, but its alpha takes
  part in the softmax), as in DARTS' own `MixedOp` (Liu et al. 2019; pt.darts).
- `SearchCell`, a normal or reduction CNN cell: the states are the two preprocessed cell
  inputs s_0, s_1 and the nodes x_j = sum_{i < j} o_bar^(i,j)(x_i); the cell's output is
  the channel concatenation of the nodes. A reduction cell's edges from s_0 and s_1 have
  stride 2.
- `SeqMixedOp` and `SeqSearchCell`, the same over the SeqNN ops on sequences [B, T, d]
  (paper eq. 4, y_t = f(y_{t-1}, y_{t-2})), the cell ending in a Linear map of the
  concatenated nodes back to d.

With `partial_channels` K > 1 (PC-DARTS, Xu et al. 2020: a different algorithm from exact
DARTS) each edge's ops are built for C/K channels and read the first C/K channels of their
state; the other channels bypass the ops (max-pooled 2x2 on a reduction edge), and the
two parts are concatenated and channel-shuffled, edge by edge, as PC-DARTS writes it.
Each edge's output is then weighted by its edge weight in the node's sum.

A mixed op's `ops` hold every primitive under its paper name. `emodarts_core.fast` holds
the fast form of these classes, which keys its parameters the same way, so that a state
dict of either form loads into the other.

Cells take the per-edge op weights (the softmax of their alpha rows) as an argument, so each
mixed op is a function of (inputs, weights) and can be checkpointed, edge by edge: a mixed
op with `checkpoint = True` keeps only its inputs and recomputes its activations in
backward (`checkpointed`; `darts.memory.plan_checkpointing` chooses which).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from emodarts_core.space.ops import CNN_OPS, SEQ_OPS, FactorizedReduce, PoolBN, ReLUConvBN


def checkpointed(module: nn.Module, *args):
    """Run `module(*args)` under activation checkpointing, exactly as without it.

    The recomputation in backward must see the same parameters as the forward did, even
    when the forward ran inside `torch.func.functional_call` (the architect's unrolled
    step substitutes parameters, and restores them before backward).  So the tensors the
    module holds now are captured and bound again for the recomputation; buffers are
    cloned there so BatchNorm running statistics are updated once, not twice.
    """
    params = dict(module.named_parameters())
    buffers = dict(module.named_buffers())
    first = [True]

    def run(*inputs):
        if first[0]:
            first[0] = False
            return module(*inputs)
        bound = {**params, **{n: b.clone() for n, b in buffers.items()}}
        return functional_call(module, bound, inputs)

    return checkpoint(run, *args, use_reentrant=False)


def n_edges(nodes: int) -> int:
    """Edges of a cell with `nodes` nodes and two inputs: node j reads the 2 + j earlier states."""
    return sum(2 + j for j in range(nodes))


def run_edge(edge: nn.Module, *args):
    """`edge(*args)`, checkpointed when the edge is and gradients are being recorded."""
    if edge.checkpoint and torch.is_grad_enabled():
        return checkpointed(edge, *args)
    return edge(*args)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle: [c_0..c_{n-1}] in `groups` groups -> interleaved (PC-DARTS)."""
    B, C, H, W = x.shape
    return x.reshape(B, groups, C // groups, H, W).transpose(1, 2).reshape(B, C, H, W)


class MixedOp(nn.Module):
    """One CNN edge: o_bar(x) = sum_o softmax(alpha)_o * o(x) over all `primitives` (paper eq. 2).

    The ops' BatchNorms are affine-free, and the pools are followed by one, as DARTS
    searches them. With `partial_channels` K the ops are built for C/K channels (the cell
    gives them the edge's channel sample).
    """

    def __init__(self, C: int, stride: int, primitives: tuple[str, ...], partial_channels: int = 1):
        super().__init__()
        self.stride = stride
        self.checkpoint = False  # recompute in backward (SearchNetwork.set_checkpointing)
        C_op = C // partial_channels
        self.ops = nn.ModuleDict()
        for name in primitives:
            op = CNN_OPS[name](C_op, stride, False)
            self.ops[name] = PoolBN(op, C_op) if "pool" in name else op

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
                 primitives: tuple[str, ...], partial_channels: int = 1):
        super().__init__()
        self.nodes = nodes
        self.reduction = reduction
        self.partial_channels = partial_channels
        self.preprocess0 = (FactorizedReduce(C_pp, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(MixedOp(C, 2 if reduction and i < 2 else 1, primitives, partial_channels)
                                   for j in range(nodes) for i in range(2 + j))

    def edge(self, e: int, h: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Edge `e` on state `h`; with partial channels, PC-DARTS' sample, bypass and shuffle."""
        K = self.partial_channels
        if K == 1:
            return run_edge(self.edges[e], h, weights)
        c = h.shape[1] // K
        mixed = run_edge(self.edges[e], h[:, :c], weights)
        rest = h[:, c:] if self.edges[e].stride == 1 else F.max_pool2d(h[:, c:], 2, 2)
        return channel_shuffle(torch.cat([mixed, rest], dim=1), K)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: torch.Tensor | None = None) -> torch.Tensor:
        """`weights` [edges, primitives]: the softmax of this cell kind's alpha, one row per
        edge; `edge_weights` (PC-DARTS edge normalisation, None for exact DARTS): each
        edge's weight in its node's sum."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for _ in range(self.nodes):
            terms = [self.edge(e + i, h, weights[e + i]) for i, h in enumerate(states)]
            if edge_weights is not None:
                terms = [edge_weights[e + i] * t for i, t in enumerate(terms)]
            e += len(states)
            states.append(sum(terms))
        return torch.cat(states[2:], dim=1)


class SeqMixedOp(nn.Module):
    """One SeqNN edge on [B, T, d]: sum_o softmax(alpha)_o * o(x) over all `primitives` (eq. 2).

    `attention`: the form of the attention ops (`ops.SEQ_ATTENTION_FORMS`)."""

    def __init__(self, d: int, primitives: tuple[str, ...], attention: str = "paper"):
        super().__init__()
        self.checkpoint = False  # recompute in backward (SearchNetwork.set_checkpointing)
        self.ops = nn.ModuleDict((name, SEQ_OPS[name](d, attention)) for name in primitives)

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

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [s0, s1]
        e = 0
        for _ in range(self.nodes):
            node = sum(run_edge(self.edges[e + i], h, weights[e + i]) for i, h in enumerate(states))
            e += len(states)
            states.append(node)
        return self.out(torch.cat(states[2:], dim=-1))


__all__ = ["channel_shuffle", "checkpointed", "run_edge", "n_edges", "MixedOp", "SearchCell",
           "SeqMixedOp", "SeqSearchCell"]
