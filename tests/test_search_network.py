"""The joint search network: batch independence, alphas vs weights, scopes, checkpointing."""

import copy

import pytest
import torch
from torch.func import functional_call

from emodarts_core.config import preset
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.space.search_space import CNN_PRIMITIVES, seq_primitives


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return SearchNetwork(preset("smoke"))


def _batch(n=4, size=32):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, size, size, generator=g), torch.tensor([0, 1, 2, 3][:n])


def test_logits_shape_and_loss(net):
    x, y = _batch()
    assert net(x).shape == (4, 4)
    assert net.loss(x, y).ndim == 0


def test_eval_logits_do_not_depend_on_batch(net):
    net.eval()
    x, _ = _batch()
    with torch.no_grad():
        full = net(x)
        other = net(torch.cat([x[2:3], torch.randn(5, 1, 32, 32)]))
        alone = net(x[2:3])
    torch.testing.assert_close(full[2:3], alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(other[:1], alone, rtol=1e-5, atol=1e-5)
    net.train()


def test_alphas_and_weights_partition_parameters(net):
    alphas = {id(p) for p in net.alphas()}
    weights = {id(p) for p in net.weights()}
    assert not alphas & weights
    assert alphas | weights == {id(p) for p in net.parameters()}
    assert [n for n, _ in net.named_alphas()] == ["alpha_normal", "alpha_reduce", "alpha_seq"]
    assert net.alpha_normal.shape == (5, len(CNN_PRIMITIVES))  # 2 nodes: 2 + 3 edges
    probs = net.alpha_probs()
    assert set(probs) == {"normal", "reduce", "seq"}
    assert abs(probs["seq"].sum(axis=1) - 1).max() < 1e-6


def test_cnn_only_network_has_no_seq_alpha():
    net = SearchNetwork(preset("smoke", seq_cells=0))
    assert len(net.alphas()) == 2 and net(_batch()[0]).shape == (4, 4)
    assert net.genotype().seq == []


@pytest.mark.parametrize("scope", ["lstm_att_only", "rnn_only"])
def test_scope_restricts_seq_ops(scope):
    net = SearchNetwork(preset("smoke", scope=scope))
    assert net.alpha_seq.shape[1] == len(seq_primitives(scope))
    with torch.no_grad():
        net.alpha_seq.normal_()
    assert {op for op, _ in net.genotype().seq} <= set(seq_primitives(scope)) - {"none"}


def _grads(net, x, y, params=None):
    named = dict(net.named_parameters())
    if params is None:
        loss = net.loss(x, y)
    else:  # the architect's way: substituted parameters through functional_call
        loss = torch.nn.functional.cross_entropy(functional_call(net, params, (x,)), y)
        named = params
    grads = torch.autograd.grad(loss, list(named.values()), allow_unused=True)
    return loss.detach(), grads


def _every_other_edge(net) -> list[str]:
    """Some edges of every cell kind (CNN normal, reduction, SeqNN): a partial checkpointing plan."""
    names = list(net.mixed_ops())
    assert any(n.startswith("seq_cells.") for n in names[::2]) and any(n.startswith("cells.") for n in names[::2])
    return names[::2]


def test_checkpointing_gives_identical_outputs_gradients_and_statistics():
    """Every edge, or some edges only (a plan of darts.memory.plan_checkpointing), checkpointed."""
    torch.manual_seed(0)
    net = SearchNetwork(preset("smoke", input_size=(16, 16)))
    start = copy.deepcopy(net.state_dict())
    x, y = _batch(size=16)
    shifted = {n: (p.detach() + 0.01).requires_grad_() for n, p in net.named_parameters()}
    results = []
    for on in (False, True, _every_other_edge(net)):
        net.load_state_dict(start)
        net.set_checkpointing(on)
        torch.manual_seed(1)  # the same dropout masks (between the attention ops' recurrent layers)
        plain, substituted = _grads(net, x, y), _grads(net, x, y, shifted)
        bn = net.cells[0].preprocess1.bn  # BatchNorm statistics move once per forward
        results.append((plain, substituted, bn.running_mean.clone(), int(bn.num_batches_tracked)))
    (plain, sub, mean, count), *checkpointed = results
    assert not torch.equal(plain[0], sub[0])  # the substitution really changed the network
    for plain_c, sub_c, mean_c, count_c in checkpointed:
        for a, b in ((plain, plain_c), (sub, sub_c)):
            torch.testing.assert_close(a[0], b[0])
            for ga, gb in zip(a[1], b[1]):
                assert (ga is None) == (gb is None)
                if ga is not None:
                    torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(mean, mean_c)
        assert count == count_c == 2


def _saved_bytes(net, x, y) -> int:
    """Bytes autograd keeps for backward outside checkpointed regions (whose own hooks
    take what is saved inside them)."""
    seen, total = set(), [0]

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.device)
        if key not in seen:
            seen.add(key)
            total[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net.loss(x, y)
    return total[0]


def test_checkpointed_edges_keep_nothing_of_their_insides():
    torch.manual_seed(0)
    net = SearchNetwork(preset("smoke", input_size=(16, 16)))
    x, y = _batch(size=16)
    kept = {}
    for what, on in (("none", False), ("some", _every_other_edge(net)), ("all", True)):
        net.set_checkpointing(on)
        kept[what] = _saved_bytes(net, x, y)
    assert kept["all"] < kept["some"] < kept["none"]
    assert kept["all"] < 0.5 * kept["none"]


def _all_edges_checkpointed(cell) -> bool:
    return all(edge.checkpoint for edge in cell.edges)


def test_checkpointing_covers_the_cnn_and_seqnn_cells():
    net = SearchNetwork(preset("smoke", input_size=(16, 16)))
    net.set_checkpointing(True)
    assert all(_all_edges_checkpointed(cell) for cell in (*net.cells, *net.seq_cells))
    assert net.checkpointed_edges() == tuple(net.mixed_ops())
    net.set_checkpointing(False)
    assert not any(_all_edges_checkpointed(cell) for cell in (*net.cells, *net.seq_cells))
    assert net.checkpointed_edges() == ()
    some = _every_other_edge(net)
    net.set_checkpointing(some)
    assert net.checkpointed_edges() == tuple(some)
    assert not any(_all_edges_checkpointed(cell) for cell in (*net.cells, *net.seq_cells))  # no cell entirely
    with pytest.raises(ValueError, match="cells.9.edges.0"):
        net.set_checkpointing(["cells.9.edges.0"])
    cnn_only = SearchNetwork(preset("smoke", input_size=(16, 16), seq_cells=0))
    cnn_only.set_checkpointing(True)
    assert all(_all_edges_checkpointed(cell) for cell in cnn_only.cells)
