"""K searches of one configuration in one supernet: the stacked search network.

`StackedSearchNetwork(nets)` takes K plain search networks of one `NetworkConfig` (each
initialised from its own seed, as a single search draws it) and carries all of them in
one module of the same tree: every parameter and buffer keeps its plain name and gains a
leading dimension K (`fast.stacked_layers`), α included ([K, edges, ops]), so
`copy_state_dict(k)` is a state dict of the plain form (`space.search_network`) and
`load_copy(k, state)` takes one back. A CNN map holds the copies in its channels
([B, K*C, H, W]); the SeqNN's sequences hold them first ([K, B, T, d]); the input is
[K, B, C_in, F, T] (copy k's batch in row k) and the logits [K, B, classes].

The cells are those of `space/cells.py` with the op weights of each copy applied to its
own channels, and the concatenations of a cell's nodes (and of `FactorizedReduce`'s two
halves) taken copy by copy, so copy k computes exactly what its plain network computes
(paper eq. 2 and 4; tests/test_stacked_search.py compares them in float64). Activation
checkpointing and PC-DARTS' partial channels are not carried (`StackedSearchNetwork`
refuses them).

The CNN cells (`StackedMixedOp`, `StackedSearchCell`) take the savings of the single
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
  product and a sum.
- `FactorizedReduce`'s stride-2 1x1 convolutions are those of the state's subsamples.
- the nodes' concatenation keeps channels-last maps channels-last (`cat_copies`).
- a weighted term added to a running sum (`skip_connect`'s, an unfused norm's, a SeqNN
  candidate's) is one `addcmul` (`stacked_layers.weighted_add`), not a product and a sum.

tests/test_stacked_cells.py compares copy k with its plain network in float64 with these
kernels forced on at small maps.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.config import ConfigError
from emodarts_core.fast.cells import after_rnn, edge_inputs
from emodarts_core.fast.conv import AvgPool3x3, stride2_phases
from emodarts_core.fast.stacked_layers import STACKED_LEAVES, StackedLeaf, per_channel, stacked_leaf, weighted_add
from emodarts_core.fast.stacked_recurrence import (draws_masks, grouped_names, grouped_recurrence,
                                                   leading_recurrent)
from emodarts_core.space.cells import MixedOp, SearchCell, SeqMixedOp, SeqSearchCell
from emodarts_core.space.ops import (Conv7x1_1x7, DilConv, FactorizedReduce, PoolBN, RecurrentAttention, SepConv,
                                     SeqZero, Zero)
from emodarts_core.space.search_network import SearchNetwork


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
                out = weighted_add(out, x, per_channel(weights[:, o], x.shape[1]))
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


class StackedSeqMixedOp(SeqMixedOp):
    """One SeqNN edge of K copies on [K, B, T, d]. On CPU its tanh RNN candidates, all K
    copies, run as one batched recurrence per layer depth, and so do its LSTM candidates
    (`fast.stacked_recurrence`); the other candidates run one by one."""

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        groups = [names for names in (grouped_names(self.ops.items(), x, lstm) for lstm in (True, False)) if names]
        # each group runs where the candidate of it that draws dropout masks (else its first)
        # runs one by one, so every random draw comes in the same order
        at = {next((n for n in names if draws_masks(leading_recurrent(self.ops[n]))), names[0]): names
              for names in groups}
        grouped = {name for names in groups for name in names}
        values: dict[str, torch.Tensor] = {}
        for name, op in self.ops.items():
            if name in at:
                outs = grouped_recurrence(x, [leading_recurrent(self.ops[n]) for n in at[name]])
                values.update({n: after_rnn(self.ops[n], *out) for n, out in zip(at[name], outs)})
            if not isinstance(op, SeqZero) and name not in grouped:
                values[name] = op(x)
        total = None
        for o, (name, op) in enumerate(self.ops.items()):
            if isinstance(op, SeqZero):
                continue
            total = weighted_add(total, values[name], weights[:, o].view(-1, 1, 1, 1))
        return total


class StackedSeqSearchCell(SeqSearchCell):
    """A SeqNN search cell of K copies on [K, B, T, d] (paper eq. 4)."""

    def forward(self, s0, s1, weights):
        states = [s0, s1]
        e = 0
        for _ in range(self.nodes):
            terms = [self.edges[e + i](h, weights[:, e + i]) for i, h in enumerate(states)]
            node = terms[0]
            for term in terms[1:]:  # the plain form's sum, without its 0 + first term (a copy)
                node = node + term
            states.append(node)
            e += len(states) - 1
        return self.out(torch.cat(states[2:], dim=-1))


class StackedRecurrentAttention(RecurrentAttention):
    """The paper's attention op of K copies on [K, B, T, d] (`space.ops.RecurrentAttention`)."""

    def recurrent(self, x):
        o, state = self.rnn(x)
        finals = state if self.kind == "lstm" else (state,)
        K, B = x.shape[:2]
        return o, torch.cat([f[:, -2:].transpose(1, 2).reshape(K, B, -1) for f in finals], dim=-1)

    def weights(self, o, s):
        s = s.unsqueeze(2).expand(-1, -1, o.shape[2], -1)
        return torch.softmax(torch.tanh(self.attn(torch.cat([o, s], dim=-1))), dim=2)


_COMPOSITES = {MixedOp: StackedMixedOp, SearchCell: StackedSearchCell, FactorizedReduce: StackedFactorizedReduce,
               SeqMixedOp: StackedSeqMixedOp, SeqSearchCell: StackedSeqSearchCell,
               RecurrentAttention: StackedRecurrentAttention}


class StackedSearchNetwork(SearchNetwork):
    """K plain `SearchNetwork`s of one configuration as one network (see the module's docstring)."""

    def __init__(self, nets: list[SearchNetwork]):  # noqa: D107 - builds from `nets`, not from a config
        nn.Module.__init__(self)
        if not nets:
            raise ValueError("a stacked search network needs at least one network")
        cfg = nets[0].cfg
        for net in nets:
            if type(net) is not SearchNetwork:
                raise TypeError(f"stack plain SearchNetworks (emodarts_core.space), not {type(net).__name__}")
            if net.cfg != cfg:
                raise ConfigError("the stacked networks differ in their NetworkConfig; a stack carries one configuration")
        if cfg.partial_channels != 1:
            raise ConfigError("a stacked search runs exact DARTS only (partial_channels=1)")
        template = copy.deepcopy(nets[0])
        for name, module in list(template.named_modules()):
            if type(module) in STACKED_LEAVES:
                parent, _, leaf = name.rpartition(".")
                setattr(template.get_submodule(parent) if parent else template, leaf,
                        stacked_leaf([net.get_submodule(name) for net in nets]))
            elif type(module) is nn.AvgPool2d:  # DARTS' avg_pool_3x3, as the fast form computes it
                module.__class__ = AvgPool3x3
            elif type(module) in _COMPOSITES:
                module.__class__ = _COMPOSITES[type(module)]
        for name, _ in nets[0].named_alphas():
            setattr(template, name, nn.Parameter(torch.stack([getattr(n, name).detach() for n in nets]).clone()))
        self.__dict__.update(template.__dict__)
        self.copies = len(nets)
        for name, param in self.named_parameters():
            owner = self.get_submodule(name.rpartition(".")[0]) if "." in name else self
            if param.shape[0] != self.copies or not (owner is self or isinstance(owner, StackedLeaf)):
                raise AssertionError(f"{name} is not stacked")

    # --- copies --------------------------------------------------------------------------
    def copy_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Copy k's state dict, in the plain form's names and shapes (loads into `SearchNetwork`)."""
        return {name: t[k].detach().clone() for name, t in self.state_dict().items()}

    @torch.no_grad()
    def load_copy(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Put a plain search network's state dict into copy k (names and shapes must match)."""
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"state dict does not fit this network: missing {missing[:3]}, unexpected {unexpected[:3]}")
        for name, t in own.items():
            t[k].copy_(state[name])

    def alpha_probs(self, k: int | None = None) -> dict:
        """Softmax of each α as numpy arrays, [K, edges, ops]; with `k`, copy k's alone."""
        probs = {n[len("alpha_"):]: F.softmax(p.detach(), dim=-1).cpu().numpy()
                 for n, p in self.named_alphas() if n.startswith("alpha_")}
        return probs if k is None else {n: np.ascontiguousarray(p[k]) for n, p in probs.items()}

    def genotype(self):
        raise TypeError("a stacked network holds K genotypes: load copy_state_dict(k) into a SearchNetwork")

    def set_checkpointing(self, on) -> None:
        if on is True or (not isinstance(on, bool) and tuple(on)):
            raise ConfigError("a stacked search does not checkpoint activations (SearchConfig.checkpointing='off')")

    # --- forward -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [K, B, classes] of inputs [K, B, in_channels, F, T] (copy k's batch in row k)."""
        K, B = x.shape[:2]
        if K != self.copies:
            raise ValueError(f"input carries {K} copies' batches; the network has {self.copies}")
        w_normal = F.softmax(self.alpha_normal, dim=-1)
        w_reduce = F.softmax(self.alpha_reduce, dim=-1)
        # the copies' inputs side by side in the channels, made channels-last before the stem
        # rather than its output after it: its grouped convolution and norm then run in that
        # layout too (docs/PERFORMANCE.md, "Many searches in one step": 2.6x faster at K = 8)
        stacked = x.transpose(0, 1).reshape(B, -1, *x.shape[3:]).contiguous(memory_format=torch.channels_last)
        s0 = s1 = self.stem(stacked).contiguous(memory_format=torch.channels_last)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w_reduce if cell.reduction else w_normal)
        _, KC, Fq, T = s1.shape
        C = KC // K
        if not self.seq_cells:
            return self.classifier(self.dropout(s1.mean(dim=(2, 3)).view(B, K, C).transpose(0, 1)))
        y = self.adapter(s1.view(B, K, C, Fq, T).permute(1, 0, 4, 2, 3).reshape(K, B, T, C * Fq))
        w_seq = F.softmax(self.alpha_seq, dim=-1)
        y0 = y1 = y
        for cell in self.seq_cells:
            y0, y1 = y1, cell(y0, y1, w_seq)
        return self.classifier(self.dropout(y1.mean(dim=2)))

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each copy's mean cross entropy [K] on its batch (x [K, B, ...], y [K, B])."""
        return copy_losses(self(x), y)

    def loss(self, x, y):
        raise TypeError("a stacked network has one loss per copy: use losses(x, y)")


def copy_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-copy mean cross entropy [K] of logits [K, B, classes] against labels [K, B]."""
    K, B, n = logits.shape
    return F.cross_entropy(logits.reshape(K * B, n), y.reshape(-1), reduction="none").view(K, B).mean(dim=1)


__all__ = ["StackedSearchNetwork", "cat_copies", "copy_losses"]
