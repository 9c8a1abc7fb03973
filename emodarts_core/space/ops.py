"""Candidate operations of the emoDARTS search space, under the paper's names, in plain PyTorch.

CNN ops (paper Table 2, DARTS' list with the factorised 7x7) work on feature maps
[B, C, F, T] and keep the spatial shape (stride 1) or halve it (stride 2, reduction
edges, even sizes):

    none            zeros                                   (`Zero`)
    max_pool_3x3    3x3 max pooling                         (nn.MaxPool2d)
    avg_pool_3x3    3x3 average pooling, pads not counted   (nn.AvgPool2d)
    skip_connect    identity; at stride 2 `FactorizedReduce`
    sep_conv_kxk    (ReLU, depthwise kxk, 1x1, BN) twice    (`SepConv`, k = 3, 5)
    dil_conv_kxk    ReLU, dilated depthwise kxk, 1x1, BN    (`DilConv`, k = 3, 5, dilation 2)
    conv_7x1_1x7    ReLU, 1x7, 7x1, BN                      (`Conv7x1_1x7`)

SeqNN ops (paper Table 2) work on sequences [B, T, d] and keep that shape; they only mix
information along the time axis of one utterance, never across the samples of a batch
(docs/REFERENCE_CODE.md, defect 1): `none`, `skip_connect`, `lstm_j` / `rnn_j` (j layers,
`Recurrent`) and the attention ops `lstm_att_j` / `rnn_att_j` (`RecurrentAttention`).

Factories: `CNN_OPS[name](C, stride, affine)` and `SEQ_OPS[name](d, attention="paper")`
(`attention`: the form of the `*_att_*` ops, `SEQ_ATTENTION_FORMS`). Every op is built from
torch's modules (`nn.Conv2d`, `nn.BatchNorm2d`, the pools, `nn.LSTM`, `nn.RNN`) as DARTS
(Liu et al. 2019) builds them. The fast form of the search (`emodarts_core.fast`) keeps
these modules and their parameters, and changes how they are computed.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.space.search_space import CNN_PRIMITIVES, SEQ_PRIMITIVES


def depthwise(C: int, kernel_size: int, stride: int, padding: int, dilation: int = 1) -> nn.Conv2d:
    """A depthwise convolution (one kxk filter per channel: groups = channels)."""
    return nn.Conv2d(C, C, kernel_size, stride, padding, dilation=dilation, groups=C, bias=False)


class PoolBN(nn.Sequential):
    """A pooling op followed by an affine-free BatchNorm, as DARTS searches its pools."""

    def __init__(self, pool: nn.Module, C: int):
        super().__init__(pool, nn.BatchNorm2d(C, affine=False))


class ReLUConvBN(nn.Module):
    """ReLU -> Conv2d -> BatchNorm: DARTS' 1x1 cell-input preprocessing."""

    def __init__(self, C_in: int, C_out: int, kernel_size, stride, padding, affine: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        return self.bn(self.conv(F.relu(x)))


class FactorizedReduce(nn.Module):
    """ReLU -> two 1x1 stride-2 convolutions, the second offset by one pixel, concatenated
    -> BN: halves F and T (even sizes)."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {C_out}")
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        x = F.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class SepConv(nn.Module):
    """Two (ReLU, depthwise kxk, pointwise 1x1, BN) blocks; the first carries the stride."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.block_1 = nn.Sequential(
            depthwise(C_in, kernel_size, stride, padding),
            nn.Conv2d(C_in, C_in, 1, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
        )
        self.block_2 = nn.Sequential(
            nn.ReLU(),
            depthwise(C_in, kernel_size, 1, padding),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.block_2(self.block_1(F.relu(x)))


class DilConv(nn.Module):
    """ReLU -> depthwise kxk with dilation -> pointwise 1x1 -> BN."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            depthwise(C_in, kernel_size, stride, padding, dilation),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(F.relu(x))


class Conv7x1_1x7(nn.Module):
    """ReLU -> conv 1x7 -> conv 7x1 -> BN: DARTS' factorised 7x7 (in the paper, absent from
    the reference code's primitive list: docs/REFERENCE_CODE.md, defect 3)."""

    def __init__(self, C: int, stride: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(C, affine=affine),
        )

    def forward(self, x):
        return self.op(F.relu(x))


class Zero(nn.Module):
    """The `none` op: zeros of the output shape."""

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


CNN_OPS = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": lambda C, stride, affine: nn.Identity() if stride == 1 else FactorizedReduce(C, C, affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine),
    "conv_7x1_1x7": lambda C, stride, affine: Conv7x1_1x7(C, stride, affine),
}


class Recurrent(nn.Module):
    """A j-layer LSTM or tanh RNN over the time steps of each utterance: [B, T, d] -> [B, T, d]."""

    def __init__(self, kind: str, d: int, layers: int):
        super().__init__()
        cls = {"lstm": nn.LSTM, "rnn": nn.RNN}[kind]
        self.rnn = cls(d, d, num_layers=layers, batch_first=True)

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

    What follows the reference code (docs/REFERENCE_CODE.md): the bidirectional recurrent
    net and its dropout, a linear layer scoring the outputs with the final state(s) into 2d
    scores per step, attention weights that multiply the outputs elementwise, the
    concatenation combined by a linear layer 4d -> 2d and projected back to d by another, so
    the op carries its own parameters (paper Table 7: LSTM-Att. only models have about 2.5x
    the parameters of LSTM only).

    Where it differs: the reference reads a [batch, features] matrix as one unbatched
    sequence, so its "time" axis is the batch, it views all layers' final states as
    [batch, -1] (which only fits at batch size 16) and takes its softmax over the feature
    axis (docs/REFERENCE_CODE.md, defect 1). Here the sequence is the utterance ([B, T, d] -> [B, T, d]),
    s is the last layer's final states of that utterance, and the softmax runs over its T
    time steps, so no sample ever reads another. With the softmax over time a purely linear
    score would lose the final state: W_a s is the same at every t and cancels. The tanh
    (additive attention, Bahdanau et al. 2015) makes the state shape how each step is
    scored, with the reference's parameter count unchanged.
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

    def recurrent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(o, s): the recurrent outputs [B, T, 2d] and the last layer's final states
        [B, 2d] (RNN) or [B, 4d] (LSTM)."""
        o, state = self.rnn(x)
        finals = state if self.kind == "lstm" else (state,)
        # h_n / c_n are [layers * 2, B, d]; the last layer's forward and backward are the last two
        return o, torch.cat([f[-2:].transpose(0, 1).reshape(x.shape[0], -1) for f in finals], dim=-1)

    def weights(self, o: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """w: the attention weights [B, T, 2d] of outputs `o` scored with final states `s`
        (each sums to 1 over T, per sample and channel)."""
        s = s.unsqueeze(1).expand(-1, o.shape[1], -1)
        scores = torch.tanh(self.attn(torch.cat([o, s], dim=-1)))
        return torch.softmax(scores, dim=1)

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(o, w): the recurrent outputs [B, T, 2d] and the attention weights [B, T, 2d]."""
        o, s = self.recurrent(x)
        return o, self.weights(o, s)

    def attend(self, o: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """y: the op's output [B, T, d] from its recurrent outputs and final states."""
        w = self.weights(o, s)
        return self.out(self.combine(torch.cat([o, w * o], dim=-1)))

    def forward(self, x):
        return self.attend(*self.recurrent(x))


class DotRecurrentAttention(nn.Module):
    """The `seq_attention="dot"` variant of the attention ops: the plain recurrent net
    (`Recurrent`) followed by residual scaled dot-product self-attention over time.

    Queries, keys and values are the recurrent outputs h of one utterance, so
    out = h + softmax(h h^T / sqrt(d)) h attends across its T steps only (never across the
    batch: docs/REFERENCE_CODE.md, defect 1).  The attention itself has no parameters; the recurrent
    net learns the representation it attends with.  This is not the reference code's form
    (`RecurrentAttention` is); it is kept for comparison.
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


__all__ = ["CNN_OPS", "SEQ_OPS", "SEQ_ATTENTION_FORMS", "depthwise", "drop_path", "PoolBN", "ReLUConvBN", "FactorizedReduce", "SepConv", "DilConv", "Conv7x1_1x7", "Zero", "Recurrent",
           "RecurrentAttention", "DotRecurrentAttention", "SeqZero"]
