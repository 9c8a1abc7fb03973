"""The fast form of the mixed ops and search cells: the same sums as `space/cells.py`.

`space/cells.py` is the plain form to read first: there the mixed op is paper eq. 2,
sum_o softmax(alpha)_o * o(x), term by term. The classes here are its subclasses, with the
same modules and parameter names, and compute the same sum (tests/test_fast_switch.py
builds both forms from one configuration and compares them), with savings that change
nothing it computes:

- `none` is never run: its output is zero, so its term adds nothing to the sum and
  nothing to the gradient of the other terms; its alpha still receives its gradient
  through the softmax normalisation of the other ops' weights.
- ops that begin with a ReLU read a ReLU of their input that the cell computes once per
  state, instead of once per op and edge (`fast.ops.reads_relu`).
- a reduction cell's stride-2 subsamples of each state's ReLU are copied once per state
  and shared by its edges (`fast.conv.stride2_phases`).
- with partial channels (PC-DARTS), each state's channel sample, its ReLU and subsamples,
  and its pooled bypass channels are computed once for all edges leaving it, and each
  node is shuffled once rather than each edge (`edge_inputs`, `FastSearchCell.forward`):
  the shuffle is a fixed permutation of channels, so it commutes with the node's sum.
- the pools (parameter-free, so the same on every edge of a stride that reads a state)
  run once per state, not once per edge (`FastMixedOp.pooled`).
- ops that end in a BatchNorm have it fused with their op weight and the edge's sum
  (`fast.norms.weighted_batch_norm`): one autograd node instead of three, and one saved
  tensor fewer per op.
- the tanh RNN candidates of a SeqNN edge (one-way and two-way) run as one batched
  recurrence per layer depth (`fast.recurrence.stacked_tanh_rnn`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.fast.conv import layout_of, stride2_phases
from emodarts_core.fast.norms import weighted_batch_norm
from emodarts_core.fast.ops import EndsInBatchNorm, reads_relu, to_fast
from emodarts_core.fast.recurrence import draws_dropout, stackable, stacked_tanh_rnn
from emodarts_core.space import cells, ops


def shuffled_concat(mixed: torch.Tensor, rest: torch.Tensor, groups: int) -> torch.Tensor:
    """`channel_shuffle(torch.cat([mixed, rest], 1), groups)` with `mixed` the first of
    `groups` equal channel groups, written in one pass on channels-last maps.

    Channel m*groups + g of the result is channel m of group g: on a channels-last map that
    is the [..., c, groups] layout of the last axis, filled by one concatenation.
    """
    cl = torch.channels_last
    if not (mixed.is_contiguous(memory_format=cl) and rest.is_contiguous(memory_format=cl)):
        return cells.channel_shuffle(torch.cat([mixed, rest], dim=1), groups)
    B, c, H, W = mixed.shape
    parts = [mixed.permute(0, 2, 3, 1).unsqueeze(-1),  # [B, H, W, c, 1]
             rest.permute(0, 2, 3, 1).reshape(B, H, W, groups - 1, c).transpose(-1, -2)]  # [B, H, W, c, K-1]
    return torch.cat(parts, dim=-1).reshape(B, H, W, c * groups).permute(0, 3, 1, 2)


class FastMixedOp(cells.MixedOp):
    """`space.cells.MixedOp`'s sum without `none`, with the shared ReLU, subsamples and pools
    of the edge's state, and each norm fused with its op weight. Built directly, it builds
    its ops in their fast form, as `fast.ops.to_fast` converts a plain mixed op's."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        to_fast(self)

    def pooled(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The pools' outputs before their norms, by primitive name: parameter-free, so the
        same for every edge of this stride that reads `x`, and computed once for them."""
        return {name: op.pre_norm(x) for name, op in self.ops.items() if isinstance(op, ops.PoolBN)}

    def forward(self, x: torch.Tensor, relu_x: torch.Tensor, weights: torch.Tensor,
                relu_phases: tuple[torch.Tensor, torch.Tensor] | None = None,
                pooled: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """`relu_x` must be `relu(x)`; `weights` is this edge's softmax row over its
        primitives; `relu_phases` (optional, stride 2 only) is `stride2_phases(relu_x)` and
        `pooled` (optional) is `pooled(x)`, both shared by the edges that read the same state."""
        out = None
        for i, (name, op) in enumerate(self.ops.items()):
            if name == "none":
                continue
            shared = reads_relu(name, self.stride)
            h = relu_x if shared else x
            if isinstance(op, EndsInBatchNorm):  # one fused node for norm, weight and sum
                if pooled is not None and name in pooled:
                    z = pooled[name]
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
    return EdgeInputs(x, relu_x, stride2_phases(relu_x) if stride != 1 else None, rest)


class FastSearchCell(cells.SearchCell):
    """`space.cells.SearchCell` computed with each state's inputs shared by its edges. Built
    directly, it builds its mixed ops and their ops in their fast form."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        to_fast(self, CELL_CLASSES)

    # pools once per state for the edges that are not checkpointed (off: each edge pools
    # its input itself, as a checkpointed edge does)
    share_pools = True

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: torch.Tensor | None = None) -> torch.Tensor:
        """As `space.cells.SearchCell.forward`. With partial channels K > 1, edge e from
        state j contributes shuffle(cat(mixed_e(sample_j), rest_j)) * edge_weights[e] to its
        node; since the shuffle is a fixed permutation of channels, the node is computed as
        one shuffle(cat(sum_e edge_weights[e] * mixed_e, sum_e edge_weights[e] * rest_j)).
        """
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        stride = 2 if self.reduction else 1
        inputs = [edge_inputs(s, stride, self.partial_channels) for s in states]
        # the pools of the edges leaving a state, once per state for the edges that are not
        # checkpointed (a checkpointed edge recomputes its own rather than keep them)
        pooled: dict[int, dict] = {}
        offset = 0
        for k in range(self.nodes):
            mixed = rest = None
            for j, inp in enumerate(inputs):
                e = offset + j
                edge = self.edges[e]
                if self.share_pools and not edge.checkpoint and j not in pooled:
                    pooled[j] = edge.pooled(inp.x)
                term = cells.run_edge(edge, inp.x, inp.relu_x, weights[e], inp.relu_phases,
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


def _leading_rnn(op: nn.Module) -> nn.RNNBase | None:
    """The recurrent net a SeqNN op begins with, when what follows it (`after_rnn`) needs only
    its outputs: `Recurrent`, the "dot" attention form, and the paper's attention form
    around a tanh RNN (whose final states are its outputs at the ends of the sequence)."""
    if isinstance(op, ops.Recurrent):
        return op.rnn
    if isinstance(op, ops.DotRecurrentAttention):
        return op.recurrent.rnn
    if isinstance(op, ops.RecurrentAttention) and op.kind == "rnn":
        return op.rnn
    return None


def after_rnn(op: nn.Module, h: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
    """What `op` computes from its recurrent net's outputs `h` [..., T, d or 2d] (see
    `_leading_rnn`; leading dimensions such as the stacked network's copies pass through)
    and, for an LSTM's attention form, its last layer's final cell states `c` [..., 2d]
    (forward, then backward)."""
    if isinstance(op, ops.DotRecurrentAttention):
        return h + F.scaled_dot_product_attention(h, h, h)
    if isinstance(op, ops.RecurrentAttention):
        # final hidden states: the forward direction's last output, the backward one's first
        d = op.rnn.hidden_size
        return op.attend(h, torch.cat([h[..., -1, :d], h[..., 0, d:]] + ([] if c is None else [c]), dim=-1))
    return h


class FastSeqMixedOp(cells.SeqMixedOp):
    """`space.cells.SeqMixedOp`'s sum without `none`; on CPU the tanh RNN candidates
    (`rnn_*`, `rnn_att_*`) run together, one batched recurrence per layer depth (the same
    values and gradients, for a fraction of the per-step overhead); LSTMs keep torch's
    fused kernels."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        to_fast(self)

    def _stacked_names(self, x: torch.Tensor) -> list[str]:
        """The candidates whose RNNs run together: none off CPU, under autocast, or with
        fewer than two. Of those that draw dropout masks, only the first: its draws then
        come where the plain form makes them (`forward`)."""
        if x.device.type != "cpu" or torch.is_autocast_enabled(x.device.type):
            return []
        names = [name for name, op in self.ops.items() if stackable(_leading_rnn(op))]
        drawing = [name for name in names if draws_dropout(_leading_rnn(self.ops[name]))]
        names = [name for name in names if name not in drawing[1:]]
        return names if len(names) >= 2 else []

    def _stacked_rnn_outputs(self, x: torch.Tensor, names: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Primitive name -> recurrent output, for the tanh RNN candidates run together
        (`names`, when the caller has them, else `_stacked_names`)."""
        names = self._stacked_names(x) if names is None else names
        if not names:
            return {}
        return dict(zip(names, stacked_tanh_rnn(x, [_leading_rnn(self.ops[name]) for name in names])))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        names = self._stacked_names(x)
        # the batched recurrences run where the plain form runs the candidate that draws
        # dropout masks (else the first of them), so that every random draw of the edge
        # comes in the plain form's order; the terms are summed in the ops' order
        at = next((n for n in names if draws_dropout(_leading_rnn(self.ops[n]))), names[0] if names else None)
        recurrent: dict[str, torch.Tensor] = {}
        values: dict[str, torch.Tensor] = {}
        for name, op in self.ops.items():
            if name == at:
                recurrent = self._stacked_rnn_outputs(x, names)
            if name != "none" and name not in names:
                values[name] = op(x)
        out = None
        for i, (name, op) in enumerate(self.ops.items()):
            if name == "none":
                continue
            term = weights[i] * (after_rnn(op, recurrent[name]) if name in names else values[name])
            out = term if out is None else out + term
        return out


#: the cells' plain classes -> their fast forms (`fast.ops.to_fast` adds the ops')
CELL_CLASSES = {cells.MixedOp: FastMixedOp, cells.SearchCell: FastSearchCell, cells.SeqMixedOp: FastSeqMixedOp}


__all__ = ["CELL_CLASSES", "EdgeInputs", "FastMixedOp", "FastSearchCell", "FastSeqMixedOp", "edge_inputs",
           "shuffled_concat"]
