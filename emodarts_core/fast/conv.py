"""Convolution kernels and layouts for the fast form's CPU feature maps.

What each replaces (the plain torch form, which also runs off CPU or outside the case a
kernel was written for); docs/PERFORMANCE.md ("Depthwise convolutions", "Reduction
edges", "Layout on CPU") has what each measured:

- `depthwise_conv` / `DepthwiseConv2d` (an `nn.Conv2d` with groups = channels, same
  parameters): replaces `F.conv2d(x, w, groups=C)` at stride 1 by
  `_FlippedKernelDepthwiseConv`, whose input gradient is the forward convolution with the
  flipped kernel, which torch's CPU kernels compute several times faster than their own
  input gradient. On reduction edges the strided dilated depthwise convolution (stride =
  dilation = 2) is computed as the undilated one of the stride-2 subsample it reads: the
  same products, several times faster than torch's strided dilated kernel.
- `depthwise_weight_grad`: the 5x5 and dilated weight gradients on large maps as sums of
  oneDNN's fast undilated 3x3 case.
- `stride2_phases`: replaces the slices `x[:, :, ::2, ::2]`, `x[:, :, 1::2, 1::2]`, taken
  per edge, by copies made once per state whose gradient is written back in one pass in
  the state's layout (`_Stride2Phases`); each slice cost a zero-filled gradient of full
  size in the default layout.
- `AvgPool3x3`: `nn.AvgPool2d(3, stride, 1, count_include_pad=False)` computed on CPU as a
  depthwise convolution with a kernel of ones divided by the window counts, faster than
  torch's average pooling at these channel counts, forward and backward.
- `ChannelsLast`: feature maps channels-last after the stem, where torch's CPU depthwise
  convolutions run several times faster.

tests/test_ops.py checks each against its plain form (values, gradients, double backward).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.fast.autograd import graph_grads


class _FlippedKernelDepthwiseConv(torch.autograd.Function):
    """Stride-1, same-padded depthwise convolution whose input gradient is computed as the
    forward convolution of the output gradient with the kernel flipped in both axes.

    That is the same sum (the transposed convolution of a stride-1 same-padded one), but
    torch's CPU forward kernel is several times faster than its input-gradient kernel on the
    search's channels-last maps (docs/PERFORMANCE.md, "Depthwise convolutions"). The weight
    gradient is `depthwise_weight_grad`: torch's own, or sums of its fast 3x3 case. Under
    `create_graph` the gradients are autograd's of conv2d.
    """

    @staticmethod
    def forward(ctx, x, weight, padding, dilation, rewrite=None):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation, ctx.rewrite = padding, dilation, rewrite
        return F.conv2d(x, weight, padding=padding, dilation=dilation, groups=weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        pad, dil, groups = ctx.padding, ctx.dilation, weight.shape[0]
        need_x, need_w = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():  # double backward
            plain = F.conv2d(x, weight, padding=pad, dilation=dil, groups=groups)
            return (*graph_grads(plain, grad, (x, need_x), (weight, need_w)), None, None, None)
        grad_x = grad_w = None
        if need_x:
            grad_x = F.conv2d(grad, weight.flip(-1, -2), padding=pad, dilation=dil, groups=groups)
        if need_w:
            grad_w = depthwise_weight_grad(grad, x, weight.shape[-1], dil, ctx.rewrite)
        return grad_x, grad_w, None, None, None


def _torch_weight_grad(grad: torch.Tensor, x: torch.Tensor, k: int, padding: int, dilation: int) -> torch.Tensor:
    """torch's own weight gradient of a stride-1 depthwise convolution with a k x k kernel."""
    C = x.shape[1]
    return torch.ops.aten.convolution_backward(
        grad, x, x.new_empty(C, 1, k, k), None, [1, 1], [padding, padding], [dilation, dilation], False, [0, 0],
        C, [False, True, False])[1]


# `depthwise_weight_grad` rewrites a gradient only for maps this large (values, and
# channels): below them the extra calls cost more than torch's slow kernel, above them it
# wins (docs/PERFORMANCE.md, "Depthwise convolutions")
_LARGE_MAP_VALUES = 2 ** 19
_LARGE_MAP_CHANNELS = 8


def _valid_weight_grad(grad: torch.Tensor, padded: torch.Tensor, k: int, blocks: bool) -> torch.Tensor:
    """The k x k weight gradient of an unpadded ("valid") stride-1 depthwise convolution of
    `padded` whose output gradient is `grad`; with `blocks` (k = 5) the kernel is computed as
    four 3 x 3 blocks (rows and columns 0-2 and 2-4, the overlap written twice with the
    same products), each the 3 x 3 gradient of the window of `padded` it reads."""
    if not blocks:
        return _torch_weight_grad(grad, padded, k, 0, 1)
    C, (H, W) = grad.shape[1], grad.shape[-2:]
    out = grad.new_empty(C, 1, 5, 5)
    for top in (0, 2):
        for left in (0, 2):
            window = padded[:, :, top:top + H + 2, left:left + W + 2]
            out[:, :, top:top + 3, left:left + 3] = _torch_weight_grad(grad, window, 3, 0, 1)
    return out


def depthwise_weight_grad(grad: torch.Tensor, x: torch.Tensor, k: int, dilation: int = 1,
                          rewrite: bool | None = None) -> torch.Tensor:
    """Weight gradient [C, 1, k, k] of the stride-1, same-padded depthwise convolution of
    channels-last `x` with a k x k kernel at `dilation`, given its output gradient `grad`.

    torch's CPU kernel (oneDNN) is fast for an undilated 3 x 3 kernel only (an order of
    magnitude faster than for 5 x 5, or for 3 x 3 at dilation 2). So on large maps
    (`_LARGE_MAP_VALUES`, `_LARGE_MAP_CHANNELS`) the others are rewritten as sums of the
    fast case, with the same products:

    - dilation 2 on even-sized maps: tap (a, b) pairs input pixel (i + 2a, j + 2b) of the
      padded map with output pixel (i, j), so rows and columns of one parity only meet rows
      and columns of the same parity. The gradient is the sum over the four parities
      (r, s) of the undilated gradients of grad[r::2, s::2] against padded[r::2, s::2]
      (quarter maps).
    - 5 x 5 below 32 channels: four 3 x 3 blocks (`_valid_weight_grad`).

    `rewrite` True takes the sums whatever the map's size and channel count: the stacked
    network's maps, K searches' channels side by side (docs/PERFORMANCE.md, "Many searches
    in one step"), where they win at every size measured; None decides by the map's size.

    docs/PERFORMANCE.md ("Depthwise convolutions") has what each measured.
    """
    pad = dilation * (k - 1) // 2
    C, H, W = x.shape[1:]
    large = rewrite if rewrite is not None else x.numel() >= _LARGE_MAP_VALUES and C >= _LARGE_MAP_CHANNELS
    blocks = k == 5 and (C < 32 or bool(rewrite))
    parities = dilation == 2 and H % 2 == 0 and W % 2 == 0
    if not (large and (parities or (dilation == 1 and blocks))):
        return _torch_weight_grad(grad, x, k, pad, dilation)
    cl = torch.channels_last
    padded = F.pad(x, (pad, pad, pad, pad)).contiguous(memory_format=cl)
    if dilation == 1:
        return _valid_weight_grad(grad, padded, k, blocks)
    total = None
    for r in (0, 1):
        for s in (0, 1):
            part = _valid_weight_grad(grad[:, :, r::2, s::2].contiguous(memory_format=cl),
                                      padded[:, :, r::2, s::2].contiguous(memory_format=cl), k, blocks)
            total = part if total is None else total.add_(part)
    return total


def stride2_weight_grad(grad: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """Weight gradient [C, 1, k, k] of the stride-2, undilated depthwise convolution of
    channels-last `x` (even height and width) with a k x k kernel padded (k - 1) / 2,
    given its output gradient `grad`, as sums of undilated stride-1 gradients.

    Tap (a, b) pairs output pixel (i, j) with pixel (2i + a, 2j + b) of the padded map, so
    the taps of row parity r and column parity s, a = 2a' + r and b = 2b' + s, read only
    the phase padded[r::2, s::2], at (i + a', j + b'): their gradient is the stride-1
    ("valid") gradient of `grad` against that phase with a kernel of ceil(k / 2) taps, the
    taps past the kernel's end computed and dropped. torch's CPU kernel (oneDNN) is several
    times slower for the strided 5 x 5 gradient than for the four undilated 3 x 3 ones on
    quarter maps (docs/PERFORMANCE.md, "Many searches in one step").
    """
    pad, q = (k - 1) // 2, (k + 1) // 2
    cl = torch.channels_last
    out = grad.new_empty(x.shape[1], 1, k, k)
    for r in (0, 1):
        for s in (0, 1):
            # padded[r::2, s::2] is a phase of x, x[(r - pad) % 2::2, (s - pad) % 2::2],
            # after the (pad - r + 1) // 2 leading rows (and columns) of padding that phase of
            # the padded map holds, and before enough trailing ones for ceil(k / 2) taps
            before_r, before_s = (pad + 1 - r) // 2, (pad + 1 - s) // 2
            phase = F.pad(x[:, :, (r - pad) % 2::2, (s - pad) % 2::2],
                          (before_s, q - 1 - before_s, before_r, q - 1 - before_r))
            part = _torch_weight_grad(grad, phase.contiguous(memory_format=cl), q, 0, 1)
            out[:, :, r::2, s::2] = part[:, :, :len(range(r, k, 2)), :len(range(s, k, 2))]
    return out


class _Stride2DepthwiseConv(torch.autograd.Function):
    """Stride-2, undilated depthwise convolution padded (k - 1) / 2 whose weight gradient is
    `stride2_weight_grad`; the forward and the input gradient are torch's. Under
    `create_graph` the gradients are autograd's of conv2d."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight, stride=2, padding=(weight.shape[-1] - 1) // 2, groups=weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        k, groups = weight.shape[-1], weight.shape[0]
        need_x, need_w = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():  # double backward
            plain = F.conv2d(x, weight, stride=2, padding=(k - 1) // 2, groups=groups)
            return tuple(graph_grads(plain, grad, (x, need_x), (weight, need_w)))
        grad_x = grad_w = None
        if need_x:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [2, 2], [(k - 1) // 2] * 2, [1, 1], False, [0, 0], groups,
                [True, False, False])[0]
        if need_w:
            grad_w = stride2_weight_grad(grad, x, k)
        return grad_x, grad_w


def stride2_depthwise_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Stride-2 undilated depthwise convolution of `x` with the square odd kernel `weight`,
    padded (k - 1) / 2 (a reduction edge's `sep_conv_*` first convolution): with the weight
    gradient of `stride2_weight_grad` on CPU for even-sized maps (outside autocast),
    otherwise `F.conv2d`."""
    k = weight.shape[-1]
    if (x.device.type == "cpu" and weight.shape[-2] == k and k % 2 and x.shape[-2] % 2 == 0
            and x.shape[-1] % 2 == 0 and not torch.is_autocast_enabled("cpu")):
        return _Stride2DepthwiseConv.apply(x, weight)
    return F.conv2d(x, weight, stride=2, padding=(k - 1) // 2, groups=weight.shape[0])


# The flipped-kernel backward wins for dilated kernels; undilated, only on large maps
# (`_LARGE_MAP_VALUES`): on the small preset's maps torch's own backward is faster
# (docs/PERFORMANCE.md, "Depthwise convolutions").
FLIPPED_KERNEL_MIN_DILATION = 2


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, padding: int, dilation: int = 1,
                   rewrite: bool | None = None) -> torch.Tensor:
    """Stride-1 depthwise convolution (`groups` = channels) with square odd kernel `weight`
    and "same" `padding` = dilation * (k - 1) / 2; dilated, on CPU (outside autocast), with
    the flipped-kernel backward (`_FlippedKernelDepthwiseConv`), and undilated on large maps
    too; otherwise `F.conv2d`. `rewrite` True: that backward, with the weight gradient's
    sums (`depthwise_weight_grad`), whatever the map's size (the stacked network's maps)."""
    k = weight.shape[-1]
    wins = rewrite or dilation >= FLIPPED_KERNEL_MIN_DILATION or x.numel() >= _LARGE_MAP_VALUES
    if (x.device.type == "cpu" and wins and weight.shape[-2] == k
            and padding == dilation * (k - 1) // 2 and not torch.is_autocast_enabled("cpu")):
        return _FlippedKernelDepthwiseConv.apply(x, weight, padding, dilation, rewrite)
    return F.conv2d(x, weight, padding=padding, dilation=dilation, groups=weight.shape[0])


class DepthwiseConv2d(nn.Conv2d):
    """nn.Conv2d with groups = channels (same parameters and results).

    Stride 1 runs `depthwise_conv`, and a strided dilated
    convolution with stride = dilation (the reduction edges' `dil_conv_*`) runs as the
    undilated one of the subsample it reads; `phases` (optional) are the input's stride-2
    subsamples (`stride2_phases`), shared by the edges that read the same state.
    """

    def __init__(self, C: int, kernel_size: int, stride: int, padding: int, dilation: int = 1):
        super().__init__(C, C, kernel_size, stride, padding, dilation=dilation, groups=C, bias=False)

    @property
    def subsample(self) -> bool:
        """Whether the convolution only reads every stride-th row and column (stride =
        dilation: the reduction edges' dilated convolutions)."""
        s = self.stride[0]
        return s > 1 and self.stride == self.dilation and self.padding[0] % s == 0

    def forward(self, x, phases=None):
        if self.stride == (1, 1):
            return depthwise_conv(x, self.weight, self.padding[0], self.dilation[0])
        if self.subsample:
            s = self.stride[0]
            sub = phases[0] if phases is not None and s == 2 else x[:, :, ::s, ::s]
            return depthwise_conv(sub, self.weight, self.padding[0] // s)
        return super().forward(x)


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
    """x's even and odd rows and columns, x[:, :, ::2, ::2] and x[:, :, 1::2, 1::2].

    Copies in x's layout, made once for several readers, whose
    gradient is written into one zero map in x's layout.  Slicing would zero-fill a
    full-size map per slice in the default layout, so a channels-last map would receive a
    gradient in the other layout, and the elementwise backward ops after it (ReLU, sums)
    run several times slower on mixed layouts."""
    return _Stride2Phases.apply(x)


def layout_of(x: torch.Tensor) -> torch.memory_format:
    """The memory format to give copies of `x` so they keep its layout (channels-last or not)."""
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


class ChannelsLast(nn.Module):
    """Puts a feature map channels-last (the fast networks' stems end with it): CPU
    depthwise convolutions run several times faster in that layout; the values are the same."""

    def forward(self, x):
        return x.contiguous(memory_format=torch.channels_last)


class AvgPool3x3(nn.AvgPool2d):
    """3x3 average pooling, padding 1, padded positions not counted (DARTS' avg_pool_3x3).

    On CPU it is computed as a depthwise convolution with a kernel
    of ones divided by the number of positions each window covers (9 inside, 6 on a
    border, 4 in a corner): the same sums, but torch's CPU convolution is about twice as
    fast as its average pooling for these small channel counts, forward and backward.
    Otherwise: nn.AvgPool2d.
    """

    def __init__(self, stride: int):
        super().__init__(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x):
        if x.device.type != "cpu":
            return super().forward(x)
        return avg_pool_as_depthwise(x, self.stride)


def avg_pool_as_depthwise(x: torch.Tensor, stride: int) -> torch.Tensor:
    """`AvgPool2d(3, stride, 1, count_include_pad=False)(x)` as a depthwise convolution with a
    kernel of ones, divided by the number of positions each window covers."""
    C, H, W = x.shape[1:]
    sums = F.conv2d(x, x.new_ones(C, 1, 3, 3), stride=stride, padding=1, groups=C)
    counts = _window_positions(H, stride, x)[:, None] * _window_positions(W, stride, x)[None, :]
    return sums / counts


def _window_positions(n: int, stride: int, like: torch.Tensor) -> torch.Tensor:
    """For each output position along an axis of n pixels, how many of the 3 pixels of its
    window (centred on the input pixel `stride` * index, padding 1) are inside the map:
    3, less one at each end of the axis."""
    centres = torch.arange(0, n, stride, device=like.device)
    return (3 - (centres == 0).long() - (centres == n - 1).long()).to(like.dtype)


__all__ = ["AvgPool3x3", "avg_pool_as_depthwise", "ChannelsLast", "DepthwiseConv2d", "depthwise_conv", "depthwise_weight_grad",
           "layout_of", "stride2_depthwise_conv", "stride2_phases", "stride2_weight_grad"]
