"""Batch-norm kernels for the search's small channel counts on CPU (the fast form).

What each replaces (the plain torch form, which also runs off CPU or outside the case a
kernel was written for); docs/PERFORMANCE.md ("Fused BatchNorm") has what each measured:

- `BatchNorm2d`: an `nn.BatchNorm2d` (same parameters, buffers and results). torch's CPU
  backward of batch norm on channels-last maps whose channel count is not a multiple of
  16 gets slower with more threads; in exactly that case the backward runs on one thread
  (`_SingleThreadBackwardBatchNorm`). Affine-free norms run as the fused node below with
  weight 1.
- `weighted_batch_norm(acc, z, w, bn)`: replaces `acc + w * bn(z)` (three autograd nodes,
  one more saved tensor per op) by one node (`_WeightedBatchNorm`) whose backward works on
  the channels-last map seen as a [pixels, C] matrix.
- folded statistics (`_RowFolding`): the fused node computes the batch statistics itself,
  and every per-channel pass, forward and backward, reads the map 256 values per row
  (32 pixels of 8 channels) instead of C.
- uncentred sums (`_centred_form`): statistics from the sums of z and z^2, and the
  gradient from those of g and g * z, unless a channel's mean exceeds two standard
  deviations: one pass and one temporary map fewer each way.

Values, gradients and running statistics are those of `nn.BatchNorm2d` (to float
rounding); tests/test_ops.py checks each against it, double backward included.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from emodarts_core.fast.autograd import graph_grads

# values per row of a folded map (`_RowFolding`): per-channel passes over a short row run
# much slower than over the same memory read 256 values per row (docs/PERFORMANCE.md,
# "Fused BatchNorm")
_ROW_VALUES = 256


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

    An affine-free norm in training mode on a channels-last CPU map of at least
    `FUSED_MIN_PIXELS` pixels runs as `_WeightedBatchNorm` with weight 1, and the others,
    where torch's backward is slow with several threads (channels-last, channels not a
    multiple of 16), run their backward on one thread.
    Otherwise it is nn.BatchNorm2d.
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
    op weight and added to a running sum, in one node of the graph. A weight of G values
    (G dividing the channels) scales each of G equal runs of consecutive channels by its
    own value: the stacked network's maps, whose copy k holds channels k*C .. k*C + C - 1
    (`fast.stacked_layers`), each scaled by that copy's op weight.

    The node works on the channels-last map viewed as a [pixels, C] matrix (folded to 256
    values per row: `_RowFolding`). The separate graph (batch norm, then mul, then add) saves
    one more full tensor per op and runs longer on CPU for the search's small channel
    counts (docs/PERFORMANCE.md, "Fused BatchNorm", has the figures).

    - Forward: the batch statistics from per-channel sums of z and z^2, and the output as
      z * a - mean * a (+ acc), with a = w * invstd: passes over z only.
    - Backward: per-channel sums of g and g * z give sum g * (z - mean), hence the
      scalar's gradient and the input gradient g * a + (z - mean) * b + d.
    - Where a channel's mean is large against its spread (`_centred_form`), those sums
      would cancel, so both directions then work on the centred map z - mean (one pass
      more), which keeps the variance exact at |mean| >> std.

    Under `create_graph` (double backward) the gradients are those of the same expression
    written with differentiable torch ops.
    """

    @staticmethod
    def forward(ctx, acc, z, w, running_mean, running_var, momentum, eps):
        Z = _RowFolding(z)
        count = Z.pixels
        mean = Z.channel_sums(Z.m.sum(0)) / count
        var = Z.channel_sums(Z.m.square().sum(0)) / count - mean.square()
        # E[z^2] - E[z]^2 loses digits to cancellation when the mean is large against the
        # spread: then the centred form, a second pass over z - mean (`_centred_form`)
        centred = _centred_form(mean, var)
        y, shift = _shifted(Z, mean, centred)
        if centred:
            var = Z.channel_sums(y.square().sum(0)) / count
        invstd = torch.rsqrt(var.clamp_min(0) + eps)
        running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        running_var.mul_(1 - momentum).add_(var, alpha=momentum * count / max(count - 1, 1))
        a = Z.per_column(_per_channel(w, mean) * invstd)
        out = torch.addcmul(Z.per_column(-shift) * a, y, a)  # (z - mean) * a = y * a - shift * a
        if acc is not None:
            out = out.add_(Z.like(acc.contiguous(memory_format=torch.channels_last)))
        out = _map_like(out, z)
        ctx.save_for_backward(z, w, mean, invstd)
        ctx.eps, ctx.centred = eps, centred
        return out

    @staticmethod
    def backward(ctx, grad):
        z, w, mean, invstd = ctx.saved_tensors
        need_acc, need_z, need_w = ctx.needs_input_grad[:3]
        grad_acc = grad if need_acc else None
        if torch.is_grad_enabled():  # double backward: differentiate the plain expression
            var, mean = torch.var_mean(z, dim=(0, 2, 3), correction=0, keepdim=True)
            plain = _per_channel(w, mean).view(1, -1, 1, 1) * (z - mean) * torch.rsqrt(var + ctx.eps)
            return (grad_acc, *graph_grads(plain, grad, (z, need_z), (w, need_w)), None, None, None, None)
        Z = _RowFolding(z)
        G = Z.like(grad.contiguous(memory_format=torch.channels_last))
        count = Z.pixels
        sum_g = Z.channel_sums(G.sum(0))
        y, shift = _shifted(Z, mean, ctx.centred)  # as in the forward
        # sum of g * (z - mean) = sum of g * y - shift * sum of g
        sum_g_xhat = (Z.channel_sums((G * y).sum(0)) - shift * sum_g) * invstd
        grad_z = grad_w = None
        if need_w:  # each weight's channels' sums
            grad_w = sum_g_xhat.view(max(w.numel(), 1), -1).sum(1).to(w.dtype).reshape(w.shape)
        if need_z:  # g * a + (z - mean) * b + d
            a = _per_channel(w, mean) * invstd
            b = -a * invstd * sum_g_xhat / count
            d = -a * sum_g / count
            grad_z = torch.addcmul(Z.per_column(d - shift * b), G, Z.per_column(a)).addcmul_(y, Z.per_column(b))
            grad_z = _map_like(grad_z, z)
        return grad_acc, grad_z, grad_w, None, None, None, None


def _per_channel(w: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar op weight as it is, or G per-group weights repeated over their runs of
    channels (`like`: a per-channel vector), as `_WeightedBatchNorm` scales the map."""
    if w.dim() == 0:
        return w
    return w.repeat_interleave(like.numel() // w.numel())


# `_centred_form`: the largest squared mean, in units of the variance, at which the
# statistics are taken from sums of z and z^2 (and the output and gradient from z, not
# z - mean). Their rounding error grows with (1 + mean^2 / var) times the unit roundoff: at
# 4 the float32 gradients stay within twice the error of torch's own batch norm against a
# float64 reference (tests/test_ops.py), which at 8 the op weight's gradient did not.
_UNCENTRED_MEAN_SQUARED = 4.0


def _centred_form(mean: torch.Tensor, var: torch.Tensor) -> bool:
    """Whether a channel's mean is so large against its spread (mean^2 > 4 var, or a
    variance that cancelled to zero or below) that the statistics, the output and the
    gradient must be computed from the centred map z - mean."""
    return bool((mean.square() > _UNCENTRED_MEAN_SQUARED * var).any())


def _shifted(Z: "_RowFolding", mean: torch.Tensor, centred: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, shift) with z - mean = y - shift per channel, the form both directions compute
    from: the centred map and 0 where sums over z would cancel (`_centred_form`), else z's
    own matrix and the mean, with no pass over the map."""
    if centred:
        return Z.m - Z.per_column(mean), torch.zeros_like(mean)
    return Z.m, mean


def _pixels_by_channels(x: torch.Tensor) -> torch.Tensor:
    """A channels-last [N, C, H, W] map as the [N*H*W, C] matrix it is in memory (a view)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _map_like(matrix: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of `_pixels_by_channels` (or of `_RowFolding.like`): a matrix holding a
    channels-last map's values in memory order, as that map shaped like `like`."""
    N, C, H, W = like.shape
    return matrix.view(N, H, W, C).permute(0, 3, 1, 2)


class _RowFolding:
    """A channels-last map as a [pixels / f, f * C] matrix `m` (a view): f consecutive
    pixels per row, so that each row has at least `_ROW_VALUES` values where the pixel
    count allows.

    Column sums and per-channel scale-and-shift passes over a [pixels, C] matrix with a
    short row run several times slower than over the same memory read `_ROW_VALUES` (256)
    values per row: CPU kernels vectorise along the row and pay a loop overhead per row (an
    order of magnitude on the search's maps: docs/PERFORMANCE.md).  `channel_sums` adds up
    the f pixels of each channel, `per_column` repeats a per-channel vector across a row,
    `like` folds a map of the same shape the same way. f is the largest power of two up to
    256 / C that divides the pixel count.
    """

    def __init__(self, x: torch.Tensor):
        self.channels = x.shape[1]
        self.pixels = x.numel() // self.channels
        self.f = 1
        while self.f * self.channels < _ROW_VALUES and self.pixels % (2 * self.f) == 0:
            self.f *= 2
        self.m = self.like(x)

    def like(self, x: torch.Tensor) -> torch.Tensor:
        return _pixels_by_channels(x).view(self.pixels // self.f, self.f * self.channels)

    def channel_sums(self, columns: torch.Tensor) -> torch.Tensor:
        return columns.view(self.f, self.channels).sum(0)

    def per_column(self, per_channel: torch.Tensor) -> torch.Tensor:
        return per_channel.repeat(self.f)


# `_fusable`: the fewest pixels (batch x height x width) at which the fused node runs. Below
# it torch's own batch norm, multiply and add are faster: the fused node's forward and
# backward are some forty small calls from Python whatever the map's size, which torch's
# kernels undercut on small maps (docs/PERFORMANCE.md, "Small maps: torch's batch norm",
# has the crossover measured forward and backward on one thread at 2 to 32 channels).
FUSED_MIN_PIXELS = 8192


def fusable_map(z: torch.Tensor) -> bool:
    """Whether a training-mode, affine-free norm of `z` may run as the fused node: a
    channels-last float map on CPU of at least `FUSED_MIN_PIXELS` pixels (`_fusable`)."""
    return (z.dim() == 4 and z.device.type == "cpu" and z.dtype in (torch.float32, torch.float64)
            and z.is_contiguous(memory_format=torch.channels_last) and z.numel() >= FUSED_MIN_PIXELS * z.shape[1])


def _fusable(bn: nn.BatchNorm2d, z: torch.Tensor) -> bool:
    """Whether `bn(z)` may run as `_WeightedBatchNorm`: training-mode
    statistics, no affine parameters, a map `fusable_map` accepts (channels-last float on
    CPU, where torch's kernels are slow for it, of at least `FUSED_MIN_PIXELS` pixels)."""
    return bn.training and bn.track_running_stats and not bn.affine and fusable_map(z)


def weighted_batch_norm(acc: torch.Tensor | None, z: torch.Tensor, w: torch.Tensor,
                        bn: nn.BatchNorm2d) -> torch.Tensor:
    """`acc + w * bn(z)` (`w * bn(z)` when `acc` is None) for a scalar tensor `w`.

    In the search's case (`_fusable`: an affine-free BatchNorm in training mode, a
    channels-last float map on CPU, not a small one) it is one fused autograd node
    (`_WeightedBatchNorm`); otherwise the plain expression.
    """
    if not (_fusable(bn, z) and (acc is None or acc.shape == z.shape)):
        term = w * bn(z)
        return term if acc is None else acc + term
    return fused_batch_norm(acc, z, w, bn.running_mean, bn.running_var, _momentum_of(bn), bn.eps)


def fused_batch_norm(acc: torch.Tensor | None, z: torch.Tensor, w: torch.Tensor, running_mean: torch.Tensor,
                     running_var: torch.Tensor, momentum: float, eps: float) -> torch.Tensor:
    """`acc + w * batch_norm(z)` in training mode, affine-free, as one fused node: `w` a
    scalar or G weights, one per run of C/G consecutive channels; the running statistics
    ([C] tensors, updated in place) with `momentum`. For maps `fusable_map` accepts, with
    `acc` None or of z's shape (the stacked network's norms, `fast.stacked_layers`)."""
    return _WeightedBatchNorm.apply(acc, z, w, running_mean, running_var, momentum, eps)


__all__ = ["BatchNorm2d", "FUSED_MIN_PIXELS", "fusable_map", "fused_batch_norm", "weighted_batch_norm"]
