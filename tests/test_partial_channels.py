"""PC-DARTS partial channels: K = 1 is exact DARTS; K > 1 samples 1/K channels per edge and
normalises the edges of each node (Xu et al. 2020)."""

import copy

import pytest
import torch

from emodarts_core.darts.architect import Architect
from emodarts_core.config import ConfigError, preset
from emodarts_core.fast.cells import CELL_CLASSES, shuffled_concat
from emodarts_core.fast.networks import FastSearchNetwork
from emodarts_core.fast.ops import to_fast
from emodarts_core.space.cells import MixedOp, SearchCell, channel_shuffle, n_edges
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.space.search_space import CNN_PRIMITIVES

from precision import assert_as_accurate_as_torch


def _x(n=2, size=32):
    return torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(1))


def test_k1_is_exactly_the_exact_darts_network():
    torch.manual_seed(0)
    plain = SearchNetwork(preset("smoke"))
    torch.manual_seed(0)
    k1 = SearchNetwork(preset("smoke", partial_channels=1))
    assert [n for n, _ in k1.named_alphas()] == ["alpha_normal", "alpha_reduce", "alpha_seq"]
    assert k1.state_dict().keys() == plain.state_dict().keys()
    for a, b in zip(k1.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)
    assert k1.edge_weights("normal") is None
    x = _x()
    torch.manual_seed(1)  # the same dropout masks (the attention ops' recurrent layers) in both
    out = k1(x)
    torch.manual_seed(1)
    assert torch.equal(out, plain(x))


def test_mixed_op_k1_is_the_weighted_sum_of_all_ops():
    torch.manual_seed(0)
    op = MixedOp(4, 1, CNN_PRIMITIVES, partial_channels=1)
    fast_op = to_fast(copy.deepcopy(op), CELL_CLASSES)
    x = torch.randn(2, 4, 8, 8)
    w = torch.softmax(torch.randn(len(CNN_PRIMITIVES)), 0)
    ref = sum(w[i] * o(x) for i, o in enumerate(op.ops.values()))
    op64, x64, w64 = copy.deepcopy(op).double(), x.double(), w.double()
    ref64 = sum(w64[i] * o(x64) for i, o in enumerate(op64.ops.values()))
    assert_as_accurate_as_torch(fast_op(x, torch.relu(x), w), ref, ref64, what="mixed op with K = 1")


def _pc_darts_cell(cell, s0, s1, weights, edge_weights):
    """PC-DARTS as Xu et al. define it, edge by edge: sample the first C/K channels, mix
    them, concatenate the other channels (max-pooled 2x2 on a reduction edge), shuffle in
    K groups, weight the edge, sum the node's edges."""
    K = cell.partial_channels
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    e = 0
    for _ in range(cell.nodes):
        node = 0
        for j, x in enumerate(states):
            c = x.shape[1] // K
            edge = cell.edges[e]
            rest = x[:, c:] if edge.stride == 1 else torch.nn.functional.max_pool2d(x[:, c:], 2)
            mixed = edge(x[:, :c], weights[e])
            node = node + edge_weights[e] * channel_shuffle(torch.cat([mixed, rest], 1), K)
            e += 1
        states.append(node)
    return torch.cat(states[2:], dim=1)


@pytest.mark.parametrize("reduction", [False, True])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_partial_cell_equals_pc_darts_edge_by_edge(reduction, checkpointing):
    """The fast cell shares each state's sample, ReLU, subsamples and pooled rest between
    its edges and shuffles once per node; the plain cell runs PC-DARTS edge by edge: both
    give the values and gradients of PC-DARTS written out here."""
    torch.manual_seed(0)
    plain = SearchCell(3, 8, 8, 8, reduction, reduction_prev=False, primitives=CNN_PRIMITIVES, partial_channels=4)
    plain.double()
    assert all(p.shape[0] in (2, 1) for n, p in plain.edges.named_parameters() if n.endswith("weight"))  # C/K = 2
    fast_cell = to_fast(copy.deepcopy(plain), CELL_CLASSES)
    by_hand = copy.deepcopy(plain)
    for edge in (*fast_cell.edges, *plain.edges):
        edge.checkpoint = checkpointing
    gen = torch.Generator().manual_seed(1)
    s0, s1 = (torch.randn(2, 8, 8, 10, dtype=torch.float64, generator=gen)
              .contiguous(memory_format=torch.channels_last).requires_grad_() for _ in range(2))
    alpha = torch.randn(n_edges(3), len(CNN_PRIMITIVES), dtype=torch.float64, generator=gen, requires_grad=True)
    beta = torch.randn(n_edges(3), dtype=torch.float64, generator=gen, requires_grad=True)
    results = []
    for module, run in ((by_hand, lambda *a: _pc_darts_cell(by_hand, *a)), (plain, plain), (fast_cell, fast_cell)):
        out = run(s0, s1, torch.softmax(alpha, -1), torch.sigmoid(beta))
        leaves = [s0, s1, alpha, beta, *module.parameters()]
        results.append((out, torch.autograd.grad((out * torch.cos(out)).sum(), leaves), list(module.buffers())))
    ref, ref_grads, ref_buffers = results[0]
    for out, grads, buffers in results[1:]:
        assert out.shape == (2, 3 * 8, *((4, 5) if reduction else (8, 10)))
        torch.testing.assert_close(out, ref)
        for a, b in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(a, b)
        for a, b in zip(buffers, ref_buffers, strict=True):  # the BatchNorm statistics
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_one_pass_shuffled_concat_equals_concat_then_shuffle(layout):
    mixed = torch.randn(2, 3, 4, 5).contiguous(memory_format=layout)
    rest = torch.randn(2, 9, 4, 5).contiguous(memory_format=layout)
    torch.testing.assert_close(shuffled_concat(mixed, rest, 4), channel_shuffle(torch.cat([mixed, rest], 1), 4),
                               rtol=0, atol=0)


def test_edge_normalisation_and_genotype():
    torch.manual_seed(0)
    net = SearchNetwork(preset("smoke", init_channels=4, partial_channels=2))
    assert [n for n, _ in net.named_alphas()][-2:] == ["beta_normal", "beta_reduce"]
    assert not {id(p) for p in net.alphas()} & {id(p) for p in net.weights()}
    with torch.no_grad():
        net.beta_normal.copy_(torch.tensor([0.0, 0.0, 5.0, -5.0, 0.0]))  # node 1: edges 2..4
    e = net.edge_weights("normal")
    torch.testing.assert_close(e[:2].sum(), torch.tensor(1.0))
    torch.testing.assert_close(e[2:].sum(), torch.tensor(1.0))
    with torch.no_grad():  # every op equal: the edge weights alone pick node 1's edges
        net.alpha_normal.zero_()
    edges = [j for _, j in net.genotype().normal[2:]]
    assert edges == [0, 2]
    x, y = _x(3), torch.tensor([0, 1, 2])
    grads = torch.autograd.grad(net.loss(x, y), net.alphas())
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_architect_optimises_betas_second_order():
    torch.manual_seed(0)
    net = SearchNetwork(preset("smoke", init_channels=4, partial_channels=2))
    w_optim = torch.optim.SGD(net.weights(), lr=0.01, momentum=0.9)
    arch = Architect(net, 0.9, 3e-4, 0.1)
    before = net.beta_reduce.detach().clone()
    x, y = _x(2), torch.tensor([0, 1])
    arch.step(x, y, x, y, 0.01, w_optim, order=2)
    assert not torch.equal(before, net.beta_reduce.detach())


def test_partial_channels_must_divide_init_channels():
    with pytest.raises(ConfigError, match="partial_channels"):
        preset("smoke", partial_channels=3)
    with pytest.raises(ConfigError, match="partial_channels"):
        preset("smoke", partial_channels=0)


@pytest.mark.parametrize("form", [SearchNetwork, FastSearchNetwork])
def test_checkpointing_leaves_partial_channel_gradients_unchanged(form):
    torch.manual_seed(0)
    net = form(preset("smoke", init_channels=4, partial_channels=2))
    x, y = _x(2), torch.tensor([0, 1])
    params = list(net.parameters())
    torch.manual_seed(1)  # the same dropout masks (the attention ops' recurrent layers) in both
    plain = torch.autograd.grad(net.loss(x, y), params)
    net.set_checkpointing(True)
    torch.manual_seed(1)
    ckpt = torch.autograd.grad(net.loss(x, y), params)
    for a, b in zip(plain, ckpt):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
