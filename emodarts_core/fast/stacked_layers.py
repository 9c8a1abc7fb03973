"""Layers that carry K independent copies of one torch layer: the leaves of a stacked search.

A stacked search (docs/PERFORMANCE.md, "Many searches in one step") runs K searches of
one configuration through one network, so that each operator call does the work of K
searches. Every parameter and buffer keeps the name it has in the plain layer
(`emodarts_core.space`) and gains a leading dimension K: copy k's `weight` is
`weight[k]`, so a copy's state dict is `{name: tensor[k]}` and loads into the plain form.

Layouts: a CNN feature map holds the copies side by side in its channels, [B, K*C, H, W]
(copy k's channels are k*C .. k*C + C - 1), so that

- a convolution is one call with its groups multiplied by K (`StackedConv2d`), and
- a BatchNorm over K*C channels is exactly K separate norms, since the statistics are
  per channel and no channel mixes copies (`StackedBatchNorm2d`);

a sequence holds them in a leading dimension, [K, B, T, d], so that linear maps and the
recurrences are batched matrix products over K (`StackedLinear`, `StackedRecurrent`) and
a LayerNorm normalises each copy's rows with that copy's affine (`StackedLayerNorm`).
Nothing here mixes two copies: each output of copy k depends on copy k's inputs and
parameters only, so the gradient of a sum of the K losses is each copy's own gradient.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.fast.conv import depthwise_conv, stride2_depthwise_conv
from emodarts_core.fast.norms import fusable_map, fused_batch_norm


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors]).clone()


class StackedLeaf(nn.Module):
    """A layer whose parameters and buffers are those of `layers` (K plain layers of one
    shape), stacked along a new first dimension under their plain names."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.copies = len(layers)
        first = layers[0]
        for name, param in first._parameters.items():  # absent ones (an affine-free norm's) stay None
            self.register_parameter(name, None if param is None else
                                    nn.Parameter(_stack([getattr(m, name) for m in layers])))
        for name, buf in first._buffers.items():
            self.register_buffer(name, None if buf is None else _stack([getattr(m, name) for m in layers]))


class StackedConv2d(StackedLeaf):
    """K copies of an `nn.Conv2d` (no bias, as every convolution of the space): one
    convolution of the [B, K*C_in, H, W] map with groups multiplied by K.

    The depthwise ones run the fast form's kernels (`fast.conv.depthwise_conv`), with the
    weight gradient's rewritten sums (`fast.conv.depthwise_weight_grad`) on the maps where
    `rewrite_below` says they win on the stacked maps: the 5x5 kernels below 2^20 values
    undilated, at every size dilated; the strided 5x5 ones take their weight gradient as
    sums of stride-1 3x3 ones (`fast.conv.stride2_weight_grad`) (docs/PERFORMANCE.md,
    "Many searches in one step").
    """

    # by (kernel, dilation as run): the map size (values) below which the depthwise weight
    # gradient takes the rewritten sums whatever the single search's thresholds say
    rewrite_below: dict[tuple[int, int], float] = {(5, 1): 2 ** 20, (5, 2): float("inf")}
    # the kernel sizes whose stride-2 undilated depthwise convolutions (a reduction edge's
    # `sep_conv_*`) take `fast.conv.stride2_weight_grad`: the 5x5 (2.3x faster on the study's
    # maps); torch's own 3x3 gradient is already fast
    stride2_rewrite: frozenset[int] = frozenset({5})

    def __init__(self, layers: list[nn.Conv2d]):
        super().__init__(layers)
        conv = layers[0]
        if conv.bias is not None or conv.padding_mode != "zeros":
            raise ValueError("a stacked convolution carries bias-free, zero-padded convolutions only")
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.depthwise = conv.groups == conv.in_channels == conv.out_channels and len(set(conv.kernel_size)) == 1

    def forward(self, x: torch.Tensor, phases: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """`phases` (optional): x's stride-2 subsamples (`fast.conv.stride2_phases`),
        shared by the edges that read x, for a convolution that reads every other pixel."""
        weight = self.weight.reshape(-1, *self.weight.shape[2:])
        if self.depthwise:  # the fast form's depthwise kernels (`fast.conv.depthwise_conv`), K*C channels at once
            s, p, d = self.stride[0], self.padding[0], self.dilation[0]
            if self.stride == (1, 1):
                return depthwise_conv(x, weight, p, d, self._rewrite(x, d))
            if self.stride == self.dilation and p % s == 0:  # reads every s-th pixel: undilated on the subsample
                sub = phases[0] if phases is not None and s == 2 else x[:, :, ::s, ::s]
                return depthwise_conv(sub, weight, p // s, 1, self._rewrite(sub, 1))
            k = self.weight.shape[-1]
            if self.stride == (2, 2) and self.dilation == (1, 1) and p == (k - 1) // 2 and k in self.stride2_rewrite:
                return stride2_depthwise_conv(x, weight)  # its weight gradient as sums of stride-1 ones
        return F.conv2d(x, weight, None, self.stride, self.padding, self.dilation, self.groups * self.copies)

    def _rewrite(self, x: torch.Tensor, dilation: int) -> bool | None:
        """`depthwise_conv`'s `rewrite` for this kernel on `x` (`rewrite_below`)."""
        return True if x.numel() < self.rewrite_below.get((self.weight.shape[-1], dilation), 0) else None

    def on_subsample(self, sub: torch.Tensor) -> torch.Tensor:
        """A 1x1 unpadded convolution of stride s applied to the subsample it reads
        (x[:, :, ::s, ::s] for x): the same products, as a stride-1 convolution."""
        if self.weight.shape[-2:] != (1, 1) or self.padding != (0, 0):
            raise ValueError("only a 1x1 unpadded convolution reads just its subsample")
        return F.conv2d(sub, self.weight.reshape(-1, *self.weight.shape[2:]), None, 1, 0, 1, self.groups * self.copies)


class StackedBatchNorm2d(StackedLeaf):
    """K copies of an `nn.BatchNorm2d` over C channels: one batch norm over K*C channels,
    whose running statistics are views of the stacked [K, C] buffers."""

    def __init__(self, layers: list[nn.BatchNorm2d]):
        super().__init__(layers)
        bn = layers[0]
        if not bn.track_running_stats:
            raise ValueError("a stacked batch norm carries norms that track running statistics")
        self.eps, self.momentum = bn.eps, bn.momentum

    def _momentum(self) -> float:
        """The running statistics' momentum, counting a training batch."""
        if self.training:
            self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative average: each copy has counted the same batches
            return 1.0 / float(self.num_batches_tracked[0])
        return self.momentum

    def _fused(self, acc: torch.Tensor | None, z: torch.Tensor) -> bool:
        """Whether this norm of `z` runs as the fast form's fused node (`fast.norms`): in
        training, affine-free, on a map that node is faster for."""
        return self.training and self.weight is None and fusable_map(z) and (acc is None or acc.shape == z.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused(None, x):
            return fused_batch_norm(None, x, x.new_ones(()), self.running_mean.view(-1), self.running_var.view(-1),
                                    self._momentum(), self.eps)
        momentum = self._momentum()
        weight = None if self.weight is None else self.weight.reshape(-1)
        bias = None if self.bias is None else self.bias.reshape(-1)
        return F.batch_norm(x, self.running_mean.view(-1), self.running_var.view(-1), weight, bias,
                            self.training, momentum, self.eps)

    def weighted(self, acc: torch.Tensor | None, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """`acc + w_k * norm_k(z)` copy by copy (`w` [K]: each copy's op weight): one fused
        node (`fast.norms.fused_batch_norm`) where `_fused`, else the plain expression."""
        if self._fused(acc, z):
            return fused_batch_norm(acc, z, w, self.running_mean.view(-1), self.running_var.view(-1),
                                    self._momentum(), self.eps)
        return weighted_add(acc, self(z), per_channel(w, z.shape[1]))


def weighted_add(acc: torch.Tensor | None, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """acc + x * w (x * w where acc is None): one `addcmul`, one pass and one autograd node,
    not a product and a sum; a mixed op's running sum of weighted candidates."""
    return x * w if acc is None else torch.addcmul(acc, x, w)


def per_channel(w: torch.Tensor, channels: int) -> torch.Tensor:
    """Per-copy weights [K] as a [1, K*C, 1, 1] scale of a stacked map's channels (copy k's
    weight on channels k*C .. k*C + C - 1): a product with it keeps the map's layout."""
    return w.repeat_interleave(channels // w.numel()).view(1, channels, 1, 1)


def _per_copy(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """[K, n] seen as [K, 1, ..., 1, n] against an input of `ndim` dimensions."""
    return t.reshape(t.shape[0], *([1] * (ndim - 2)), t.shape[-1])


class StackedLinear(StackedLeaf):
    """K copies of an `nn.Linear` on [K, ..., in]: one batched matrix product."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K = self.copies
        flat = x.reshape(K, -1, x.shape[-1])
        w = self.weight.transpose(1, 2)
        out = torch.bmm(flat, w) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), flat, w)
        return out.reshape(*x.shape[:-1], out.shape[-1])


class StackedLayerNorm(StackedLeaf):
    """K copies of an `nn.LayerNorm` over the last dimension of [K, ..., d]."""

    def __init__(self, layers: list[nn.LayerNorm]):
        super().__init__(layers)
        self.normalized_shape, self.eps = layers[0].normalized_shape, layers[0].eps
        if len(self.normalized_shape) != 1:
            raise ValueError("a stacked layer norm normalises the last dimension only")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x, self.normalized_shape, None, None, self.eps)
        if self.weight is not None:
            y = y * _per_copy(self.weight, x.dim()) + _per_copy(self.bias, x.dim())
        return y


class StackedRecurrent(StackedLeaf):
    """K copies of a batch-first `nn.LSTM` or tanh `nn.RNN` (any number of layers, one or
    two directions, dropout between layers) on [K, B, T, d].

    Returns (output [K, B, T, directions*H], final states), the final states as torch
    gives them with the copies first: h_n [K, layers*directions, B, H] for an RNN,
    (h_n, c_n) for an LSTM. Each time step is one batched matrix product over the K
    copies; the input projections of all steps are one product before the loop. The
    gates follow torch's order (input, forget, cell, output). The dropout between
    layers draws one mask over all copies, so each copy has masks of its own.
    """

    def __init__(self, layers: list[nn.RNNBase]):
        super().__init__(layers)
        rnn = layers[0]
        if not rnn.batch_first or rnn.proj_size or not rnn.bias:
            raise ValueError("a stacked recurrence carries batch-first recurrent nets with biases and no projection")
        if rnn.mode not in ("LSTM", "RNN_TANH"):
            raise ValueError(f"a stacked recurrence carries LSTMs and tanh RNNs, not {rnn.mode}")
        self.lstm = rnn.mode == "LSTM"
        self.num_layers, self.hidden_size, self.dropout = rnn.num_layers, rnn.hidden_size, rnn.dropout
        self.directions = 2 if rnn.bidirectional else 1

    def _direction(self, proj: torch.Tensor, w_hh: torch.Tensor, reverse: bool):
        K, B, T, _ = proj.shape
        h = proj.new_zeros(K, B, self.hidden_size)
        c = proj.new_zeros(K, B, self.hidden_size) if self.lstm else None
        w = w_hh.transpose(1, 2)
        outputs = []
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            gates = torch.baddbmm(proj[:, :, t], h, w)
            if self.lstm:
                i, f, g, o = gates.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            else:
                h = torch.tanh(gates)
            outputs.append(h)
        if reverse:
            outputs.reverse()
        return torch.stack(outputs, dim=2), h, c

    def forward(self, x: torch.Tensor):
        K, B, T, _ = x.shape
        finals_h, finals_c = [], []
        inp = x
        for layer in range(self.num_layers):
            if layer and self.dropout and self.training:
                inp = F.dropout(inp, self.dropout, True)
            outs = []
            for direction in range(self.directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                w_ih, w_hh = getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix)
                bias = (getattr(self, "bias_ih" + suffix) + getattr(self, "bias_hh" + suffix)).unsqueeze(1)
                proj = torch.baddbmm(bias, inp.reshape(K, B * T, -1), w_ih.transpose(1, 2)).view(K, B, T, -1)
                out, h, c = self._direction(proj, w_hh, reverse=bool(direction))
                outs.append(out)
                finals_h.append(h)
                finals_c.append(c)
            inp = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        h_n = torch.stack(finals_h, dim=1)
        return inp, ((h_n, torch.stack(finals_c, dim=1)) if self.lstm else h_n)


#: The torch layer types that carry parameters or buffers, and their stacked form.
STACKED_LEAVES = {nn.Conv2d: StackedConv2d, nn.BatchNorm2d: StackedBatchNorm2d, nn.Linear: StackedLinear,
                  nn.LayerNorm: StackedLayerNorm, nn.LSTM: StackedRecurrent, nn.RNN: StackedRecurrent}


def stacked_leaf(layers: list[nn.Module]) -> nn.Module:
    """The stacked form of K plain layers of one type and shape."""
    kind = type(layers[0])
    if kind not in STACKED_LEAVES:
        raise TypeError(f"no stacked form of {kind.__name__}")
    return STACKED_LEAVES[kind](layers)


__all__ = ["STACKED_LEAVES", "StackedBatchNorm2d", "StackedConv2d", "StackedLayerNorm", "StackedLeaf",
           "StackedLinear", "StackedRecurrent", "per_channel", "stacked_leaf", "weighted_add"]
