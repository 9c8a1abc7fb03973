"""The fast form of the search space's ops: the same modules and parameters, other kernels.

`to_fast(module)` turns every op and building block of `emodarts_core.space` inside
`module` into its fast form, in place, the way `nn.SyncBatchNorm.convert_sync_batchnorm`
turns batch norms into synchronised ones. The parameters, buffers and their names stay
what they are, so a state dict saved from either form loads into the other.

Why by conversion: each fast class is a subclass of the plain one that adds no state,
only other methods, while the plain modules are built by the space's own constructors
(the op table `space.ops.CNN_OPS` by the paper's names, and each op's convolutions and
norms). Giving each built module its fast class (`module.__class__`, as torch's
`nn.utils.parametrize` does to the modules it parametrizes) keeps the plain form's
structure, parameter names and initialisation by construction, with one set of
constructors instead of a second copy of them. The fast containers convert their children
when they are built (`fast.cells.FastMixedOp`, `FastSearchCell`, `FastSeqMixedOp`, and the
networks of `fast.networks`), so a fast class built directly is the same as a plain one
converted (tests/test_fast_construction.py). The fast classes:

- `nn.BatchNorm2d` -> `fast.norms.BatchNorm2d`; depthwise `nn.Conv2d` ->
  `fast.conv.DepthwiseConv2d`; DARTS' `nn.AvgPool2d` -> `fast.conv.AvgPool3x3`;
- the ops that end in a BatchNorm (`PoolBN`, `FactorizedReduce`, `SepConv`, `DilConv`,
  `Conv7x1_1x7`) gain `pre_norm(h, phases)` and `final_norm`, so that a mixed op can fuse
  the last norm with the op weight and the edge's sum (`fast.norms.weighted_batch_norm`).
  `pre_norm` reads h, the ReLU of the op's input where the op begins with one
  (`reads_relu`), computed once per state by the cell; `phases` are h's stride-2
  subsamples (`fast.conv.stride2_phases`), shared by a state's reduction edges.
- `FactorizedReduce` computes its two stride-2 1x1 convolutions as the 1x1 convolutions of
  the two subsamples: torch's CPU backward of the strided 1x1 convolution on a
  channels-last input corrupts the heap ("double free or corruption" with the pinned torch).

The mixed ops and cells are in `fast/cells.py`, the networks in `fast/networks.py`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.fast.conv import AvgPool3x3, DepthwiseConv2d, stride2_phases
from emodarts_core.fast.norms import BatchNorm2d
from emodarts_core.space import ops

_RELU_LED = {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "conv_7x1_1x7"}


def reads_relu(name: str, stride: int) -> bool:
    """Whether CNN op `name` at `stride` begins with a ReLU of its input, which the fast
    mixed op then computes once per state and passes to `pre_norm`."""
    return name in _RELU_LED or (name == "skip_connect" and stride != 1)


class EndsInBatchNorm:
    """An op whose last step is a BatchNorm: op(x) = final_norm(pre_norm(h, phases)), with h
    the ReLU of x where the op begins with one, x otherwise."""

    final_norm: nn.BatchNorm2d

    def pre_norm(self, h: torch.Tensor, phases=None) -> torch.Tensor:
        raise NotImplementedError


class FastPoolBN(ops.PoolBN, EndsInBatchNorm):
    @property
    def final_norm(self):
        return self[1]

    def pre_norm(self, h, phases=None):
        return self[0](h)


class FastFactorizedReduce(ops.FactorizedReduce, EndsInBatchNorm):
    @property
    def final_norm(self):
        return self.bn

    def pre_norm(self, h, phases=None):
        # conv_1(h) and conv_2(h[:, :, 1:, 1:]) at stride 2 are the 1x1 convolutions of the
        # subsamples h[:, :, ::2, ::2] and h[:, :, 1::2, 1::2] (see the module docstring)
        even, odd = phases or stride2_phases(h)
        return torch.cat([F.conv2d(even, self.conv_1.weight), F.conv2d(odd, self.conv_2.weight)], dim=1)

    def forward(self, x):
        return self.bn(self.pre_norm(F.relu(x)))


class FastSepConv(ops.SepConv, EndsInBatchNorm):
    @property
    def final_norm(self):
        return self.block_2[3]

    def pre_norm(self, h, phases=None):
        relu, depthwise, pointwise, _ = self.block_2
        return pointwise(depthwise(relu(self.block_1(h))))


class FastDilConv(ops.DilConv, EndsInBatchNorm):
    @property
    def final_norm(self):
        return self.op[2]

    def pre_norm(self, h, phases=None):
        depthwise, pointwise, _ = self.op
        return pointwise(depthwise(h, phases))


class FastConv7x1_1x7(ops.Conv7x1_1x7, EndsInBatchNorm):
    @property
    def final_norm(self):
        return self.op[2]

    def pre_norm(self, h, phases=None):
        return self.op[1](self.op[0](h))


#: plain class -> its fast form (subclasses with no state of their own)
FAST_CLASSES: dict[type, type] = {
    nn.BatchNorm2d: BatchNorm2d,
    ops.PoolBN: FastPoolBN,
    ops.FactorizedReduce: FastFactorizedReduce,
    ops.SepConv: FastSepConv,
    ops.DilConv: FastDilConv,
    ops.Conv7x1_1x7: FastConv7x1_1x7,
}


def _fast_class(module: nn.Module) -> type | None:
    kind = type(module)
    if (kind is nn.Conv2d and module.groups == module.in_channels == module.out_channels
            and len(set(module.kernel_size)) == len(set(module.padding)) == len(set(module.dilation)) == 1):
        return DepthwiseConv2d  # a depthwise convolution with a square kernel
    if (kind is nn.AvgPool2d and module.kernel_size == 3 and module.padding == 1 and not module.count_include_pad
            and not module.ceil_mode):
        return AvgPool3x3
    return FAST_CLASSES.get(kind)


def to_fast(module: nn.Module, classes: dict[type, type] | None = None) -> nn.Module:
    """Give every submodule of `module` (itself included) that has a fast form that form,
    in place, and return `module`. `classes` adds plain -> fast pairs (the cells')."""
    extra = classes or {}
    for m in module.modules():
        fast_class = extra.get(type(m)) or _fast_class(m)
        if fast_class is not None:
            m.__class__ = fast_class
    return module


__all__ = ["EndsInBatchNorm", "FAST_CLASSES", "reads_relu", "to_fast"]
