"""Candidate operations of the emoDARTS search space, under the paper's names.

CNN ops (paper Table 2, DARTS' list with the factorised 7x7) work on feature maps
[B, C, F, T] and keep the spatial shape (stride 1) or halve it (stride 2, reduction
edges, even sizes):

    none            zeros                                   (`Zero`)
    max_pool_3x3    3x3 max pooling                         (nn.MaxPool2d)
    avg_pool_3x3    3x3 average pooling, pads not counted   (`AvgPool3x3`)
    skip_connect    identity; at stride 2 `FactorizedReduce`
    sep_conv_kxk    (ReLU, depthwise kxk, 1x1, BN) twice    (`SepConv`, k = 3, 5)
    dil_conv_kxk    ReLU, dilated depthwise kxk, 1x1, BN    (`DilConv`, k = 3, 5, dilation 2)
    conv_7x1_1x7    ReLU, 1x7, 7x1, BN                      (`Conv7x1_1x7`)

SeqNN ops (paper Table 2) work on sequences [B, T, d] and keep that shape; they only mix
information along the time axis of one utterance, never across the samples of a batch
(docs/REFERENCE_CODE.md, defect 1): `none`, `skip_connect`, `lstm_j` / `rnn_j` (j layers,
`Recurrent`) and the attention ops `lstm_att_j` / `rnn_att_j` (`RecurrentAttention`).

Factories: `CNN_OPS[name](C, stride, affine, relu=True)` and `SEQ_OPS[name](d, attention="paper")`
(`attention`: the form of the `*_att_*` ops, `SEQ_ATTENTION_FORMS`).

Two hooks serve the search cell's mixed op (`space/cells.py`) and change no parameter:
ops that begin with a ReLU take `relu=False` to drop it (the cell then computes the ReLU
once per state; `cnn_op_has_leading_relu` says which ops), and ops that end in a
BatchNorm (`EndsInBatchNorm`) expose `pre_norm` and `final_norm`, so that the norm can be
fused with the op weight. The building blocks `BatchNorm2d`, `DepthwiseConv2d` and
`AvgPool3x3` are torch's `nn.BatchNorm2d`, `nn.Conv2d` and `nn.AvgPool2d` with CPU
kernels behind the fast-path switch (`emodarts_core.fast`); with it off, every op here is
plain PyTorch. `space/reference.py` builds the search space from these ops with no fast
path at all.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.fast.conv import AvgPool3x3, DepthwiseConv2d, stride2_phases
from emodarts_core.fast.norms import BatchNorm2d
from emodarts_core.space.search_space import CNN_PRIMITIVES, SEQ_PRIMITIVES


class EndsInBatchNorm(nn.Module):
    """An op whose last step is a BatchNorm: `forward(x) = final_norm(pre_norm(x))`.

    The search's mixed op takes the two apart to fuse the norm with its op weight and sum
    (`fast.norms.weighted_batch_norm`). It may also pass `phases`, the two stride-2
    subsamples of the op's input as the op reads it, after its own leading ReLU if it has
    one (`fast.conv.stride2_phases`), computed once per cell state and shared by all its
    reduction edges; ops that read a subsample take it from there instead of slicing again."""

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
        # conv_1(x) and conv_2(x[:, :, 1:, 1:]), 1x1 with stride 2, are the 1x1 convolutions
        # of the subsamples x[:, :, ::2, ::2] and x[:, :, 1::2, 1::2]: computed that way
        # because torch's CPU backward of the strided 1x1 convolution on a channels-last
        # input corrupts the heap (torch 2.13: "double free or corruption", segfaults).
        # conv_1/conv_2 keep stride 2 so the modules and state dicts are DARTS' own.
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
    """ReLU -> depthwise kxk with dilation -> pointwise 1x1 -> BN."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, affine: bool = True, relu: bool = True):
        super().__init__()
        self.relu = relu
        self.op = nn.Sequential(
            DepthwiseConv2d(C_in, kernel_size, stride, padding, dilation),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            BatchNorm2d(C_out, affine=affine),
        )

    @property
    def subsample(self) -> bool:
        """Whether the depthwise convolution only reads every stride-th row and column
        (stride = dilation: the reduction edges), which the fast path exploits."""
        return self.op[0].subsample

    @property
    def final_norm(self):
        return self.op[2]

    def pre_norm(self, x, phases=None):
        depthwise, pointwise, _ = self.op
        return pointwise(depthwise(F.relu(x) if self.relu else x, phases))


class Conv7x1_1x7(EndsInBatchNorm):
    """ReLU -> conv 1x7 -> conv 7x1 -> BN: DARTS' factorised 7x7 (in the paper, absent from
    the reference code's primitive list: docs/REFERENCE_CODE.md, defect 3)."""

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
    """The `none` op: zeros of the output shape."""

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


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
    mixed op can run the cores of several candidates together (`fast.recurrence`)."""

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

    What follows the reference code (the authors' design notes, "The attention ops as the reference code
    builds them"): the bidirectional recurrent net and its dropout, a linear layer scoring
    the outputs with the final state(s) into 2d scores per step, attention weights that
    multiply the outputs elementwise, the concatenation combined by a linear layer 4d -> 2d
    and projected back to d by another, so the op carries its own parameters (paper
    Table 7: LSTM-Att. only models have about 2.5x the parameters of LSTM only).

    Where it differs: the reference reads a [batch, features] matrix as one unbatched
    sequence, so its "time" axis is the batch, it views all layers' final states as
    [batch, -1] (which only fits at batch size 16) and takes its softmax over the feature
    axis (docs/REFERENCE_CODE.md, defect 1). Here the sequence is the utterance ([B, T, d] -> [B, T, d]),
    s is the last layer's final states of that utterance, and the softmax runs over its T
    time steps, so no sample ever reads another. With the softmax over time a purely linear
    score would lose the final state: W_a s is the same at every t and cancels. The tanh
    (additive attention, Bahdanau et al. 2015) makes the state shape how each step is
    scored, with the reference's parameter count unchanged.

    It exposes no `core`: its head needs the final states, not only the outputs, and a
    bidirectional net is not stacked by `fast.recurrence.stacked_tanh_rnn` anyway.
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
    batch: docs/REFERENCE_CODE.md, defect 1).  The attention itself has no parameters; the recurrent
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
    docs/REFERENCE_CODE.md, defect 5).  Callers apply it only in training mode."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask


__all__ = ["CNN_OPS", "SEQ_OPS", "SEQ_ATTENTION_FORMS", "cnn_op_has_leading_relu", "drop_path", "EndsInBatchNorm",
           "PoolBN", "ReLUConvBN", "FactorizedReduce", "SepConv", "DilConv", "Conv7x1_1x7", "Zero", "Recurrent",
           "RecurrentAttention", "DotRecurrentAttention", "SeqZero"]
