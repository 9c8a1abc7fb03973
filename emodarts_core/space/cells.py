"""Mixed operations and search cells (CNN normal/reduction cells and SeqNN cells): the fast form.

`space/reference.py` is the plain form to read first: there the mixed op is paper eq. 2,
sum_o softmax(alpha)_o * o(x), term by term. The mixed op here computes the same sum
(tests/test_fast_switch.py compares the two networks on the same weights), with savings
that change nothing it computes:

- `none` is never run: its output is zero, so its term adds nothing to the sum and
  nothing to the gradient of the other terms; its alpha still receives its gradient
  through the softmax normalisation of the other ops' weights.
- ops that begin with a ReLU are built without it and read a ReLU of their input that the
  cell computes once per state, instead of once per op and edge.
- with partial channels (PC-DARTS), each state's channel sample, its ReLU and subsamples,
  and its pooled bypass channels are computed once for all edges leaving it, and each
  node is shuffled once rather than each edge (`edge_inputs`, `SearchCell.forward`).
- the pools (parameter-free, so the same on every edge of a stride that reads a state)
  run once per state, not once per edge (`MixedOp.pooled`).
- ops that end in a BatchNorm have it fused with their op weight and the edge's sum
  (`fast.norms.weighted_batch_norm`): one autograd node instead of three, and one saved
  tensor fewer per op.

The shared ReLUs, pools and stride-2 subsamples, the fused norms, the channels-last
shuffle and the batched tanh RNNs are fast paths: with `emodarts_core.fast.enabled()`
False each op runs by itself on its edge's input, with its own ReLU and an
`nn.BatchNorm2d`, and the tanh RNNs run as torch's `nn.RNN`.

Cells take the per-edge op weights (the softmax of their alpha rows) as an argument, so each
mixed op is a function of (inputs, weights) and can be checkpointed, edge by edge: a mixed
op with `checkpoint = True` keeps only its inputs and recomputes its activations in
backward (`checkpointed`). `SearchNetwork.set_checkpointing` sets every edge or a chosen
set of them (`darts.memory.plan_checkpointing`: the cheapest edges to recompute that bring
the step within a memory budget).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from emodarts_core import fast
from emodarts_core.fast.conv import layout_of, stride2_phases
from emodarts_core.fast.norms import weighted_batch_norm
from emodarts_core.fast.recurrence import stackable, stacked_tanh_rnn
from emodarts_core.space.ops import (CNN_OPS, SEQ_OPS, EndsInBatchNorm, FactorizedReduce, PoolBN, ReLUConvBN,
                                     cnn_op_has_leading_relu)


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
    """Edges of a DARTS cell with `nodes` intermediate nodes and two inputs: 2 + 3 + ..."""
    return sum(2 + i for i in range(nodes))


def _run_edge(edge: nn.Module, *args):
    if edge.checkpoint and torch.is_grad_enabled():
        return checkpointed(edge, *args)
    return edge(*args)


class _CheckpointedEdges:
    """`checkpoint_edges` of a cell: True when every edge is checkpointed; setting it sets them all."""

    @property
    def checkpoint_edges(self) -> bool:
        return all(edge.checkpoint for edge in self.edges)

    @checkpoint_edges.setter
    def checkpoint_edges(self, on: bool) -> None:
        for edge in self.edges:
            edge.checkpoint = bool(on)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle: [c_0..c_{n-1}] in `groups` groups -> interleaved (PC-DARTS)."""
    B, C, H, W = x.shape
    out = x.reshape(B, groups, C // groups, H, W).transpose(1, 2).reshape(B, C, H, W)
    return out.contiguous(memory_format=torch.channels_last) if fast.enabled() else out


def shuffled_concat(mixed: torch.Tensor, rest: torch.Tensor, groups: int) -> torch.Tensor:
    """`channel_shuffle(torch.cat([mixed, rest], 1), groups)` with `mixed` the first of
    `groups` equal channel groups, written in one pass on channels-last maps.

    Channel m*groups + g of the result is channel m of group g: on a channels-last map that
    is the [..., c, groups] layout of the last axis, filled by one concatenation.
    """
    cl = torch.channels_last
    if not (fast.enabled() and mixed.is_contiguous(memory_format=cl) and rest.is_contiguous(memory_format=cl)):
        return channel_shuffle(torch.cat([mixed, rest], dim=1), groups)
    B, c, H, W = mixed.shape
    parts = [mixed.permute(0, 2, 3, 1).unsqueeze(-1),  # [B, H, W, c, 1]
             rest.permute(0, 2, 3, 1).reshape(B, H, W, groups - 1, c).transpose(-1, -2)]  # [B, H, W, c, K-1]
    return torch.cat(parts, dim=-1).reshape(B, H, W, c * groups).permute(0, 3, 1, 2)


class MixedOp(nn.Module):
    """All CNN candidate ops of one edge but `none`, summed with the edge's op weights.

    With `partial_channels` K > 1 (PC-DARTS, Xu et al. 2020: a different algorithm from
    exact DARTS) the ops are built for C/K channels and the mixed op reads the edge's
    channel sample; the cell takes the sample, passes the other channels by, and shuffles
    them back together (`SearchCell`).  K = 1 is exact DARTS.
    """

    def __init__(self, C: int, stride: int, primitives: tuple[str, ...], partial_channels: int = 1):
        super().__init__()
        self.stride = stride
        self.checkpoint = False  # recompute in backward (SearchNetwork.set_checkpointing)
        C_op = C // partial_channels
        self.index: list[int] = []  # position of each op in `primitives` (= its alpha column)
        self.reads_relu: list[bool] = []  # op was built without its leading ReLU
        self.ops = nn.ModuleList()
        for i, name in enumerate(primitives):
            if name == "none":
                continue
            shared = cnn_op_has_leading_relu(name, stride)
            op = CNN_OPS[name](C_op, stride, False, relu=not shared)
            if "pool" in name:  # DARTS search: pools get a parameter-free BN like the conv ops
                op = PoolBN(op, C_op)
            self.index.append(i)
            self.reads_relu.append(shared)
            self.ops.append(op)

    def pooled(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """The pools' outputs before their norms, by position in `ops`: parameter-free, so
        the same for every edge of this stride that reads `x`, and computed once for them."""
        return {p: op.pre_norm(x) for p, op in enumerate(self.ops) if isinstance(op, PoolBN)}

    def forward(self, x: torch.Tensor, relu_x: torch.Tensor, weights: torch.Tensor,
                relu_phases: tuple[torch.Tensor, torch.Tensor] | None = None,
                pooled: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """`relu_x` must be `relu(x)`; `weights` is this edge's softmax row over `primitives`;
        `relu_phases` (optional, stride 2 only) is `stride2_phases(relu_x)` and `pooled`
        (optional) is `pooled(x)`, both shared by the edges that read the same state.
        With the fast paths off, each op runs by itself on `x` (with its own ReLU)."""
        out = None
        if not fast.enabled():
            for i, shared, op in zip(self.index, self.reads_relu, self.ops):
                term = weights[i] * op(F.relu(x) if shared else x)
                out = term if out is None else out + term
            return out
        for p, (i, shared, op) in enumerate(zip(self.index, self.reads_relu, self.ops)):
            h = relu_x if shared else x
            if isinstance(op, EndsInBatchNorm):  # one fused node for norm, weight and sum
                if pooled is not None and p in pooled:
                    z = pooled[p]
                else:
                    z = op.pre_norm(h, relu_phases if shared and self.stride == 2 else None)
                out = weighted_batch_norm(out, z, weights[i], op.final_norm)
            else:
                term = weights[i] * op(h)
                out = term if out is None else out + term
        return out


class EdgeInputs(NamedTuple):
    """What the edges leaving one cell state read, computed once per state.

    `x` is the state (with partial channels: its first C/K channels, the sample every edge
    leaving it mixes), `relu_x` its ReLU, `relu_phases` the stride-2 subsamples of `relu_x`
    (reduction edges only), and `rest` (partial channels only) the channels that bypass
    the ops, max-pooled 2x2 on a reduction edge.
    """

    x: torch.Tensor
    relu_x: torch.Tensor
    relu_phases: tuple[torch.Tensor, torch.Tensor] | None = None
    rest: torch.Tensor | None = None


def edge_inputs(state: torch.Tensor, stride: int, partial_channels: int = 1) -> EdgeInputs:
    """The `EdgeInputs` of `state` for edges of `stride`.

    With partial channels every edge leaving a state samples the same first C/K channels
    (the shuffle happens at the edges' outputs), so the sample, its ReLU and subsamples,
    and the pooled rest are shared by those edges instead of being sliced per edge.  The
    split is one autograd node whose backward writes the state's gradient in one pass.
    """
    if partial_channels == 1:
        x, rest = state, None
    else:
        c = state.shape[1] // partial_channels
        x, rest = torch.split(state, [c, state.shape[1] - c], dim=1)
        x = x.contiguous(memory_format=layout_of(state))
        if stride != 1:
            rest = F.max_pool2d(rest, 2, 2)
    relu_x = F.relu(x)
    return EdgeInputs(x, relu_x, stride2_phases(relu_x) if stride != 1 and fast.enabled() else None, rest)


class SearchCell(_CheckpointedEdges, nn.Module):
    """DARTS normal or reduction search cell.

    Inputs are the outputs of the two previous cells; preprocess0 is a FactorizedReduce when
    the previous cell reduced (to match the spatial size), otherwise a ReLU-conv1x1-BN.
    Each of the `nodes` intermediate nodes sums a MixedOp over every earlier state; the
    output is the channel concatenation of the intermediate nodes.
    """

    def __init__(self, nodes: int, C_pp: int, C_p: int, C: int, reduction: bool, reduction_prev: bool,
                 primitives: tuple[str, ...], partial_channels: int = 1):
        super().__init__()
        self.nodes = nodes
        self.reduction = reduction
        self.partial_channels = partial_channels
        # pools once per state for the edges that are not checkpointed (off: each edge pools
        # its input itself, as a checkpointed edge does)
        self.share_pools = True
        self.preprocess0 = (FactorizedReduce(C_pp, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList()
        for i in range(nodes):
            for j in range(2 + i):
                self.edges.append(MixedOp(C, 2 if reduction and j < 2 else 1, primitives, partial_channels))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: torch.Tensor | None = None) -> torch.Tensor:
        """`weights`: the op softmax per edge; `edge_weights` (PC-DARTS edge normalisation,
        None for exact DARTS): each edge's weight in its node's sum.

        With partial channels K > 1, edge e from state j contributes
        shuffle(cat(mixed_e(sample_j), rest_j)) * edge_weights[e] to its node; since the
        shuffle is a fixed permutation of channels, the node is computed as one
        shuffle(cat(sum_e edge_weights[e] * mixed_e, sum_e edge_weights[e] * rest_j)).
        """
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        stride = 2 if self.reduction else 1
        inputs = [edge_inputs(s, stride, self.partial_channels) for s in states]
        # the pools of the edges leaving a state, once per state for the edges that are not
        # checkpointed (a checkpointed edge recomputes its own rather than keep them; with the
        # fast paths off, each edge pools for itself)
        share = self.share_pools and fast.enabled()
        pooled: dict[int, dict] = {}
        offset = 0
        for k in range(self.nodes):
            mixed = rest = None
            for j, inp in enumerate(inputs):
                edge = self.edges[offset + j]
                if share and not edge.checkpoint and j not in pooled:
                    pooled[j] = edge.pooled(inp.x)
                e = offset + j
                term = _run_edge(edge, inp.x, inp.relu_x, weights[e], inp.relu_phases,
                                 None if edge.checkpoint else pooled.get(j))
                if edge_weights is not None:
                    term = edge_weights[e] * term
                mixed = term if mixed is None else mixed + term
                if inp.rest is not None:
                    passed = inp.rest if edge_weights is None else edge_weights[e] * inp.rest
                    rest = passed if rest is None else rest + passed
            offset += len(inputs)
            node = mixed if rest is None else shuffled_concat(
                mixed, rest.contiguous(memory_format=layout_of(mixed)), self.partial_channels)
            states.append(node)
            if k < self.nodes - 1:  # the last node feeds no edge
                inputs.append(edge_inputs(node, 1, self.partial_channels))
        return torch.cat(states[2:], dim=1)


class SeqMixedOp(nn.Module):
    """All SeqNN candidate ops of one edge but `none`, summed with the edge's op weights.

    `attention` is the form of the attention candidates (`ops.SEQ_ATTENTION_FORMS`).
    On CPU, with the fast paths on, the unidirectional tanh RNN candidates (`rnn_*`, and
    `rnn_att_*` in the "dot" form; the paper form's RNNs are bidirectional) run together,
    one batched recurrence per layer depth (`fast.recurrence.stacked_tanh_rnn`: the same values and gradients, for a
    fraction of the per-step overhead); LSTMs keep torch's fused kernels.
    """

    def __init__(self, d: int, primitives: tuple[str, ...], attention: str = "paper"):
        super().__init__()
        self.checkpoint = False  # recompute in backward (SearchNetwork.set_checkpointing)
        self.index = [i for i, name in enumerate(primitives) if name != "none"]
        self.ops = nn.ModuleList(SEQ_OPS[primitives[i]](d, attention) for i in self.index)

    def _stacked_rnn_outputs(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Position in `ops` -> recurrent output, for the tanh RNN candidates run together
        (none with the fast paths off, off CPU, under autocast, or with fewer than two)."""
        if not fast.enabled() or x.device.type != "cpu" or torch.is_autocast_enabled(x.device.type):
            return {}
        positions = [p for p, op in enumerate(self.ops) if stackable(getattr(op, "core", None))]
        if len(positions) < 2:
            return {}
        return dict(zip(positions, stacked_tanh_rnn(x, [self.ops[p].core for p in positions])))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        stacked = self._stacked_rnn_outputs(x)
        out = None
        for p, (i, op) in enumerate(zip(self.index, self.ops)):
            term = weights[i] * (op.head(stacked[p]) if p in stacked else op(x))
            out = term if out is None else out + term
        return out


class SeqSearchCell(_CheckpointedEdges, nn.Module):
    """SeqNN search cell on [B, T, d]: y_t = f(y_{t-1}, y_{t-2}) (paper eq. 4).

    `nodes` intermediate nodes each sum a SeqMixedOp over every earlier state; the output
    is a Linear map of the concatenated nodes back to d.  `attention`: the form of the
    attention candidates (`ops.SEQ_ATTENTION_FORMS`).
    """

    def __init__(self, nodes: int, d: int, primitives: tuple[str, ...], attention: str = "paper"):
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList(SeqMixedOp(d, primitives, attention) for i in range(nodes) for _ in range(2 + i))
        self.out = nn.Linear(nodes * d, d)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [s0, s1]
        offset = 0
        for _ in range(self.nodes):
            node = None
            for j, h in enumerate(states):
                term = _run_edge(self.edges[offset + j], h, weights[offset + j])
                node = term if node is None else node + term
            offset += len(states)
            states.append(node)
        return self.out(torch.cat(states[2:], dim=-1))


__all__ = ["channel_shuffle", "shuffled_concat", "checkpointed", "n_edges", "MixedOp", "EdgeInputs", "edge_inputs",
           "SearchCell", "SeqMixedOp", "SeqSearchCell"]
