"""PC-DARTS partial channels: K = 1 is exact DARTS; K > 1 samples 1/K channels per edge and
normalises the edges of each node (Xu et al. 2020)."""

import pytest
import torch

from emodarts_core.architect import Architect
from emodarts_core.cells import MixedOp, channel_shuffle, shuffled_concat
from emodarts_core.config import ConfigError, preset
from emodarts_core.search_network import SearchNetwork
from emodarts_core.search_space import CNN_PRIMITIVES


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
    assert torch.equal(k1(x), plain(x))


def test_mixed_op_k1_is_the_weighted_sum_of_all_ops():
    torch.manual_seed(0)
    op = MixedOp(4, 1, CNN_PRIMITIVES, partial_channels=1)
    x = torch.randn(2, 4, 8, 8)
    w = torch.softmax(torch.randn(len(CNN_PRIMITIVES)), 0)
    ref = sum(w[i] * o(torch.relu(x) if r else x) for i, r, o in zip(op.index, op.reads_relu, op.ops))
    torch.testing.assert_close(op(x, torch.relu(x), w), ref)


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_edge_mixes_a_channel_sample_and_shuffles_the_rest(stride):
    torch.manual_seed(0)
    op = MixedOp(8, stride, CNN_PRIMITIVES, partial_channels=4)
    assert all(p.shape[0] in (2, 1) for n, p in op.named_parameters() if n.endswith("weight"))  # C/K = 2
    x = torch.randn(2, 8, 8, 8)
    w = torch.softmax(torch.randn(len(CNN_PRIMITIVES)), 0)
    out = op(x, torch.relu(x), w)
    rest = x[:, 2:] if stride == 1 else torch.nn.functional.max_pool2d(x[:, 2:], 2)
    unshuffled = channel_shuffle(out, 8 // 4)  # shuffling K groups, then C/K groups, is the identity
    torch.testing.assert_close(unshuffled[:, 2:], rest)
    torch.testing.assert_close(unshuffled[:, :2], op._mix(x[:, :2], torch.relu(x[:, :2]), w))


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


def test_checkpointing_leaves_partial_channel_gradients_unchanged():
    torch.manual_seed(0)
    net = SearchNetwork(preset("smoke", init_channels=4, partial_channels=2))
    x, y = _x(2), torch.tensor([0, 1])
    params = list(net.parameters())
    plain = torch.autograd.grad(net.loss(x, y), params)
    net.set_checkpointing(True)
    ckpt = torch.autograd.grad(net.loss(x, y), params)
    for a, b in zip(plain, ckpt):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
