"""The stacked network's CNN cells with the fast form's savings (`fast.stacked_cells`,
docs/PERFORMANCE.md "Many searches in one step"): each copy's norm fused with that copy's
op weight, each state's ReLU, subsamples and pools shared by its edges, the 5x5 depthwise
weight gradients as sums of 3x3 ones. Compared in float64 with a reference: the per-copy
fused norm with K separate `F.batch_norm`s, and copy k of a stacked network with copy k's
plain network (forward, every gradient, the running statistics), with the fused node and
the rewritten gradients forced on the test's small maps; the strided depthwise
convolutions' weight gradient from the phases of the padded map against torch's. A fused norm that hands one
copy's op weight to another copy's channels must fail that comparison.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from emodarts_core.fast import norms, stacked_layers
from emodarts_core.fast.norms import fused_batch_norm
from emodarts_core.fast.stacked_network import StackedSearchNetwork
from emodarts_core.space.search_network import SearchNetwork
from loop_helpers import tiny_net

K = 3



def _reference_norm(acc, z, w, C):
    """acc + w_k * batch_norm(z_k), copy by copy, with torch's own batch norm."""
    terms = [w[k] * F.batch_norm(z[:, k * C:(k + 1) * C], None, None, training=True, eps=1e-5) for k in range(K)]
    return acc + torch.cat(terms, dim=1)


@pytest.mark.parametrize("shift", [0.0, 30.0])  # 30: the centred form (mean >> spread)
def test_fused_norm_with_one_weight_per_copy_equals_k_separate_norms(float64, shift):
    C = 4
    gen = torch.Generator().manual_seed(0)
    cl = torch.channels_last
    z = (torch.randn(2, K * C, 5, 6, generator=gen) + shift).contiguous(memory_format=cl).requires_grad_()
    acc = torch.randn(2, K * C, 5, 6, generator=gen).contiguous(memory_format=cl).requires_grad_()
    w = torch.rand(K, generator=gen).requires_grad_()
    running = [torch.zeros(K * C), torch.ones(K * C)]
    out = fused_batch_norm(acc, z, w, *running, 0.1, 1e-5)
    ref = _reference_norm(acc, z, w, C)
    probe = torch.cos(torch.arange(out.numel(), dtype=out.dtype)).view_as(out)
    grads = torch.autograd.grad((out * probe).sum(), (acc, z, w))
    grads_ref = torch.autograd.grad((ref * probe).sum(), (acc, z, w))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    var, mean = torch.var_mean(z.detach(), dim=(0, 2, 3), correction=1)
    torch.testing.assert_close(running[0], 0.1 * mean)
    torch.testing.assert_close(running[1], 0.9 + 0.1 * var)
    fn = lambda acc, z, w: fused_batch_norm(acc, z, w, torch.zeros(K * C), torch.ones(K * C), 0.1, 1e-5)  # noqa: E731
    small = [t.detach()[:, :, :3, :3].contiguous(memory_format=cl).requires_grad_() for t in (acc, z)]
    assert torch.autograd.gradcheck(fn, (*small, w)) and torch.autograd.gradgradcheck(fn, (*small, w))


def _networks():
    plain = []
    for k in range(K):
        torch.manual_seed(20 + k)
        net = SearchNetwork(tiny_net(seq_cells=0)).train()
        with torch.no_grad():  # α away from uniform, so each copy weighs its ops its own way
            for _, alpha in net.named_alphas():
                alpha.normal_()
        plain.append(net)
    for net in plain:
        for m in net.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    return plain, StackedSearchNetwork(plain).train()


def _stacked_against_plain(monkeypatch) -> float:
    """The largest difference between copy k of a stacked network and its plain network:
    logits, the gradients of every parameter and α, and the running statistics, with the
    fused norm and the rewritten depthwise gradients forced on (their calls counted)."""
    calls, strided = [], []
    fused, stride2 = stacked_layers.fused_batch_norm, stacked_layers.stride2_depthwise_conv
    monkeypatch.setattr(norms, "FUSED_MIN_PIXELS", 0)
    monkeypatch.setattr(stacked_layers, "fused_batch_norm", lambda *a: calls.append(1) or fused(*a))
    monkeypatch.setattr(stacked_layers, "stride2_depthwise_conv", lambda *a: strided.append(1) or stride2(*a))
    monkeypatch.setattr(stacked_layers.StackedConv2d, "rewrite_below",
                        {(k, d): float("inf") for k in (3, 5) for d in (1, 2)})
    plain, stacked = _networks()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(K, 4, 1, *tiny_net().input_size, generator=gen)
    y = torch.randint(0, tiny_net().n_classes, (K, 4), generator=gen)
    losses = stacked.losses(x, y)
    losses.sum().backward()
    assert calls, "the fused norm did not run"
    assert strided, "no strided 5x5 depthwise convolution took the phases' weight gradient"
    worst = 0.0
    for k, net in enumerate(plain):
        loss = net.loss(x[k], y[k])
        loss.backward()
        worst = max(worst, float((loss - losses[k]).detach().abs()))
        params = dict(stacked.named_parameters())
        for name, p in net.named_parameters():
            worst = max(worst, float((p.grad - params[name].grad[k]).abs().max()))
        buffers = dict(stacked.named_buffers())
        for name, b in net.named_buffers():
            worst = max(worst, float((b.double() - buffers[name][k].double()).abs().max()))
    return worst


def test_stacked_cells_equal_each_copys_plain_network(float64, monkeypatch):
    assert _stacked_against_plain(monkeypatch) < 1e-10


def test_a_fused_norm_that_hands_weights_to_other_copies_fails(float64, monkeypatch):
    """The op weights tiled across the channels (copy k's weight on every K-th channel)
    instead of one run of C channels per copy."""
    monkeypatch.setattr(norms, "_per_channel", lambda w, like: w if w.dim() == 0 else w.repeat(like.numel() // w.numel()))
    assert _stacked_against_plain(monkeypatch) > 1e-4


@pytest.mark.parametrize("kernel, dilation", [(5, 1), (5, 2), (3, 2)])
def test_rewritten_depthwise_weight_grad_at_stacked_channel_counts_equals_torchs(float64, kernel, dilation):
    """`rewrite=True` (the stacked maps' 32+ channels, small maps) takes the sums of 3x3
    gradients where the single search's thresholds would not; torch's own in float64."""
    from emodarts_core.fast.conv import depthwise_conv
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 40, 8, 6, generator=gen).contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(40, 1, kernel, kernel, generator=gen, requires_grad=True)
    pad = dilation * (kernel - 1) // 2
    out = depthwise_conv(x, weight, pad, dilation, rewrite=True)
    assert out.grad_fn.name().startswith("_FlippedKernel")
    ref = F.conv2d(x, weight, padding=pad, dilation=dilation, groups=40)
    grad = torch.randn(out.shape, generator=gen)
    for a, b in zip(torch.autograd.grad(out, (x, weight), grad), torch.autograd.grad(ref, (x, weight), grad)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("shape", [(2, 6, 8, 10), (3, 40, 6, 6), (1, 3, 2, 4)])
def test_stride2_depthwise_weight_grad_from_phases_equals_torchs(float64, kernel, shape):
    """`fast.conv.stride2_depthwise_conv` (a reduction edge's first `sep_conv` convolution):
    value and both gradients against torch's strided `F.conv2d` in float64; a phase taken
    at the wrong parity (x[r::2] for padded[r::2], right only for an even padding) fails."""
    from emodarts_core.fast import conv
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(*shape, generator=gen).contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(shape[1], 1, kernel, kernel, generator=gen, requires_grad=True)
    out = conv.stride2_depthwise_conv(x, weight)
    assert out.grad_fn.name().startswith("_Stride2Depthwise")
    ref = F.conv2d(x, weight, stride=2, padding=(kernel - 1) // 2, groups=shape[1])
    grad = torch.randn(out.shape, generator=gen)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    expected = torch.autograd.grad(ref, (x, weight), grad)
    for a, b in zip(torch.autograd.grad(out, (x, weight), grad), expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    if kernel == 3:  # padding 1: the phases of the padded map are x's other-parity phases
        wrong = x.detach()
        pad = (kernel - 1) // 2
        phases = [F.pad(wrong[:, :, r::2, s::2], ((pad + 1 - s) // 2, pad - (pad + 1 - s) // 2,
                                                   (pad + 1 - r) // 2, pad - (pad + 1 - r) // 2))
                  for r in (0, 1) for s in (0, 1)]
        broken = torch.zeros_like(weight)
        for (r, s), phase in zip([(0, 0), (0, 1), (1, 0), (1, 1)], phases):
            part = conv._torch_weight_grad(grad, phase, pad + 1, 0, 1)
            broken[:, :, r::2, s::2] = part[:, :, :len(range(r, kernel, 2)), :len(range(s, kernel, 2))]
        assert (broken - expected[1]).abs().max() > 1e-3
