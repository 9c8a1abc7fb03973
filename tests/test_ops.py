"""Shapes of every candidate op, and the fast form of the ops, mixed ops and cells
(`emodarts_core.fast`) against the plain one (`emodarts_core.space`)."""

import copy

import pytest
import torch
import torch.nn.functional as F

from emodarts_core.fast.cells import CELL_CLASSES, FastSeqMixedOp
from emodarts_core.fast.ops import to_fast
from emodarts_core.space.cells import MixedOp, SearchCell
from emodarts_core.space.ops import CNN_OPS, SEQ_OPS
from emodarts_core.space.search_space import CNN_PRIMITIVES, SEQ_PRIMITIVES

from precision import assert_as_accurate_as_torch


@pytest.mark.parametrize("name", CNN_PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
def test_cnn_op_keeps_or_halves_shape(name, stride):
    op = CNN_OPS[name](4, stride, True)
    x = torch.randn(2, 4, 8, 12)
    assert op(x).shape == (2, 4, 8 // stride, 12 // stride)


@pytest.mark.parametrize("attention", ["paper", "dot"])
@pytest.mark.parametrize("name", SEQ_PRIMITIVES)
def test_seq_op_keeps_shape(name, attention):
    assert SEQ_OPS[name](6, attention)(torch.randn(3, 5, 6)).shape == (3, 5, 6)


@pytest.mark.parametrize("attention", ["paper", "dot"])
@pytest.mark.parametrize("name", [n for n in SEQ_PRIMITIVES if "att" in n])
def test_seq_attention_stays_within_utterance(name, attention):
    op = SEQ_OPS[name](6, attention).eval()
    x = torch.randn(4, 5, 6)
    torch.testing.assert_close(op(x)[1:2], op(x[1:2]), rtol=1e-5, atol=1e-5)


def _fast(module):
    """`module` (plain) in its fast form."""
    return to_fast(module, CELL_CLASSES)


def _naive(plain: MixedOp, x, weights):
    """Reference DARTS mixed op (paper eq. 2): every op of the plain form, `none` included,
    with its own ReLU, summed term by term, in torch's default layout (the plain form's: on
    a channels-last input torch's CPU backward of the strided 1x1 convolution of
    `FactorizedReduce` corrupts the heap, torch 2.13)."""
    x = x.contiguous()
    return sum(weights[i] * op(x) for i, op in enumerate(plain.ops.values()))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_mixed_op_equals_naive_sum(stride, layout):
    """Exact DARTS on an edge, in both layouts (channels-last runs the fused norms)."""
    torch.manual_seed(0)
    ref = MixedOp(4, stride, CNN_PRIMITIVES)
    mixed = _fast(copy.deepcopy(ref))
    alpha = torch.randn(len(CNN_PRIMITIVES), requires_grad=True)
    x = torch.randn(2, 4, 8, 8).contiguous(memory_format=layout).requires_grad_()
    out = mixed(x, F.relu(x), F.softmax(alpha, -1))
    g_fast = torch.autograd.grad(out.square().sum(), [x, alpha, *mixed.parameters()])

    ref_out = _naive(ref, x, F.softmax(alpha, -1))
    g_ref = torch.autograd.grad(ref_out.square().sum(), [x, alpha, *ref.parameters()])
    x64, alpha64 = (t.detach().double().requires_grad_() for t in (x, alpha))
    ref64 = copy.deepcopy(ref).double()
    out64 = _naive(ref64, x64, F.softmax(alpha64, -1))
    g64 = torch.autograd.grad(out64.square().sum(), [x64, alpha64, *ref64.parameters()])
    # the fast edge reorders the sums of several ops (fused norms, shared ReLU), so its
    # rounding may add up to a few times torch's
    assert_as_accurate_as_torch([out, *g_fast], [ref_out, *g_ref], [out64, *g64], factor=4, what=f"mixed op {layout}")
    assert g_fast[1][CNN_PRIMITIVES.index("none")].abs() > 0  # none's alpha still learns


def test_shared_stride2_phases_change_nothing():
    """A reduction edge reading its state's precomputed subsamples gives the same values and
    gradients as one that slices its input itself."""
    from emodarts_core.fast.conv import stride2_phases
    torch.manual_seed(0)
    mixed = _fast(MixedOp(4, 2, CNN_PRIMITIVES))
    w = F.softmax(torch.randn(len(CNN_PRIMITIVES), dtype=torch.float64), -1)
    mixed.double()
    results = []
    for shared in (False, True):
        x = torch.randn(2, 4, 8, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
        relu_x = F.relu(x)
        out = mixed(x, relu_x, w, stride2_phases(relu_x) if shared else None)
        results.append((out, torch.autograd.grad((out * torch.cos(out)).sum(), [x, *mixed.parameters()])))
    (out, grads), (out_shared, grads_shared) = results
    torch.testing.assert_close(out_shared, out)
    for a, b in zip(grads_shared, grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_stride2_phases_are_the_slices_with_their_gradient_in_the_input_layout(layout):
    from emodarts_core.fast.conv import stride2_phases
    x = torch.randn(2, 3, 6, 8, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    even, odd = stride2_phases(x)
    torch.testing.assert_close(even, x[:, :, ::2, ::2], rtol=0, atol=0)
    torch.testing.assert_close(odd, x[:, :, 1::2, 1::2], rtol=0, atol=0)
    assert even.is_contiguous(memory_format=layout) and odd.is_contiguous(memory_format=layout)
    probe = [torch.randn_like(even), torch.randn_like(odd)]
    grad, = torch.autograd.grad((even * probe[0]).sum() + (odd * probe[1]).sum(), x)
    ref, = torch.autograd.grad((x[:, :, ::2, ::2] * probe[0]).sum() + (x[:, :, 1::2, 1::2] * probe[1]).sum(), x)
    torch.testing.assert_close(grad, ref, rtol=0, atol=0)
    assert grad.is_contiguous(memory_format=layout)
    assert torch.autograd.gradgradcheck(lambda t: stride2_phases(t), (x,))


@pytest.mark.parametrize("reduction", [False, True])
@pytest.mark.parametrize("share_pools", [True, False])
def test_search_cell_equals_its_edges_run_one_by_one(reduction, share_pools):
    """The cell shares each state's ReLU, subsamples and pools between the edges leaving it:
    the same outputs, gradients and norm statistics as each edge reading its state alone."""
    import copy
    torch.manual_seed(0)
    cell = _fast(SearchCell(3, 6, 6, 4, reduction=reduction, reduction_prev=False, primitives=CNN_PRIMITIVES))
    cell.double()
    cell.share_pools = share_pools
    alone = copy.deepcopy(cell)
    gen = torch.Generator().manual_seed(1)
    s0, s1 = (torch.randn(2, 6, 8, 10, dtype=torch.float64, generator=gen)
              .contiguous(memory_format=torch.channels_last).requires_grad_() for _ in range(2))
    alpha = torch.randn(9, len(CNN_PRIMITIVES), dtype=torch.float64, generator=gen, requires_grad=True)

    def one_by_one(s0, s1, w):
        states, e = [alone.preprocess0(s0), alone.preprocess1(s1)], 0
        for _ in range(alone.nodes):
            node = 0
            for h in list(states):
                node = node + alone.edges[e](h, F.relu(h), w[e])
                e += 1
            states.append(node)
        return torch.cat(states[2:], dim=1)

    results = []
    for module, run in ((cell, cell), (alone, one_by_one)):
        out = run(s0, s1, F.softmax(alpha, -1))
        results.append((out, torch.autograd.grad((out * torch.cos(out)).sum(), [s0, s1, alpha, *module.parameters()])))
    (out, grads), (ref, ref_grads) = results
    torch.testing.assert_close(out, ref)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)
    for (name, a), b in zip(cell.named_buffers(), alone.buffers()):
        torch.testing.assert_close(a, b, msg=name)


def test_search_cell_shares_relu_per_state():
    cell = _fast(SearchCell(2, 6, 6, 4, reduction=True, reduction_prev=False, primitives=CNN_PRIMITIVES))
    out = cell(torch.randn(2, 6, 8, 8), torch.randn(2, 6, 8, 8), torch.full((5, 9), 1 / 9))
    assert out.shape == (2, 8, 4, 4)


def test_seq_mixed_op_equals_naive_sum():
    torch.manual_seed(0)
    prims = ("none", "skip_connect", "lstm_1", "rnn_att_1")
    mixed = FastSeqMixedOp(6, prims)
    w = F.softmax(torch.randn(len(prims)), -1)
    x = torch.randn(2, 5, 6)
    ref = w[1] * x + w[2] * mixed.ops["lstm_1"](x) + w[3] * mixed.ops["rnn_att_1"](x)
    mixed64, w64, x64 = copy.deepcopy(mixed).double(), w.double(), x.double()
    ref64 = w64[1] * x64 + w64[2] * mixed64.ops["lstm_1"](x64) + w64[3] * mixed64.ops["rnn_att_1"](x64)
    assert_as_accurate_as_torch(mixed(x, w), ref, ref64, what="seq mixed op")


def test_factorized_reduce_equals_strided_convolutions():
    """The subsample-then-1x1 form computes DARTS' two offset 1x1 stride-2 convolutions (and
    runs on channels-last inputs, where torch's strided 1x1 conv backward corrupts the heap)."""
    import torch.nn.functional as F
    from emodarts_core.space.ops import FactorizedReduce
    torch.manual_seed(0)
    op = _fast(FactorizedReduce(4, 6, affine=False).double())  # float64: BN's weight gradients cancel
    x = torch.randn(2, 4, 10, 12, dtype=torch.float64, requires_grad=True)
    ref = op.bn(torch.cat([F.conv2d(F.relu(x), op.conv_1.weight, stride=2),
                           F.conv2d(F.relu(x)[:, :, 1:, 1:], op.conv_2.weight, stride=2)], dim=1))
    g_ref = torch.autograd.grad(ref.square().sum(), [x, op.conv_1.weight, op.conv_2.weight])
    xl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    out = op(xl)
    g = torch.autograd.grad(out.square().sum(), [xl, op.conv_1.weight, op.conv_2.weight])
    torch.testing.assert_close(out, ref)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b)


def _value_and_grads(fn, x, params):
    out = fn(x)
    return out, torch.autograd.grad((out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum(),
                                    [x, *params])


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("size", [(10, 12), (9, 11), (1, 7), (2, 1)])
def test_avg_pool_as_convolution_equals_average_pooling(stride, layout, size):
    """The CPU convolution form of avg_pool_3x3 gives AvgPool2d's values and input gradient,
    with the windows' sizes at the borders of even, odd and one-pixel axes."""
    op = _fast(CNN_OPS["avg_pool_3x3"](3, stride, False))
    x = torch.randn(2, 3, *size, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    reference = torch.nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    out, (g,) = _value_and_grads(op, x, [])
    ref, (g_ref,) = _value_and_grads(reference, x, [])
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("name", ["dil_conv_3x3", "dil_conv_5x5"])
def test_strided_dilated_conv_via_subsample_equals_the_strided_kernel(name):
    """On reduction edges the dilated depthwise conv reads only the subsample it computes on."""
    torch.manual_seed(0)
    op = _fast(CNN_OPS[name](4, 2, True).double())
    depthwise, pointwise, bn = op.op
    assert depthwise.subsample
    x = torch.randn(2, 4, 10, 12, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    params = [depthwise.weight, pointwise.weight, bn.weight]
    out, grads = _value_and_grads(op, x, params)
    ref, grads_ref = _value_and_grads(lambda t: bn(pointwise(depthwise(F.relu(t)))), x, params)
    torch.testing.assert_close(out, ref)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b)


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("channels", [8, 16])
def test_batch_norm_equals_torchs_with_its_single_thread_backward(two_threads, affine, channels):
    """fast.norms.BatchNorm2d: torch's values, gradients and running statistics, also where its
    backward runs on one thread (channels-last, channels not a multiple of 16)."""
    from emodarts_core.fast.norms import BatchNorm2d
    torch.manual_seed(0)
    ours, plain = BatchNorm2d(channels, affine=affine).double(), torch.nn.BatchNorm2d(channels, affine=affine).double()
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(3, channels, 6, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    params = [p for p in (ours.weight, ours.bias) if p is not None]
    for _ in range(2):  # the running statistics follow over several batches
        out, grads = _value_and_grads(ours, x, params)
        ref, grads_ref = _value_and_grads(plain, x, [p for p in (plain.weight, plain.bias) if p is not None])
        torch.testing.assert_close(out, ref)
        for a, b in zip(grads, grads_ref):
            torch.testing.assert_close(a, b)
    for name, buffer in plain.named_buffers():
        torch.testing.assert_close(getattr(ours, name), buffer)
    assert torch.get_num_threads() == 2  # the backward gave its threads back


def test_batch_norm_single_thread_backward_has_exact_double_backward(two_threads):
    from emodarts_core.fast.norms import BatchNorm2d
    bn = BatchNorm2d(3).double()
    x = torch.randn(4, 3, 5, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradcheck(bn, (x,)) and torch.autograd.gradgradcheck(bn, (x,))


@pytest.fixture
def fused_on_every_map(monkeypatch):
    """The fused norm on maps of any size (by default small maps keep torch's batch norm:
    `norms.FUSED_MIN_PIXELS`), so that its tests reach every folding on small maps."""
    from emodarts_core.fast import norms
    monkeypatch.setattr(norms, "FUSED_MIN_PIXELS", 0)


@pytest.mark.parametrize("pixels_over_threshold", [-1, 0])
def test_small_maps_keep_torchs_norm_and_large_ones_fuse(pixels_over_threshold):
    """`acc + w * bn(z)` runs as the fused node from `FUSED_MIN_PIXELS` pixels on and as
    torch's batch norm, multiply and add below; both give the plain expression's values,
    gradients and running statistics."""
    from emodarts_core.fast import norms
    from emodarts_core.fast.norms import FUSED_MIN_PIXELS, BatchNorm2d, weighted_batch_norm
    torch.manual_seed(0)
    width = FUSED_MIN_PIXELS // (2 * 64) + pixels_over_threshold  # 2 x 64 x width pixels
    fused = pixels_over_threshold >= 0
    fast_bn, plain_bn = BatchNorm2d(4, affine=False).double(), torch.nn.BatchNorm2d(4, affine=False).double()
    z = torch.randn(2, 4, 64, width, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    acc, w = torch.randn_like(z), torch.tensor(0.3, dtype=torch.float64)
    fast_in = [t.clone().requires_grad_() for t in (acc, z, w)]
    plain_in = [t.clone().requires_grad_() for t in (acc, z, w)]
    out = weighted_batch_norm(*fast_in, fast_bn)
    assert out.grad_fn.name().startswith("_WeightedBatchNorm") == fused
    assert norms._fusable(fast_bn, z) == fused
    ref = plain_in[0] + plain_in[2] * plain_bn(plain_in[1])
    torch.testing.assert_close(out, ref)
    for a, b in zip(torch.autograd.grad(out.square().sum(), fast_in), torch.autograd.grad(ref.square().sum(), plain_in)):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(fast_bn(z), plain_bn(z))  # the module alone, as a second batch
    for name, buffer in plain_bn.named_buffers():
        torch.testing.assert_close(getattr(fast_bn, name), buffer)


@pytest.mark.usefixtures("fused_on_every_map")
@pytest.mark.parametrize("with_sum", [False, True])
@pytest.mark.parametrize("channels", [3, 8, 16])
@pytest.mark.parametrize("batch, height, width", [(4, 6, 5), (4, 5, 7), (3, 5, 7), (2, 16, 16)])
def test_weighted_batch_norm_equals_norm_times_weight_plus_sum(with_sum, channels, batch, height, width):
    """The fused `acc + w * bn(z)` node: the plain expression's values, gradients (for acc,
    z and the op weight) and running statistics, batch after batch. The pixel counts fold
    8, 4, 1 and up to 128 pixels per row (`_Folded`); the maps' mean is 1.5 standard
    deviations, so the statistics come from the sums of z and z^2."""
    from emodarts_core.fast.norms import weighted_batch_norm
    torch.manual_seed(0)
    fused_bn, plain_bn = (torch.nn.BatchNorm2d(channels, affine=False).double() for _ in range(2))
    for _ in range(2):
        z = 3 + 2 * torch.randn(batch, channels, height, width, dtype=torch.float64)
        z = z.contiguous(memory_format=torch.channels_last)
        acc = torch.randn_like(z) if with_sum else None
        w = torch.tensor(0.3, dtype=torch.float64)
        weight = torch.linspace(-1, 1, z.numel(), dtype=z.dtype).view_as(z)
        fused_in = [t.clone().requires_grad_() for t in (acc, z, w) if t is not None]
        plain_in = [t.clone().requires_grad_() for t in (acc, z, w) if t is not None]
        out = weighted_batch_norm(*([None] if acc is None else []), *fused_in, fused_bn)
        assert out.grad_fn.name().startswith("_WeightedBatchNorm")  # the fused path ran
        ref = plain_in[-1] * plain_bn(plain_in[-2]) + (plain_in[0] if with_sum else 0)
        torch.testing.assert_close(out, ref)
        grads = torch.autograd.grad((out * weight).sum(), fused_in)
        for a, b in zip(grads, torch.autograd.grad((ref * weight).sum(), plain_in)):
            torch.testing.assert_close(a, b)
    for name, buffer in plain_bn.named_buffers():
        torch.testing.assert_close(getattr(fused_bn, name), buffer)


@pytest.mark.usefixtures("fused_on_every_map")
def test_weighted_batch_norm_has_exact_double_backward():
    """Second-order checks (the architect's exact-hypergradient test differentiates twice)."""
    from emodarts_core.fast.norms import weighted_batch_norm
    bn = torch.nn.BatchNorm2d(3, affine=False).double()
    z = torch.randn(4, 3, 5, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    acc = torch.randn_like(z).requires_grad_()
    w = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    fn = lambda acc, z, w: weighted_batch_norm(acc, z, w, bn)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (acc, z, w)) and torch.autograd.gradgradcheck(fn, (acc, z, w))


@pytest.mark.parametrize("kernel, dilation", [(3, 1), (5, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_flipped_kernel_depthwise_conv_equals_conv2d(kernel, dilation, layout):
    """Values, input and weight gradients of torch's grouped convolution; `depthwise_conv`
    runs the custom backward for dilated kernels only (undilated, torch's own is faster)."""
    from emodarts_core.fast.conv import _FlippedKernelDepthwiseConv, depthwise_conv
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    weight = torch.randn(3, 1, kernel, kernel, dtype=torch.float64, requires_grad=True)
    pad = dilation * (kernel - 1) // 2
    routed = depthwise_conv(x, weight, pad, dilation)
    assert routed.grad_fn.name().startswith("_FlippedKernel") == (dilation > 1)
    out, grads = _value_and_grads(lambda t: _FlippedKernelDepthwiseConv.apply(t, weight, pad, dilation), x, [weight])
    assert out.grad_fn.name().startswith("_FlippedKernel")  # the custom backward ran
    ref, grads_ref = _value_and_grads(lambda t: F.conv2d(t, weight, padding=pad, dilation=dilation, groups=3),
                                      x, [weight])
    torch.testing.assert_close(out, ref)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kernel, dilation", [(3, 1), (5, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("shape", [(2, 3, 10, 12), (2, 8, 8, 8), (2, 3, 9, 11), (2, 40, 6, 8)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_depthwise_weight_grad_equals_torchs(kernel, dilation, shape, layout, monkeypatch):
    """The weight gradient written as sums of 3x3 ones (5x5 as four blocks, dilation 2 as
    four parities of even-sized maps; odd sizes and 32+ channels take torch's kernel) is
    torch's own. The maps here are small, so the size threshold is lowered to 0 to make
    the rewritten forms run."""
    from emodarts_core.fast import conv
    from emodarts_core.fast.conv import depthwise_weight_grad
    monkeypatch.setattr(conv, "_LARGE_MAP_VALUES", 0)
    monkeypatch.setattr(conv, "_LARGE_MAP_CHANNELS", 0)
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64).contiguous(memory_format=layout)
    weight = torch.randn(shape[1], 1, kernel, kernel, dtype=torch.float64, requires_grad=True)
    pad = dilation * (kernel - 1) // 2
    out = F.conv2d(x, weight, padding=pad, dilation=dilation, groups=shape[1])
    grad = torch.randn_like(out)
    expected, = torch.autograd.grad(out, weight, grad)
    torch.testing.assert_close(depthwise_weight_grad(grad, x, kernel, dilation), expected)


@pytest.mark.parametrize("kernel, dilation", [(5, 1), (3, 2), (5, 2)])
def test_depthwise_weight_grad_at_the_paper_presets_size_equals_torchs(kernel, dilation):
    """On a map as large as the paper preset's second cell's (float32, no threshold
    lowered): the rewritten gradient is torch's to float rounding, that is, as close to a
    float64 reference as torch's float32 kernel or a one-by-one float32 sum of each
    entry's 16 x 64 x 64 products; which of the two is closer depends on the CPU's
    kernels, so neither alone bounds it."""
    from emodarts_core.fast.conv import _torch_weight_grad, depthwise_weight_grad
    torch.manual_seed(0)
    x = torch.randn(16, 16, 64, 64).contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(x)
    pad = dilation * (kernel - 1) // 2
    torchs = _torch_weight_grad(grad, x, kernel, pad, dilation)
    reference = _torch_weight_grad(grad.double(), x.double(), kernel, pad, dilation)
    assert_as_accurate_as_torch(depthwise_weight_grad(grad, x, kernel, dilation), torchs, reference,
                                terms=16 * 64 * 64, what=f"{kernel}x{kernel} at dilation {dilation}")


def test_flipped_kernel_depthwise_conv_has_exact_double_backward():
    from emodarts_core.fast.conv import depthwise_conv
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(3, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w: depthwise_conv(x, w, 2, 2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, weight)) and torch.autograd.gradgradcheck(fn, (x, weight))


@pytest.mark.parametrize("channels", [2, 4, 16])
@pytest.mark.parametrize("mean, centred", [(1000.0, True), (1.9, False), (0.0, False)])
def test_fused_norm_is_stable_far_from_zero(channels, mean, centred):
    """In float32, the fused norm's output and gradients stay as close to a float64
    reference as torch's own batch norm: at mean/std 1000 through the centred form (there
    E[z^2] - E[z]^2 lost the digits), and just below the mean at which it is taken
    (mean^2 = 3.6 var) and at mean 0 through the sums of z and z^2."""
    from emodarts_core.fast import norms
    from emodarts_core.fast.norms import weighted_batch_norm

    torch.manual_seed(0)
    z64 = (mean + torch.randn(16, channels, 32, 32, dtype=torch.float64)).contiguous(memory_format=torch.channels_last)
    var32, mean32 = torch.var_mean(z64.float(), dim=(0, 2, 3), correction=0)
    assert norms._centred_form(mean32, var32) == centred
    g = torch.randn(16, channels, 32, 32, dtype=torch.float64)
    w64 = torch.tensor(0.7, dtype=torch.float64)

    def run(fn, dtype):
        z = z64.detach().to(dtype).clone(memory_format=torch.channels_last).requires_grad_()
        w = w64.detach().to(dtype).clone().requires_grad_()
        out = fn(z, w)
        out.backward(g.to(dtype))
        return out.double(), z.grad.double(), w.grad.double()

    def plain(z, w):
        return w * torch.nn.functional.batch_norm(z, None, None, training=True, eps=1e-5)

    def fused(z, w):
        bn = torch.nn.BatchNorm2d(channels, affine=False).to(z.dtype)
        return weighted_batch_norm(None, z, w, bn)

    assert_as_accurate_as_torch(run(fused, torch.float32), run(plain, torch.float32), run(plain, torch.float64),
                                what="fused norm (output, z and w gradients)")
