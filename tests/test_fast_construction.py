"""A fast class built directly is the fast form of the same plain class converted.

`fast.ops.to_fast` gives built plain modules their fast class (fast/ops.py says why the
fast form is made by conversion); the fast containers convert their own children when
they are built. Each check builds one fast module directly and one by converting a plain
module, from the same seed, and requires the same classes at every position, the same
values and gradients bit for bit, and both within float32 rounding of the plain form's
float64 sum, the paper's eq. 2. The fused norms run on every map here
(`norms.FUSED_MIN_PIXELS` = 0), and the test counts that they did, so a directly built
mixed op that kept its plain ops would fail.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from emodarts_core.fast import norms
from emodarts_core.fast.cells import CELL_CLASSES, FastMixedOp, FastSearchCell, FastSeqMixedOp
from emodarts_core.fast.ops import to_fast
from emodarts_core.space.cells import MixedOp, SearchCell, SeqMixedOp
from emodarts_core.space.search_space import CNN_PRIMITIVES
from precision import assert_as_accurate_as_torch


@pytest.fixture
def fused_calls(monkeypatch):
    """The fused norm on every map; returns a list that grows by one per fused call."""
    monkeypatch.setattr(norms, "FUSED_MIN_PIXELS", 0)
    calls = []
    real = norms._WeightedBatchNorm.apply
    monkeypatch.setattr(norms._WeightedBatchNorm, "apply", lambda *a: calls.append(1) or real(*a))
    return calls


def built_both_ways(plain_class, fast_class, *args, **kwargs):
    """(plain, built fast, converted fast), all three from seed 0."""
    torch.manual_seed(0)
    plain = plain_class(*args, **kwargs)
    torch.manual_seed(0)
    direct = fast_class(*args, **kwargs)
    converted = to_fast(copy.deepcopy(plain), CELL_CLASSES)
    layout = [(name, type(m)) for name, m in direct.named_modules()]
    assert layout == [(name, type(m)) for name, m in converted.named_modules()]
    assert type(direct) is type(converted) is fast_class
    for name, value in plain.state_dict().items():
        assert torch.equal(direct.state_dict()[name], value), name
    return plain, direct, converted


def outputs_and_grads(module, inputs: list, run) -> list:
    """`run(module, *inputs)`, then the gradients of its squared sum for the inputs and the parameters."""
    out = run(module, *inputs)
    return [out, *torch.autograd.grad(out.square().sum(), [*inputs, *module.parameters()])]


def assert_same_and_exact(direct, converted, plain, inputs, run_fast, run_plain, what, terms=1):
    got = outputs_and_grads(direct, inputs, run_fast)
    assert all(torch.equal(a, b) for a, b in zip(got, outputs_and_grads(converted, inputs, run_fast))), what
    torchs = outputs_and_grads(plain, inputs, run_plain)
    inputs64 = [t.detach().double().requires_grad_() for t in inputs]
    reference = outputs_and_grads(copy.deepcopy(plain).double(), inputs64, run_plain)
    # the fast form sums in another order (fused norms, shared ReLUs): within a few times torch's
    # rounding, or that of summing `terms` products (a weight gradient sums one per pixel)
    assert_as_accurate_as_torch(got, torchs, reference, factor=4, terms=terms, what=what)


@pytest.mark.parametrize("stride", [1, 2])
def test_a_mixed_op_built_fast_is_a_plain_one_converted(stride, fused_calls):
    plain, direct, converted = built_both_ways(MixedOp, FastMixedOp, 4, stride, CNN_PRIMITIVES)
    torch.manual_seed(1)
    x = torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    alpha = torch.randn(len(CNN_PRIMITIVES), requires_grad=True)
    assert_same_and_exact(direct, converted, plain, [x, alpha],
                          lambda m, x, a: m(x, F.relu(x), F.softmax(a, -1)),
                          lambda m, x, a: m(x.contiguous(), F.softmax(a, -1)), f"mixed op, stride {stride}")
    assert fused_calls  # the directly built op fused its norms


@pytest.mark.parametrize("reduction", [False, True])
def test_a_search_cell_built_fast_is_a_plain_one_converted(reduction, fused_calls):
    plain, direct, converted = built_both_ways(SearchCell, FastSearchCell, 2, 6, 6, 4, reduction=reduction,
                                               reduction_prev=False, primitives=CNN_PRIMITIVES)
    assert all(type(edge) is FastMixedOp for edge in direct.edges)
    torch.manual_seed(1)
    s0, s1 = (torch.randn(2, 6, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
              for _ in range(2))
    alpha = torch.randn(len(direct.edges), len(CNN_PRIMITIVES), requires_grad=True)
    assert_same_and_exact(direct, converted, plain, [s0, s1, alpha],
                          lambda m, s0, s1, a: m(s0, s1, F.softmax(a, -1)),
                          lambda m, s0, s1, a: m(s0.contiguous(), s1.contiguous(), F.softmax(a, -1)),
                          f"search cell, reduction {reduction}", terms=2 * 8 * 8)
    assert fused_calls


def test_a_seq_mixed_op_built_fast_is_a_plain_one_converted():
    prims = ("none", "skip_connect", "lstm_1", "rnn_1", "rnn_att_1")
    plain, direct, converted = built_both_ways(SeqMixedOp, FastSeqMixedOp, 6, prims)
    torch.manual_seed(1)
    x = torch.randn(2, 5, 6, requires_grad=True)
    alpha = torch.randn(len(prims), requires_grad=True)
    run = lambda m, x, a: m(x, F.softmax(a, -1))  # noqa: E731
    assert_same_and_exact(direct, converted, plain, [x, alpha], run, run, "seq mixed op")
