"""The SeqNN edge's tanh RNN candidates run as one batched recurrence: the same values and
gradients as torch's own nn.RNN modules (one-way and two-way, with the same dropout masks
between layers), parameters read where they are."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from emodarts_core.fast.cells import FastSeqMixedOp
from emodarts_core.fast.recurrence import TanhRecurrence, draws_dropout, stackable, stacked_tanh_rnn
from emodarts_core.space.search_space import SEQ_PRIMITIVES


def _rnns(layers, d=6, two_way=()):
    """One-way RNNs of `layers` layers, then two-way ones of `two_way` (n, dropout) each."""
    torch.manual_seed(0)
    return ([nn.RNN(d, d, num_layers=n, batch_first=True).double() for n in layers]
            + [nn.RNN(d, d, num_layers=n, batch_first=True, bidirectional=True, dropout=p).double()
               for n, p in two_way])


def _x(B=3, T=5, d=6):
    return torch.randn(B, T, d, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)


def _values_and_grads(outputs, leaves):
    probe = [torch.cos(torch.arange(o.numel(), dtype=o.dtype)).view_as(o) for o in outputs]
    loss = sum((o * p).sum() for o, p in zip(outputs, probe))
    return outputs, torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("two_way", [(), ((1, 0.0), (2, 0.3)), ((3, 0.5),), ((2, 0.0), (3, 0.0))],
                         ids=["one-way", "paper-attention", "three-layer-dropout", "two-way-only-deeper"])
def test_stacked_rnns_equal_each_nn_rnn_in_values_and_gradients(two_way):
    """Each output and every gradient (input, both directions' weights) equal to the
    modules run one after the other, in training, from the same random state: the dropout
    between a two-way RNN's layers draws the same masks."""
    rnns, x = _rnns((1, 2, 3, 4, 1, 2), two_way=two_way), _x()
    leaves = [x, *[p for r in rnns for p in r.parameters()]]
    torch.manual_seed(5)
    ref, ref_grads = _values_and_grads([r(x)[0] for r in rnns], leaves)
    torch.manual_seed(5)
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
    assert stackable(nn.RNN(d, d, 2, batch_first=True, bidirectional=True))
    dropped = nn.RNN(d, d, 2, batch_first=True, dropout=0.5)
    assert stackable(dropped) and draws_dropout(dropped) and not draws_dropout(dropped.eval())
    with pytest.warns(UserWarning, match="dropout"):  # torch's warning: one layer has nothing to drop between
        one_layer = nn.RNN(d, d, 1, batch_first=True, dropout=0.5)
    assert not draws_dropout(one_layer)
    assert not stackable(None)


def test_two_rnns_that_draw_masks_are_refused():
    """Run depth by depth, two RNNs with dropout would draw their masks in another order
    than one after the other."""
    rnns = _rnns((), two_way=((2, 0.3), (2, 0.3)))
    with pytest.raises(ValueError, match="at most one"):
        stacked_tanh_rnn(_x(), rnns)


@pytest.mark.parametrize("attention", ["paper", "dot"])
def test_seq_mixed_op_runs_its_rnns_stacked_and_equals_the_naive_sum(attention):
    """rnn_1..4 and rnn_att_1/2 stack, in both attention forms (the paper form's are
    two-way, rnn_att_2's with dropout between its layers); the edge equals its naive sum,
    the same dropout masks drawn in the same order (lstm_att_2 draws before rnn_att_2)."""
    torch.manual_seed(0)
    mixed = FastSeqMixedOp(6, SEQ_PRIMITIVES, attention).double()
    x = _x()
    stacked = mixed._stacked_rnn_outputs(x)
    assert sorted(stacked) == ["rnn_1", "rnn_2", "rnn_3", "rnn_4", "rnn_att_1", "rnn_att_2"]
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


def test_of_two_candidates_that_draw_masks_only_the_first_is_stacked():
    """With rnn_att_1 given dropout between two layers too, rnn_att_1 runs stacked (where
    the plain form runs it) and rnn_att_2 as torch's module after it: every mask is drawn
    in the plain form's order, and the edge equals its naive sum."""
    torch.manual_seed(0)
    mixed = FastSeqMixedOp(6, SEQ_PRIMITIVES).double()
    mixed.ops["rnn_att_1"].rnn = nn.RNN(6, 6, 2, batch_first=True, bidirectional=True, dropout=0.4).double()
    x = _x()
    assert mixed._stacked_names(x) == ["rnn_1", "rnn_2", "rnn_3", "rnn_4", "rnn_att_1"]
    w = F.softmax(torch.randn(len(SEQ_PRIMITIVES), dtype=torch.float64), -1)
    torch.manual_seed(2)
    out = mixed(x, w)
    torch.manual_seed(2)
    torch.testing.assert_close(out, sum(w[i] * op(x) for i, op in enumerate(mixed.ops.values())))


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


@pytest.mark.parametrize("two_way", [(), ((1, 0.0), (2, 0.0))])
def test_stacked_rnns_double_backward_equals_nn_rnn(two_way):
    rnns, x = _rnns((1, 2), two_way=two_way), _x()
    leaves = [x, *[p for r in rnns for p in r.parameters()]]

    def hessian_probe(outputs):
        loss = sum((o.tanh() ** 2).sum() for o in outputs)
        grads = torch.autograd.grad(loss, leaves, create_graph=True)
        return torch.autograd.grad(sum((g * g).sum() for g in grads), leaves)

    for a, b in zip(hessian_probe(stacked_tanh_rnn(x, rnns)), hessian_probe([r(x)[0] for r in rnns])):
        torch.testing.assert_close(a, b)
