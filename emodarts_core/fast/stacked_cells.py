"""The stacked network's CNN mixed ops and cells, with the fast form's savings.

A stacked search (docs/PERFORMANCE.md, "Many searches in one step") holds K copies of a
CNN map side by side in its channels, [B, K*C, H, W] (`fast.stacked_layers`). The classes
here compute what `space/cells.py` computes for each copy (paper eq. 2: each edge the sum
over its candidates of copy k's softmax(α)_o times o(x)), with the savings of the single
search's fast form (`fast/cells.py`), none of which changes a value:

- `none` is never run: its term is zero, and its α still gets its gradient through the
  softmax of the others.
- the ReLU of a state that the ops beginning with one read, and on a reduction edge its
  stride-2 subsamples (`fast.conv.stride2_phases`), are computed once per state for all
  the edges leaving it (`fast.cells.edge_inputs`), not once per op and edge.
- the pools, parameter-free, run once per state (every edge leaving a state has one
  stride), not once per edge (`StackedMixedOp.pooled`).
- each op that ends in an affine-free BatchNorm has it fused with copy k's op weight and
  the node's running sum: one node `acc + w_k * bn_k(z)` (`StackedBatchNorm2d.weighted`,
  the fast form's `fast.norms` kernel with one weight per copy), instead of a norm, a
  product over a [B, K, C, H, W] view and a sum.
- `FactorizedReduce`'s stride-2 1x1 convolutions are those of the state's subsamples.

tests/test_stacked_search.py compares a stack with K plain searches in float64, step by
step; tests/test_stacked_cells.py compares these cells with the stacked plain sums.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.fast.cells import edge_inputs
from emodarts_core.fast.conv import stride2_phases
from emodarts_core.fast.stacked_layers import per_channel
from emodarts_core.space.cells import MixedOp, SearchCell
from emodarts_core.space.ops import Conv7x1_1x7, DilConv, FactorizedReduce, PoolBN, SepConv, Zero


def cat_copies(maps: list[torch.Tensor], copies: int) -> torch.Tensor:
    """Concatenate [B, K*C_i, H, W] maps channel-wise within each copy: [B, K*sum(C_i), H, W].

    Channels-last maps give a channels-last map (one concatenation of their [B, H, W, K, C_i]
    views along the last axis), so that the layers after it, and the gradients flowing back
    into the maps, keep the layout the fast kernels are written for."""
    B, _, H, W = maps[0].shape
    if all(m.is_contiguous(memory_format=torch.channels_last) for m in maps):
        parts = [m.permute(0, 2, 3, 1).view(B, H, W, copies, -1) for m in maps]
        return torch.cat(parts, dim=-1).view(B, H, W, -1).permute(0, 3, 1, 2)
    return torch.cat([m.view(B, copies, -1, H, W) for m in maps], dim=2).reshape(B, -1, H, W)


def factorized_pre_norm(op: FactorizedReduce, phases: tuple[torch.Tensor, torch.Tensor], copies: int) -> torch.Tensor:
    """`FactorizedReduce`'s map before its norm, from the subsamples of its input's ReLU:
    conv_1 at stride 2 reads relu(x)[::2, ::2], conv_2 at stride 2 on relu(x)[1:, 1:] reads
    relu(x)[1::2, 1::2]; the halves concatenated copy by copy."""
    even, odd = phases
    return cat_copies([op.conv_1.on_subsample(even), op.conv_2.on_subsample(odd)], copies)


def final_norm(op: nn.Module) -> nn.Module:
    """The BatchNorm an op ends in."""
    if isinstance(op, PoolBN):
        return op[1]
    if isinstance(op, FactorizedReduce):
        return op.bn
    if isinstance(op, SepConv):
        return op.block_2[3]
    return op.op[2]  # DilConv, Conv7x1_1x7


def pre_norm(op: nn.Module, x: torch.Tensor, relu_x: torch.Tensor, phases, copies: int) -> torch.Tensor:
    """The op's map before its final norm, from its input `x`, that input's ReLU `relu_x`
    and (on a reduction edge) the ReLU's stride-2 subsamples `phases`."""
    if isinstance(op, PoolBN):
        return op[0](x)
    if isinstance(op, FactorizedReduce):
        return factorized_pre_norm(op, phases if phases is not None else stride2_phases(relu_x), copies)
    if isinstance(op, SepConv):
        depthwise, pointwise, norm = op.block_1
        _, depthwise_2, pointwise_2, _ = op.block_2
        return pointwise_2(depthwise_2(F.relu(norm(pointwise(depthwise(relu_x))))))
    if isinstance(op, DilConv):
        depthwise, pointwise, _ = op.op
        return pointwise(depthwise(relu_x, phases))
    if isinstance(op, Conv7x1_1x7):
        return op.op[1](op.op[0](relu_x))
    raise TypeError(f"no stacked pre-norm form of {type(op).__name__}")


class StackedMixedOp(MixedOp):
    """One CNN edge of K copies: copy k's channels weighted by copy k's op weights."""

    def pooled(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The pools' outputs before their norms, by primitive name: the same for every
        edge leaving state `x` (one stride per state), computed once for them."""
        return {name: op[0](x) for name, op in self.ops.items() if isinstance(op, PoolBN)}

    def forward(self, x: torch.Tensor, weights: torch.Tensor, relu_x: torch.Tensor | None = None,
                phases: tuple[torch.Tensor, torch.Tensor] | None = None,
                pooled: dict[str, torch.Tensor] | None = None, acc: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, K*C, H, W]; `weights` [K, primitives]: each copy's softmax of this edge's α.
        Optional, shared by the edges leaving x: `relu_x` = relu(x), `phases` its stride-2
        subsamples (reduction edges), `pooled` = `pooled(x)`; `acc` a running sum the
        edge's terms are added to (the node's, so far)."""
        K = weights.shape[0]
        if relu_x is None:
            relu_x = F.relu(x)
        out = acc
        for o, (name, op) in enumerate(self.ops.items()):
            if isinstance(op, Zero):
                continue
            if isinstance(op, nn.Identity):
                term = x * per_channel(weights[:, o], x.shape[1])
                out = term if out is None else out + term
                continue
            z = pooled[name] if pooled is not None and name in pooled else pre_norm(op, x, relu_x, phases, K)
            out = final_norm(op).weighted(out, z, weights[:, o])
        return out


class StackedSearchCell(SearchCell):
    """A CNN search cell of K copies (exact DARTS): each state's ReLU, subsamples and pools
    computed once for the edges leaving it, each node one running sum; the nodes
    concatenated copy by copy."""

    def forward(self, s0, s1, weights, edge_weights=None):
        K = weights.shape[0]
        stride = 2 if self.reduction else 1
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        inputs = [edge_inputs(s, stride) for s in states]
        pooled: dict[int, dict] = {}
        e = 0
        for n in range(self.nodes):
            node = None
            for j, inp in enumerate(inputs):
                edge = self.edges[e + j]
                if j not in pooled:
                    pooled[j] = edge.pooled(inp.x)
                node = edge(inp.x, weights[:, e + j], inp.relu_x, inp.relu_phases, pooled[j], node)
            e += len(inputs)
            states.append(node)
            if n < self.nodes - 1:  # the last node feeds no edge
                inputs.append(edge_inputs(node, 1))
        return cat_copies(states[2:], K)


class StackedFactorizedReduce(FactorizedReduce):
    """`FactorizedReduce` of K copies (a reduction cell's `preprocess0`): the 1x1 convolutions
    of its ReLU's subsamples, concatenated copy by copy."""

    def forward(self, x):
        return self.bn(factorized_pre_norm(self, stride2_phases(F.relu(x)), self.conv_1.copies))


__all__ = ["StackedFactorizedReduce", "StackedMixedOp", "StackedSearchCell", "cat_copies", "final_norm",
           "pre_norm"]
