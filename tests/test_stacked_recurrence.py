"""A stacked SeqNN edge runs its tanh RNN candidates, all K copies, as one batched
recurrence per layer depth (`fast.stacked_recurrence`, docs/PERFORMANCE.md "Many searches
in one step"): the same values and gradients as the candidates run one by one
(`StackedRecurrent` each) with the same dropout masks, and as each copy's plain edge. A
grouping that mixes two copies' or two candidates' weights must fail the comparison.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from emodarts_core.fast import stacked_network, stacked_recurrence
from emodarts_core.fast.stacked_network import StackedSearchNetwork
from emodarts_core.space.search_network import SearchNetwork
from loop_helpers import tiny_net

K = 3



def _networks(**overrides):
    plain = []
    for k in range(K):
        torch.manual_seed(10 + k)
        plain.append(SearchNetwork(tiny_net(**overrides)).train())
    return plain, StackedSearchNetwork(plain).train()


def _inputs(net, d):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(K, 4, 6, d, generator=gen).requires_grad_()
    weights = F.softmax(torch.randn(K, net.alpha_seq.shape[-1], generator=gen), dim=-1)
    return x, weights


def _edge_values_and_grads(edge, x, weights, seed=7):
    """The edge's output and the gradients of a fixed probe of it (input and parameters)."""
    torch.manual_seed(seed)
    out = edge(x, weights)
    probe = torch.cos(torch.arange(out.numel(), dtype=out.dtype)).view_as(out)
    leaves = [x, *edge.parameters()]
    return [out, *torch.autograd.grad((out * probe).sum(), leaves, allow_unused=True)]


def _difference(a, b) -> float:
    return max(float((u - v).detach().abs().max()) for u, v in zip(a, b) if u is not None)


def _one_by_one(monkeypatch, edge, x, weights):
    with monkeypatch.context() as m:  # every candidate through its own StackedRecurrent
        m.setattr(stacked_network, "grouped_names", lambda items, x, lstm: [])
        return _edge_values_and_grads(edge, x, weights)


@pytest.mark.parametrize("attention", ["paper", "dot"])
def test_grouped_edge_equals_its_candidates_one_by_one_with_dropout(float64, monkeypatch, attention):
    """In training, the paper form's rnn_att_2 drawing masks between its layers."""
    _, net = _networks(seq_attention=attention)
    edge = net.seq_cells[0].edges[0]
    assert stacked_recurrence.grouped_names(edge.ops.items(), torch.zeros(1), False) == [
        "rnn_1", "rnn_2", "rnn_3", "rnn_4", "rnn_att_1", "rnn_att_2"]
    assert stacked_recurrence.grouped_names(edge.ops.items(), torch.zeros(1), True) == [
        "lstm_1", "lstm_2", "lstm_3", "lstm_4", "lstm_att_1", "lstm_att_2"]
    x, weights = _inputs(net, net.cfg.seq_dim)
    grouped = _edge_values_and_grads(edge, x, weights)
    reference = _one_by_one(monkeypatch, edge, x, weights)
    assert _difference(grouped, reference) < 1e-12
    if attention == "paper":  # the masks were drawn: without them the output differs
        edge.eval()
        assert float((edge(x, weights) - grouped[0]).detach().abs().max()) > 1e-3


def test_each_copy_of_the_grouped_edge_equals_its_plain_edge(float64):
    """Copy k of the stacked edge against copy k's own plain edge (eval: no dropout)."""
    plain, net = _networks()
    edge = net.seq_cells[0].edges[1].eval()
    x, weights = _inputs(net, net.cfg.seq_dim)
    out = edge(x, weights)
    for k in range(K):
        ref = plain[k].seq_cells[0].edges[1].eval()(x[k], weights[k])
        torch.testing.assert_close(out[k], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mix", ["copies", "candidates"])
def test_a_grouping_that_mixes_copies_or_candidates_fails(float64, monkeypatch, mix):
    """The comparisons above detect a grouping that hands one copy's (or one candidate's)
    weights to another: rolled along the copies, or the streams' order reversed."""
    _, net = _networks()
    edge = net.seq_cells[0].edges[0]
    x, weights = _inputs(net, net.cfg.seq_dim)
    reference = _one_by_one(monkeypatch, edge, x, weights)
    group = stacked_recurrence.group_parameters
    broken = {"copies": lambda t: t.roll(1, dims=1), "candidates": lambda t: t.flip(0)}[mix]
    with monkeypatch.context() as m:
        m.setattr(stacked_recurrence, "group_parameters", lambda *args: broken(group(*args)))
        grouped = _edge_values_and_grads(edge, x, weights)
    assert _difference(grouped, reference) > 1e-6


def test_groups_by_kind_and_none_off_cpu():
    _, net = _networks(scope="lstm_only")
    edge = net.seq_cells[0].edges[0]
    assert stacked_recurrence.grouped_names(edge.ops.items(), torch.zeros(1), False) == []
    assert stacked_recurrence.grouped_names(edge.ops.items(), torch.zeros(1), True) == [
        "lstm_1", "lstm_2", "lstm_3", "lstm_4"]
    for lstm in (True, False):
        assert stacked_recurrence.grouped_names(edge.ops.items(), torch.zeros(1, device="meta"), lstm) == []


def test_lstm_recurrence_gradients_match_finite_differences():
    """Both outputs (hidden and cell states) into both inputs; no double backward."""
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(4, 2, 3, 4 * 5, dtype=torch.float64, generator=gen, requires_grad=True)  # [T, G, B, 4d]
    w = (0.5 * torch.randn(2, 4 * 5, 5, dtype=torch.float64, generator=gen)).requires_grad_()
    assert torch.autograd.gradcheck(stacked_recurrence.LSTMRecurrence.apply, (z, w))
    h, c = stacked_recurrence.LSTMRecurrence.apply(z, w)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad((h.sum() + c.sum()), (z, w), create_graph=True)


def _lstm_by_torch(z, w_hh):
    """`LSTMRecurrence`'s (h, c) stream by stream through torch's own LSTM cell
    (`torch.lstm_cell`, with autograd): the reference for its values and gradients."""
    T, G, B, width = z.shape
    d = width // 4
    hs, cs = [], []
    for s in range(G):
        h = c = z.new_zeros(B, d)
        eye = torch.eye(width, dtype=z.dtype)  # the input projections are z itself
        out_h, out_c = [], []
        for t in range(T):
            h, c = torch.lstm_cell(z[t, s], (h, c), eye, w_hh[s])
            out_h.append(h)
            out_c.append(c)
        hs.append(torch.stack(out_h))
        cs.append(torch.stack(out_c))
    return torch.stack(hs, dim=1), torch.stack(cs, dim=1)


@pytest.mark.parametrize("cells", ["last", "all"])
def test_lstm_recurrence_equals_torch_lstm_cell_in_float64(cells):
    """Values and gradients (of z and W_hh, through h at every step and c at the last step
    or at every step) equal torch's LSTM cell run step by step, in float64."""
    gen = torch.Generator().manual_seed(5)
    T, G, B, d = 6, 3, 4, 5
    z = torch.randn(T, G, B, 4 * d, dtype=torch.float64, generator=gen, requires_grad=True)
    w = (0.5 * torch.randn(G, 4 * d, d, dtype=torch.float64, generator=gen)).requires_grad_()
    probe_h = torch.randn(T, G, B, d, dtype=torch.float64, generator=gen)
    probe_c = torch.randn(T, G, B, d, dtype=torch.float64, generator=gen)
    if cells == "last":
        probe_c[:-1] = 0.0

    def values_and_grads(fn):
        h, c = fn(z, w)
        return [h, c, *torch.autograd.grad((h * probe_h).sum() + (c * probe_c).sum(), (z, w))]

    ours = values_and_grads(stacked_recurrence.LSTMRecurrence.apply)
    reference = values_and_grads(_lstm_by_torch)
    assert _difference(ours, reference) < 1e-12
