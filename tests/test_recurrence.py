"""The SeqNN edge's tanh RNN candidates run as one batched recurrence: the same values and
gradients as torch's own nn.RNN modules, parameters read where they are."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from emodarts_core.fast.cells import FastSeqMixedOp
from emodarts_core.fast.recurrence import TanhRecurrence, stackable, stacked_tanh_rnn
from emodarts_core.space.search_space import SEQ_PRIMITIVES


def _rnns(layers, d=6):
    torch.manual_seed(0)
    return [nn.RNN(d, d, num_layers=n, batch_first=True).double() for n in layers]


def _x(B=3, T=5, d=6):
    return torch.randn(B, T, d, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)


def _values_and_grads(outputs, leaves):
    probe = [torch.cos(torch.arange(o.numel(), dtype=o.dtype)).view_as(o) for o in outputs]
    loss = sum((o * p).sum() for o, p in zip(outputs, probe))
    return outputs, torch.autograd.grad(loss, leaves)


def test_stacked_rnns_equal_each_nn_rnn_in_values_and_gradients():
    rnns, x = _rnns((1, 2, 3, 4, 1, 2)), _x()
    leaves = [x, *[p for r in rnns for p in r.parameters()]]
    ref, ref_grads = _values_and_grads([r(x)[0] for r in rnns], leaves)
    out, grads = _values_and_grads(stacked_tanh_rnn(x, rnns), leaves)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


def test_tanh_recurrence_gradients_match_finite_differences():
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(4, 2, 3, 5, dtype=torch.float64, generator=gen, requires_grad=True)  # [T, G, B, d]
    w = (0.5 * torch.randn(2, 5, 5, dtype=torch.float64, generator=gen)).requires_grad_()
    assert torch.autograd.gradcheck(TanhRecurrence.apply, (z, w))


class _Stacked(nn.Module):
    def __init__(self, rnns):
        super().__init__()
        self.rnns = nn.ModuleList(rnns)

    def forward(self, x):
        return stacked_tanh_rnn(x, list(self.rnns))


def test_stacked_rnns_read_parameters_substituted_by_functional_call():
    """The architect's unrolled step swaps parameters in with functional_call."""
    stacked, x = _Stacked(_rnns((1, 2))), _x()
    swapped = {n: p.detach() + 0.1 for n, p in stacked.named_parameters()}
    got = functional_call(stacked, swapped, (x,))
    for i, rnn in enumerate(stacked.rnns):
        own = {n.split(".", 2)[2]: t for n, t in swapped.items() if n.startswith(f"rnns.{i}.")}
        torch.testing.assert_close(got[i], functional_call(rnn, own, (x,))[0])
        assert not torch.allclose(got[i], rnn(x)[0])


def test_only_plain_tanh_rnns_are_stacked():
    d = 4
    assert stackable(nn.RNN(d, d, 2, batch_first=True))
    assert not stackable(nn.LSTM(d, d, batch_first=True))
    assert not stackable(nn.RNN(d, d, nonlinearity="relu", batch_first=True))
    assert not stackable(nn.RNN(d, d))  # time-major
    assert not stackable(nn.RNN(d, 2 * d, batch_first=True))
    dropped = nn.RNN(d, d, 2, batch_first=True, dropout=0.5)
    assert not stackable(dropped) and stackable(dropped.eval())
    assert not stackable(None)


@pytest.mark.parametrize("attention, n_stacked", [("paper", 4), ("dot", 6)])
def test_seq_mixed_op_runs_its_rnns_stacked_and_equals_the_naive_sum(attention, n_stacked):
    """rnn_1..4 always stack; rnn_att_1/2 only in the "dot" form (the paper form's RNNs are
    bidirectional and run as they are)."""
    torch.manual_seed(0)
    mixed = FastSeqMixedOp(6, SEQ_PRIMITIVES, attention).double()
    x = _x()
    stacked = mixed._stacked_rnn_outputs(x)
    assert len(stacked) == n_stacked
    assert all(name.startswith("rnn_") for name in stacked)
    alpha = torch.randn(len(SEQ_PRIMITIVES), dtype=torch.float64, requires_grad=True)
    leaves = [x, alpha, *mixed.parameters()]
    torch.manual_seed(1)  # the same dropout masks (between the paper form's layers) in both
    out, grads = _values_and_grads([mixed(x, F.softmax(alpha, -1))], leaves)
    w = F.softmax(alpha, -1)
    torch.manual_seed(1)
    naive = sum(w[i] * op(x) for i, op in enumerate(mixed.ops.values()))
    ref, ref_grads = _values_and_grads([naive], leaves)
    torch.testing.assert_close(out[0], ref[0])
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("scope_ops", [("none", "skip_connect", "rnn_1"), ("none", "lstm_1", "lstm_2")])
def test_edges_with_fewer_than_two_rnns_run_them_as_they_are(scope_ops):
    mixed = FastSeqMixedOp(6, scope_ops).double()
    assert mixed._stacked_rnn_outputs(_x()) == {}


def test_tanh_recurrence_double_backward_is_exact():
    """Second-order DARTS' double-backward reference differentiates through the recurrence's
    backward (`create_graph`)."""
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(4, 2, 3, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    w = (0.5 * torch.randn(2, 5, 5, dtype=torch.float64, generator=gen)).requires_grad_()
    assert torch.autograd.gradgradcheck(TanhRecurrence.apply, (z, w))


def test_stacked_rnns_double_backward_equals_nn_rnn():
    rnns, x = _rnns((1, 2)), _x()
    leaves = [x, *[p for r in rnns for p in r.parameters()]]

    def hessian_probe(outputs):
        loss = sum((o.tanh() ** 2).sum() for o in outputs)
        grads = torch.autograd.grad(loss, leaves, create_graph=True)
        return torch.autograd.grad(sum((g * g).sum() for g in grads), leaves)

    for a, b in zip(hessian_probe(stacked_tanh_rnn(x, rnns)), hessian_probe([r(x)[0] for r in rnns])):
        torch.testing.assert_close(a, b)
