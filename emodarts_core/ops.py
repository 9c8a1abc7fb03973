"""Candidate operations of the emoDARTS search space, under the paper's names.

CNN ops work on feature maps [B, C, F, T] and keep the spatial shape (stride 1) or halve
it (stride 2, reduction edges, even sizes).  SeqNN ops work on sequences [B, T, d] and
keep that shape; they only mix information along the time axis of one utterance, never
across the samples of a batch (the reference code's defect 1).

Ops that begin with a ReLU (separable / dilated / factorised convolutions and the
stride-2 skip, `FactorizedReduce`) take `relu=False` to drop that leading ReLU: the search
cell then computes ReLU once per state and feeds it to every such op (issue 7).  The
flag lives in `forward`, not in the module tree, so an op built either way has the same
parameters and state-dict keys.  Derived networks use the ordinary ops (`relu=True`).

Factories: `CNN_OPS[name](C, stride, affine, relu=True)` and `SEQ_OPS[name](d)`.
`cnn_op_has_leading_relu(name, stride)` says which CNN ops `relu=False` affects.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.search_space import CNN_PRIMITIVES, SEQ_PRIMITIVES


class _SingleThreadBackwardBatchNorm(torch.autograd.Function):
    """Training-mode batch norm whose backward runs torch's own kernel on one thread.

    Forward and backward are `torch.native_batch_norm` and its backward, so values and
    gradients are torch's (and double backward, through the backward's own derivative,
    stays exact). Only the thread count of the backward differs: see `BatchNorm2d`.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps):
        out, mean, invstd = torch.native_batch_norm(x, weight, bias, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, mean, invstd = ctx.saved_tensors
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            grads = torch.ops.aten.native_batch_norm_backward(
                grad_out, x, weight, None, None, mean, invstd, True, ctx.eps,
                [ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[1],
                 weight is not None and ctx.needs_input_grad[2]])
        finally:
            torch.set_num_threads(threads)
        return (*grads, None, None, None, None)


class BatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d (same parameters, buffers and results), faster on multi-threaded CPUs.

    torch's CPU backward of batch norm on channels-last maps whose channel count is not a
    multiple of 16 gets slower with more threads: 25 ms on 2 threads against 7 ms on one
    for the paper's first cell ([16, 8, 128, 128], torch 2.13), and that first cell holds
    most of the search's BatchNorms. In exactly that case the backward runs on one thread.
    """

    def forward(self, x):
        if not (self.training and self.track_running_stats and x.device.type == "cpu"
                and x.shape[1] % 16 and torch.get_num_threads() > 1 and torch.is_grad_enabled()
                and x.is_contiguous(memory_format=torch.channels_last)):
            return super().forward(x)
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return _SingleThreadBackwardBatchNorm.apply(x, self.weight, self.bias, self.running_mean, self.running_var,
                                                    momentum, self.eps)


class ReLUConvBN(nn.Module):
    """(ReLU) -> Conv2d -> BatchNorm: DARTS' 1x1 cell-input preprocessing."""

    def __init__(self, C_in: int, C_out: int, kernel_size, stride, padding, affine: bool = True,
                 relu: bool = True):
        super().__init__()
        self.relu = relu
        self.conv = nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        return self.bn(self.conv(F.relu(x) if self.relu else x))


class FactorizedReduce(nn.Module):
    """(ReLU) -> two offset 1x1 stride-2 convolutions concatenated -> BN: halves F and T."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True, relu: bool = True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {C_out}")
        self.relu = relu
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        if self.relu:
            x = F.relu(x)
        # A 1x1 stride-2 convolution is a 1x1 convolution of the stride-2 subsample: computed
        # that way because torch's CPU backward of the strided 1x1 convolution on a
        # channels-last input corrupts the heap (torch 2.13: "double free or corruption",
        # segfaults) and does the same products anyway.  conv_1/conv_2 keep stride 2 so
        # the modules and state dicts are unchanged.
        return self.bn(torch.cat([F.conv2d(x[:, :, ::2, ::2], self.conv_1.weight),
                                  F.conv2d(x[:, :, 1::2, 1::2], self.conv_2.weight)], dim=1))


class SepConv(nn.Module):
    """Two (ReLU, depthwise kxk, pointwise 1x1, BN) blocks; the first carries the stride."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True, relu: bool = True):
        super().__init__()
        self.relu = relu
        self.block_1 = nn.Sequential(
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, bias=False),
            BatchNorm2d(C_in, affine=affine),
        )
        self.block_2 = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(C_in, C_in, kernel_size, 1, padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.block_2(self.block_1(F.relu(x) if self.relu else x))


class DilConv(nn.Module):
    """ReLU -> depthwise kxk with dilation -> pointwise 1x1 -> BN.

    With stride equal to the dilation (the reduction edges: both 2) the depthwise
    convolution only ever reads every stride-th row and column, so it is computed as the
    undilated kxk convolution of that subsample, with the padding divided by the stride:
    the same products, several times faster than torch's strided dilated kernel on CPU.
    """

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, affine: bool = True, relu: bool = True):
        super().__init__()
        self.relu = relu
        self.subsample = stride > 1 and stride == dilation and padding % stride == 0
        self.op = nn.Sequential(
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, dilation=dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        if self.relu:
            x = F.relu(x)
        if not self.subsample:
            return self.op(x)
        depthwise, pointwise, bn = self.op
        s = depthwise.stride[0]
        x = F.conv2d(x[:, :, ::s, ::s], depthwise.weight, padding=depthwise.padding[0] // s, groups=depthwise.groups)
        return bn(pointwise(x))


class Conv7x1_1x7(nn.Module):
    """ReLU -> conv 1x7 -> conv 7x1 -> BN: DARTS' factorised 7x7 (in the paper, absent from
    the reference code's primitive list: defect 3)."""

    def __init__(self, C: int, stride: int, affine: bool = True, relu: bool = True):
        super().__init__()
        self.relu = relu
        self.op = nn.Sequential(
            nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            BatchNorm2d(C, affine=affine),
        )

    def forward(self, x):
        return self.op(F.relu(x) if self.relu else x)


class Zero(nn.Module):
    """The `none` op: zeros of the output shape (the search cells never run it)."""

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class AvgPool3x3(nn.AvgPool2d):
    """3x3 average pooling, padding 1, padded positions not counted (DARTS' avg_pool_3x3).

    On CPU it is computed as a depthwise convolution with a kernel of ones divided by the
    number of positions each window covers (9 inside, 6 on a border, 4 in a corner): the
    same sums, but torch's CPU convolution is about twice as fast as its average pooling
    for these small channel counts, forward and backward.  Elsewhere: plain AvgPool2d.
    """

    def __init__(self, stride: int):
        super().__init__(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x):
        if x.device.type != "cpu":
            return super().forward(x)
        C = x.shape[1]
        sums = F.conv2d(x, x.new_ones(C, 1, 3, 3), stride=self.stride, padding=1, groups=C)
        counts = F.conv2d(x.new_ones(1, 1, *x.shape[2:]), x.new_ones(1, 1, 3, 3), stride=self.stride, padding=1)
        return sums / counts


def _pool(kind: str, stride: int) -> nn.Module:
    if kind == "max":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    return AvgPool3x3(stride)


def _skip(C: int, stride: int, affine: bool, relu: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(C, C, affine, relu)


CNN_OPS = {
    "none": lambda C, stride, affine, relu=True: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine, relu=True: _pool("max", stride),
    "avg_pool_3x3": lambda C, stride, affine, relu=True: _pool("avg", stride),
    "skip_connect": lambda C, stride, affine, relu=True: _skip(C, stride, affine, relu),
    "sep_conv_3x3": lambda C, stride, affine, relu=True: SepConv(C, C, 3, stride, 1, affine, relu),
    "sep_conv_5x5": lambda C, stride, affine, relu=True: SepConv(C, C, 5, stride, 2, affine, relu),
    "dil_conv_3x3": lambda C, stride, affine, relu=True: DilConv(C, C, 3, stride, 2, 2, affine, relu),
    "dil_conv_5x5": lambda C, stride, affine, relu=True: DilConv(C, C, 5, stride, 4, 2, affine, relu),
    "conv_7x1_1x7": lambda C, stride, affine, relu=True: Conv7x1_1x7(C, stride, affine, relu),
}

_RELU_LED = {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "conv_7x1_1x7"}


def cnn_op_has_leading_relu(name: str, stride: int) -> bool:
    """Whether CNN op `name` at `stride` starts with a ReLU (so `relu=False` drops it)."""
    return name in _RELU_LED or (name == "skip_connect" and stride != 1)


class Recurrent(nn.Module):
    """A j-layer LSTM or tanh RNN over the time steps of each utterance: [B, T, d] -> [B, T, d]."""

    def __init__(self, kind: str, d: int, layers: int):
        super().__init__()
        cls = {"lstm": nn.LSTM, "rnn": nn.RNN}[kind]
        self.rnn = cls(d, d, num_layers=layers, batch_first=True)

    def forward(self, x):
        return self.rnn(x)[0]


class RecurrentAttention(nn.Module):
    """A recurrent net followed by residual scaled dot-product self-attention over time.

    Queries, keys and values are the recurrent outputs h of one utterance, so
    out = h + softmax(h h^T / sqrt(d)) h attends across its T steps only (never across the
    batch: defect 1).  The attention itself has no parameters; the recurrent net learns
    the representation it attends with.
    """

    def __init__(self, kind: str, d: int, layers: int):
        super().__init__()
        self.recurrent = Recurrent(kind, d, layers)

    def forward(self, x):
        h = self.recurrent(x)
        return h + F.scaled_dot_product_attention(h, h, h)


class SeqZero(nn.Module):
    """The SeqNN `none` op: zeros of the input shape."""

    def forward(self, x):
        return x.mul(0.0)


def _seq_factory(name: str):
    if name == "none":
        return lambda d: SeqZero()
    if name == "skip_connect":
        return lambda d: nn.Identity()
    kind, *rest = name.split("_")
    layers = int(rest[-1])
    if rest[0] == "att":
        return lambda d: RecurrentAttention(kind, d, layers)
    return lambda d: Recurrent(kind, d, layers)


SEQ_OPS = {name: _seq_factory(name) for name in SEQ_PRIMITIVES}

assert set(CNN_OPS) == set(CNN_PRIMITIVES), "CNN_OPS must cover exactly CNN_PRIMITIVES"


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """DARTS drop-path: zero whole samples of an edge's output with probability `drop_prob`
    and rescale the rest.  The mask is made on `x`'s device (no CUDA-only tensor types:
    defect 5).  Callers apply it only in training mode."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask


__all__ = ["CNN_OPS", "SEQ_OPS", "cnn_op_has_leading_relu", "drop_path", "BatchNorm2d", "ReLUConvBN",
           "FactorizedReduce", "SepConv", "DilConv", "AvgPool3x3", "Conv7x1_1x7", "Zero", "Recurrent",
           "RecurrentAttention", "SeqZero"]
