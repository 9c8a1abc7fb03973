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

Factories: `CNN_OPS[name](C, stride, affine, relu=True)` and `SEQ_OPS[name](d, attention="paper")`
(`attention`: the form of the `*_att_*` ops, `SEQ_ATTENTION_FORMS`).
`cnn_op_has_leading_relu(name, stride)` says which CNN ops `relu=False` affects.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.space.search_space import CNN_PRIMITIVES, SEQ_PRIMITIVES


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
    most of the search's BatchNorms. The search's affine-free norms run as the fused
    `_WeightedBatchNorm` with weight 1 (faster still); the others, in exactly that case,
    run their backward on one thread.
    """

    def forward(self, x):
        if _fusable(self, x):
            return _WeightedBatchNorm.apply(None, x, x.new_ones(()), self.running_mean, self.running_var,
                                            _momentum_of(self), self.eps)
        if not (self.training and self.track_running_stats and x.device.type == "cpu"
                and x.shape[1] % 16 and torch.get_num_threads() > 1 and torch.is_grad_enabled()
                and x.is_contiguous(memory_format=torch.channels_last)):
            return super().forward(x)
        momentum = _momentum_of(self)
        return _SingleThreadBackwardBatchNorm.apply(x, self.weight, self.bias, self.running_mean, self.running_var,
                                                    momentum, self.eps)


def _momentum_of(bn: nn.BatchNorm2d) -> float:
    """Count one training batch in `bn` and return the running-stat momentum nn.BatchNorm2d would use."""
    bn.num_batches_tracked.add_(1)
    return 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum


class _WeightedBatchNorm(torch.autograd.Function):
    """acc + w * batch_norm(z): a training-mode, affine-free batch norm scaled by a scalar
    op weight and added to a running sum, in one node of the graph.

    The backward works on the channels-last map viewed as a [pixels, C] matrix (folded to
    at least 16 values per row when C is small: `_Folded`): per-channel
    sums of g and g*z give the scalar's gradient and the input gradient g*a + z*b + d in
    two passes.  The separate graph (batch norm, then mul, then add) saved one more full
    tensor per op and ran about three times longer on CPU for the search's small channel
    counts. Statistics and running-stat updates are torch's own (`native_batch_norm`),
    except below `_FEW_CHANNELS` channels (PC-DARTS' channel samples), where torch's
    channels-last kernel is slowest (2.6 ms for [16, 2, 128, 128], against 1.0 ms for
    per-channel sums of z and z*z and one scale-and-shift pass). Under `create_graph`
    (double backward) the gradients are those of the same expression written with
    differentiable torch ops.
    """

    @staticmethod
    def forward(ctx, acc, z, w, running_mean, running_var, momentum, eps):
        if z.shape[1] >= _FEW_CHANNELS:
            xhat, mean, invstd = torch.native_batch_norm(z, None, None, running_mean, running_var, True,
                                                         momentum, eps)
            out = xhat.mul_(w) if acc is None else torch.addcmul(acc, xhat, w)
        else:
            Z = _Folded(z)
            count = Z.pixels
            mean = Z.channel_sums(Z.m.sum(0)) / count
            var = (Z.channel_sums((Z.m.T @ Z.m).diagonal()) / count - mean * mean).clamp_(min=0.0)
            invstd = torch.rsqrt(var + eps)
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var, alpha=momentum * count / max(count - 1, 1))
            channel_scale = w * invstd
            scale, shift = Z.per_column(channel_scale), Z.per_column(-mean * channel_scale)
            if acc is None:
                out = torch.addcmul(shift, Z.m, scale)
            else:
                out = torch.addcmul(Z.like(acc.contiguous(memory_format=torch.channels_last)), Z.m, scale).add_(shift)
            out = _map_like(out, z)
        ctx.save_for_backward(z, w, mean, invstd)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx, grad):
        z, w, mean, invstd = ctx.saved_tensors
        need_acc, need_z, need_w = ctx.needs_input_grad[:3]
        grad_acc = grad if need_acc else None
        if torch.is_grad_enabled():  # double backward: differentiate the plain expression
            var, mean = torch.var_mean(z, dim=(0, 2, 3), correction=0, keepdim=True)
            plain = w * (z - mean) * torch.rsqrt(var + ctx.eps)
            return (grad_acc, *_graph_grads(plain, grad, (z, need_z), (w, need_w)), None, None, None, None)
        Z = _Folded(z)
        G = Z.like(grad.contiguous(memory_format=torch.channels_last))
        count = Z.pixels
        sum_g = Z.channel_sums(G.sum(0))
        sum_g_z = Z.channel_sums((G.T @ Z.m).diagonal())
        sum_g_xhat = (sum_g_z - mean * sum_g) * invstd  # sum of g * (z - mean) * invstd
        grad_z = grad_w = None
        if need_w:
            grad_w = sum_g_xhat.sum().to(w.dtype).reshape(w.shape)
        if need_z:
            a = w * invstd
            b = -a * invstd * sum_g_xhat / count
            d = -a * sum_g / count - b * mean
            grad_z = _map_like(torch.addcmul(Z.per_column(d), G, Z.per_column(a)).addcmul_(Z.m, Z.per_column(b)), z)
        return grad_acc, grad_z, grad_w, None, None, None, None


_FEW_CHANNELS = 8


def _pixels_by_channels(x: torch.Tensor) -> torch.Tensor:
    """A channels-last [N, C, H, W] map as the [N*H*W, C] matrix it is in memory (a view)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _map_like(matrix: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of `_pixels_by_channels` (or of `_Folded.like`): a matrix holding a
    channels-last map's values in memory order, as that map shaped like `like`."""
    N, C, H, W = like.shape
    return matrix.view(N, H, W, C).permute(0, 3, 1, 2)


class _Folded:
    """A channels-last map with few channels as a [pixels / f, f * C] matrix `m` (a view):
    f consecutive pixels per row, so that each row has at least 16 values.

    Column sums and per-channel scale-and-shift passes over a [pixels, 2] matrix run
    several times slower than over the same memory read 16 values per row (CPU kernels
    vectorise along the row).  `channel_sums` adds up the f pixels of each channel,
    `per_column` repeats a per-channel vector across a row, `like` folds a map of the same
    shape the same way.  With 16 or more channels f = 1.
    """

    def __init__(self, x: torch.Tensor):
        self.channels = x.shape[1]
        self.pixels = x.numel() // self.channels
        self.f = 1
        while self.f * self.channels < 16 and self.pixels % (2 * self.f) == 0:
            self.f *= 2
        self.m = self.like(x)

    def like(self, x: torch.Tensor) -> torch.Tensor:
        return _pixels_by_channels(x).view(self.pixels // self.f, self.f * self.channels)

    def channel_sums(self, columns: torch.Tensor) -> torch.Tensor:
        return columns.view(self.f, self.channels).sum(0)

    def per_column(self, per_channel: torch.Tensor) -> torch.Tensor:
        return per_channel.repeat(self.f)


def _graph_grads(out: torch.Tensor, grad: torch.Tensor, *inputs: tuple[torch.Tensor, bool]) -> list:
    """Double backward of a custom Function: the gradients of `out` (the same value written
    with differentiable ops) for each (tensor, needed) pair, None where not needed, kept in
    the graph (`create_graph`) so that they can be differentiated again."""
    wanted = [t for t, need in inputs if need]
    grads = iter(torch.autograd.grad(out, wanted, grad, create_graph=True) if wanted else ())
    return [next(grads) if need else None for _, need in inputs]


def _fusable(bn: nn.BatchNorm2d, z: torch.Tensor) -> bool:
    """Whether `bn(z)` can run as `_WeightedBatchNorm`: training-mode statistics, no affine
    parameters, a channels-last float map on CPU (where torch's kernels are slow for it)."""
    return (bn.training and bn.track_running_stats and not bn.affine and z.dim() == 4 and z.device.type == "cpu"
            and z.dtype in (torch.float32, torch.float64) and z.is_contiguous(memory_format=torch.channels_last))


def weighted_batch_norm(acc: torch.Tensor | None, z: torch.Tensor, w: torch.Tensor,
                        bn: nn.BatchNorm2d) -> torch.Tensor:
    """`acc + w * bn(z)` (`w * bn(z)` when `acc` is None) for a scalar tensor `w`.

    In the search's case (`_fusable`: an affine-free BatchNorm in training mode, a
    channels-last float map on CPU) it is one fused autograd node (`_WeightedBatchNorm`);
    otherwise the plain expression.
    """
    if not (_fusable(bn, z) and (acc is None or acc.shape == z.shape)):
        term = w * bn(z)
        return term if acc is None else acc + term
    return _WeightedBatchNorm.apply(acc, z, w, bn.running_mean, bn.running_var, _momentum_of(bn), bn.eps)


class _Stride2Phases(torch.autograd.Function):
    """x's even and odd stride-2 subsamples, copied in x's layout; see `stride2_phases`."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape, ctx.layout = x.shape, layout_of(x)
        return tuple(x[:, :, o::2, o::2].clone(memory_format=ctx.layout) for o in (0, 1))  # always a copy

    @staticmethod
    def backward(ctx, grad_even, grad_odd):
        grad = torch.empty(ctx.shape, dtype=grad_even.dtype, device=grad_even.device, memory_format=ctx.layout)
        grad.zero_()
        grad[:, :, ::2, ::2] = grad_even
        grad[:, :, 1::2, 1::2] = grad_odd
        return grad


def stride2_phases(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies of x's even and odd rows and columns, x[:, :, ::2, ::2] and x[:, :, 1::2, 1::2],
    in x's layout, made once for several readers.

    The gradient is written into one zero map in x's layout.  Slicing would zero-fill a
    full-size map per slice in the default layout, so a channels-last map would receive a
    gradient in the other layout, and the elementwise backward ops after it (ReLU, sums)
    run several times slower on mixed layouts."""
    return _Stride2Phases.apply(x)


def layout_of(x: torch.Tensor) -> torch.memory_format:
    """The memory format to give copies of `x` so they keep its layout (channels-last or not)."""
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


class EndsInBatchNorm(nn.Module):
    """An op whose last step is a BatchNorm: `forward(x) = final_norm(pre_norm(x))`.

    The search's mixed op takes the two apart to fuse the norm with its op weight and sum
    (`weighted_batch_norm`). It may also pass `phases`, the two stride-2 subsamples of the
    op's input as the op reads it, after its own leading ReLU if it has one
    (`stride2_phases`), computed once per cell state and shared by all its
    reduction edges; ops that read a subsample take it from there instead of slicing again
    (each slice costs a zero-filled full-size gradient in backward)."""

    final_norm: nn.BatchNorm2d

    def pre_norm(self, x: torch.Tensor, phases=None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x):
        return self.final_norm(self.pre_norm(x))


class PoolBN(EndsInBatchNorm, nn.Sequential):
    """A pooling op followed by an affine-free BatchNorm, as DARTS searches its pools."""

    def __init__(self, pool: nn.Module, C: int):
        super().__init__(pool, BatchNorm2d(C, affine=False))

    @property
    def final_norm(self):
        return self[1]

    def pre_norm(self, x, phases=None):
        return self[0](x)


class _FlippedKernelDepthwiseConv(torch.autograd.Function):
    """Stride-1, same-padded depthwise convolution whose input gradient is computed as the
    forward convolution of the output gradient with the kernel flipped in both axes.

    That is the same sum (the transposed convolution of a stride-1 same-padded one), but
    torch's CPU forward kernel is much faster than its input-gradient kernel on the search's
    channels-last maps: [16, 8, 128, 128], 5x5 dilated: 1.4 against 5.6 ms. The weight
    gradient is torch's own. Under `create_graph` the gradients are autograd's of conv2d.
    """

    @staticmethod
    def forward(ctx, x, weight, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation = padding, dilation
        return F.conv2d(x, weight, padding=padding, dilation=dilation, groups=weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        pad, dil, groups = ctx.padding, ctx.dilation, weight.shape[0]
        need_x, need_w = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():  # double backward
            plain = F.conv2d(x, weight, padding=pad, dilation=dil, groups=groups)
            return (*_graph_grads(plain, grad, (x, need_x), (weight, need_w)), None, None)
        grad_x = grad_w = None
        if need_x:
            grad_x = F.conv2d(grad, weight.flip(-1, -2), padding=pad, dilation=dil, groups=groups)
        if need_w:
            grad_w = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [pad, pad], [dil, dil], False, [0, 0], groups,
                [False, True, False])[1]
        return grad_x, grad_w, None, None


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, padding: int, dilation: int = 1) -> torch.Tensor:
    """Stride-1 depthwise convolution (`groups` = channels) with square odd kernel `weight`
    and "same" `padding` = dilation * (k - 1) / 2; on CPU with the flipped-kernel backward."""
    k = weight.shape[-1]
    if (x.device.type == "cpu" and weight.shape[-2] == k and padding == dilation * (k - 1) // 2
            and not torch.is_autocast_enabled("cpu")):
        return _FlippedKernelDepthwiseConv.apply(x, weight, padding, dilation)
    return F.conv2d(x, weight, padding=padding, dilation=dilation, groups=weight.shape[0])


class DepthwiseConv2d(nn.Conv2d):
    """nn.Conv2d with groups = channels (same parameters); stride 1 runs `depthwise_conv`."""

    def __init__(self, C: int, kernel_size: int, stride: int, padding: int, dilation: int = 1):
        super().__init__(C, C, kernel_size, stride, padding, dilation=dilation, groups=C, bias=False)

    def forward(self, x):
        if self.stride != (1, 1):
            return super().forward(x)
        return depthwise_conv(x, self.weight, self.padding[0], self.dilation[0])


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


class FactorizedReduce(EndsInBatchNorm):
    """(ReLU) -> two offset 1x1 stride-2 convolutions concatenated -> BN: halves F and T."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True, relu: bool = True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {C_out}")
        self.relu = relu
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = BatchNorm2d(C_out, affine=affine)

    @property
    def final_norm(self):
        return self.bn

    def pre_norm(self, x, phases=None):
        # A 1x1 stride-2 convolution is a 1x1 convolution of the stride-2 subsample: computed
        # that way because torch's CPU backward of the strided 1x1 convolution on a
        # channels-last input corrupts the heap (torch 2.13: "double free or corruption",
        # segfaults) and does the same products anyway.  conv_1/conv_2 keep stride 2 so
        # the modules and state dicts are unchanged.
        even, odd = phases or stride2_phases(F.relu(x) if self.relu else x)
        return torch.cat([F.conv2d(even, self.conv_1.weight), F.conv2d(odd, self.conv_2.weight)], dim=1)


class SepConv(EndsInBatchNorm):
    """Two (ReLU, depthwise kxk, pointwise 1x1, BN) blocks; the first carries the stride."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True, relu: bool = True):
        super().__init__()
        self.relu = relu
        self.block_1 = nn.Sequential(
            DepthwiseConv2d(C_in, kernel_size, stride, padding),
            nn.Conv2d(C_in, C_in, 1, bias=False),
            BatchNorm2d(C_in, affine=affine),
        )
        self.block_2 = nn.Sequential(
            nn.ReLU(),
            DepthwiseConv2d(C_in, kernel_size, 1, padding),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            BatchNorm2d(C_out, affine=affine),
        )

    @property
    def final_norm(self):
        return self.block_2[3]

    def pre_norm(self, x, phases=None):
        relu, depthwise, pointwise, _ = self.block_2
        return pointwise(depthwise(relu(self.block_1(F.relu(x) if self.relu else x))))


class DilConv(EndsInBatchNorm):
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
            DepthwiseConv2d(C_in, kernel_size, stride, padding, dilation),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            BatchNorm2d(C_out, affine=affine),
        )

    @property
    def final_norm(self):
        return self.op[2]

    def pre_norm(self, x, phases=None):
        depthwise, pointwise, _ = self.op
        if self.relu:
            x = F.relu(x)
        if self.subsample:
            s = depthwise.stride[0]
            sub = phases[0] if phases is not None and s == 2 else x[:, :, ::s, ::s]
            x = depthwise_conv(sub, depthwise.weight, depthwise.padding[0] // s)
        else:
            x = depthwise(x)
        return pointwise(x)


class Conv7x1_1x7(EndsInBatchNorm):
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

    @property
    def final_norm(self):
        return self.op[2]

    def pre_norm(self, x, phases=None):
        return self.op[1](self.op[0](F.relu(x) if self.relu else x))


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
    """A j-layer LSTM or tanh RNN over the time steps of each utterance: [B, T, d] -> [B, T, d].

    `core` is the recurrent module and `head` what follows it (nothing here), so that a
    mixed op can run the cores of several candidates together (`recurrence`)."""

    def __init__(self, kind: str, d: int, layers: int):
        super().__init__()
        cls = {"lstm": nn.LSTM, "rnn": nn.RNN}[kind]
        self.rnn = cls(d, d, num_layers=layers, batch_first=True)

    @property
    def core(self) -> nn.RNNBase:
        return self.rnn

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def forward(self, x):
        return self.rnn(x)[0]


class RecurrentAttention(nn.Module):
    """The paper's attention op (`lstm_att_j`, `rnn_att_j`): a bidirectional recurrent net
    whose outputs are reweighted by attention over the time steps of one utterance.

    With o_t the outputs of a j-layer bidirectional LSTM / tanh RNN (hidden size d, dropout
    0.3 between layers when j > 1) and s the last layer's final states, forward and
    backward (h, and for an LSTM also c):

        o_t   = [h_fwd_t ; h_bwd_t]                    in R^{2d}   ([B, T, 2d])
        s     = [h_fwd_T ; h_bwd_1 (; c_fwd_T ; c_bwd_1)]  in R^{2d} (RNN) or R^{4d} (LSTM)
        e_t   = tanh(W_a [o_t ; s] + b_a)                in R^{2d}   (`attn`)
        w_t   = softmax over t = 1..T of e_t, per channel  (sum_t w_t = 1)
        a_t   = w_t * o_t                                 (elementwise)
        y_t   = W_y (W_c [o_t ; a_t] + b_c) + b_y          in R^d    (`combine`, `out`)

    What follows the reference code (DESIGN.md, "The attention ops as the reference code
    builds them"): the bidirectional recurrent net and its dropout, a linear layer scoring
    the outputs with the final state(s) into 2d scores per step, attention weights that
    multiply the outputs elementwise, the concatenation combined by a linear layer 4d -> 2d
    and projected back to d by another, so the op carries its own parameters (paper
    Table 7: LSTM-Att. only models have about 2.5x the parameters of LSTM only).

    Where it differs: the reference reads a [batch, features] matrix as one unbatched
    sequence, so its "time" axis is the batch, it views all layers' final states as
    [batch, -1] (which only fits at batch size 16) and takes its softmax over the feature
    axis (DESIGN.md, defect 1). Here the sequence is the utterance ([B, T, d] -> [B, T, d]),
    s is the last layer's final states of that utterance, and the softmax runs over its T
    time steps, so no sample ever reads another. With the softmax over time a purely linear
    score would lose the final state: W_a s is the same at every t and cancels. The tanh
    (additive attention, Bahdanau et al. 2015) makes the state shape how each step is
    scored, with the reference's parameter count unchanged.

    It exposes no `core`: its head needs the final states, not only the outputs, and a
    bidirectional net is not stacked by `recurrence.stacked_tanh_rnn` anyway.
    """

    def __init__(self, kind: str, d: int, layers: int):
        super().__init__()
        cls = {"lstm": nn.LSTM, "rnn": nn.RNN}[kind]
        self.kind = kind
        self.rnn = cls(d, d, num_layers=layers, batch_first=True, bidirectional=True,
                       dropout=0.3 if layers > 1 else 0.0)
        state = 4 * d if kind == "lstm" else 2 * d
        self.attn = nn.Linear(2 * d + state, 2 * d)
        self.combine = nn.Linear(4 * d, 2 * d)
        self.out = nn.Linear(2 * d, d)

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(o, w): the recurrent outputs [B, T, 2d] and the attention weights [B, T, 2d]
        (each sums to 1 over T, per sample and channel)."""
        o, state = self.rnn(x)
        finals = state if self.kind == "lstm" else (state,)
        # h_n / c_n are [layers * 2, B, d]; the last layer's forward and backward are the last two
        s = torch.cat([f[-2:].transpose(0, 1).reshape(x.shape[0], -1) for f in finals], dim=-1)
        s = s.unsqueeze(1).expand(-1, o.shape[1], -1)
        scores = torch.tanh(self.attn(torch.cat([o, s], dim=-1)))
        return o, torch.softmax(scores, dim=1)

    def forward(self, x):
        o, w = self.attention(x)
        return self.out(self.combine(torch.cat([o, w * o], dim=-1)))


class DotRecurrentAttention(nn.Module):
    """The `seq_attention="dot"` variant of the attention ops: the plain recurrent net
    (`Recurrent`) followed by residual scaled dot-product self-attention over time.

    Queries, keys and values are the recurrent outputs h of one utterance, so
    out = h + softmax(h h^T / sqrt(d)) h attends across its T steps only (never across the
    batch: DESIGN.md, defect 1).  The attention itself has no parameters; the recurrent
    net learns the representation it attends with.  This is not the reference code's form
    (`RecurrentAttention` is); it is kept for comparison.  `core` and `head` as in
    `Recurrent`.
    """

    def __init__(self, kind: str, d: int, layers: int):
        super().__init__()
        self.recurrent = Recurrent(kind, d, layers)

    @property
    def core(self) -> nn.RNNBase:
        return self.recurrent.rnn

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return h + F.scaled_dot_product_attention(h, h, h)

    def forward(self, x):
        return self.head(self.recurrent(x))


class SeqZero(nn.Module):
    """The SeqNN `none` op: zeros of the input shape."""

    def forward(self, x):
        return x.mul(0.0)


#: The forms of the attention ops (`NetworkConfig.seq_attention`): the reference code's
#: (the default) and a parameter-free dot-product variant.
SEQ_ATTENTION_FORMS = {"paper": RecurrentAttention, "dot": DotRecurrentAttention}


def _attention_form(attention: str):
    try:
        return SEQ_ATTENTION_FORMS[attention]
    except KeyError:
        raise ValueError(f"unknown seq_attention {attention!r}; valid: {', '.join(SEQ_ATTENTION_FORMS)}") from None


def _seq_factory(name: str):
    if name == "none":
        return lambda d, attention="paper": SeqZero()
    if name == "skip_connect":
        return lambda d, attention="paper": nn.Identity()
    kind, *rest = name.split("_")
    layers = int(rest[-1])
    if rest[0] == "att":
        return lambda d, attention="paper": _attention_form(attention)(kind, d, layers)
    return lambda d, attention="paper": Recurrent(kind, d, layers)


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


__all__ = ["CNN_OPS", "SEQ_OPS", "SEQ_ATTENTION_FORMS", "cnn_op_has_leading_relu", "drop_path", "BatchNorm2d", "EndsInBatchNorm",
           "PoolBN", "weighted_batch_norm", "depthwise_conv", "DepthwiseConv2d", "stride2_phases", "layout_of", "ReLUConvBN",
           "FactorizedReduce", "SepConv", "DilConv", "AvgPool3x3", "Conv7x1_1x7", "Zero", "Recurrent",
           "RecurrentAttention", "DotRecurrentAttention", "SeqZero"]
