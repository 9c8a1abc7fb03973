"""One-hot sub-networks of a supernet and the BatchNorm modes they are scored in."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from emodarts_core import fast
from emodarts_core.config import preset
from emodarts_core.darts.subnet import (alphas_set, batch_norms, bn_mode, one_hot_logits, score_genotype)
from emodarts_core.networks import search_network
from emodarts_core.space.genotypes import Genotype
from emodarts_core.space.sampling import random_genotype

NET = preset("smoke")


def _net(seed=0):
    torch.manual_seed(seed)
    net = search_network(NET)
    net.eval()
    return net


def _x(n=6, seed=1):
    return torch.randn(n, 1, *NET.input_size, generator=torch.Generator().manual_seed(seed))


def _ops_of_edge(net, kind: str, row: int):
    """The mixed ops of α row `row` of cell kind `kind`, in every cell of that kind."""
    if kind == "seq":
        return [cell.edges[row] for cell in net.seq_cells]
    return [cell.edges[row] for cell in net.cells if cell.reduction == (kind == "reduce")]


def _perturb(modules):
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.add_(torch.randn_like(p))


def test_only_the_chosen_ops_on_the_kept_edges_reach_the_output():
    net, x = _net(), _x()
    g = random_genotype(NET, np.random.default_rng(3))
    with alphas_set(net, one_hot_logits(net, g)), torch.no_grad():
        before = net(x)
        assert torch.isfinite(before).all()
        # every op that the genotype does not choose, on every edge: changing it changes nothing
        for kind in ("normal", "reduce", "seq"):
            chosen = {}
            rows = [range(0, 2), range(2, 5)]
            for n, (op, src) in enumerate(getattr(g, kind)):
                chosen.setdefault(rows[n // 2][src], set()).add(op)
            for row in range(5):
                for edge in _ops_of_edge(net, kind, row):
                    _perturb(op for name, op in edge.ops.items() if name not in chosen.get(row, set()))
        assert torch.equal(net(x), before)
        op, src = g.seq[0]  # node 0's first kept edge reads state `src`, α row `src`
        _perturb([_ops_of_edge(net, "seq", src)[0].ops[op]])  # a chosen op: changing it changes the output
        assert not torch.allclose(net(x), before)


def test_alphas_are_restored_and_a_genotype_outside_the_space_is_refused():
    net = _net()
    alpha = net.alpha_normal.detach().clone()
    g = random_genotype(NET, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="inside"):
        with alphas_set(net, one_hot_logits(net, g)):
            assert torch.isinf(net.alpha_normal).any()
            raise RuntimeError("inside")
    assert torch.equal(net.alpha_normal, alpha)
    wrong = Genotype(g.normal[:2], [2], g.reduce, g.reduce_concat, g.seq, g.seq_concat)
    with pytest.raises(Exception, match="nodes"):
        one_hot_logits(net, wrong)


def test_fast_and_plain_forms_compute_the_same_sub_network():
    g = random_genotype(NET, np.random.default_rng(5))
    torch.manual_seed(0)
    fast_net = search_network(NET).eval()
    with fast.disabled():
        plain = search_network(NET).eval()
    plain.load_state_dict(fast_net.state_dict())
    x = _x()
    with torch.no_grad(), alphas_set(fast_net, one_hot_logits(fast_net, g)), \
            alphas_set(plain, one_hot_logits(plain, g)):
        torch.testing.assert_close(fast_net(x), plain(x), rtol=1e-4, atol=1e-5)


def test_recalibration_estimates_the_statistics_of_the_sub_network_and_restores_the_supernets():
    net = _net()
    stem_bn = net.stem[1]
    saved = {k: v.clone() for k, v in stem_bn.state_dict().items()}
    batches = [(_x(4, seed=s), torch.zeros(4, dtype=torch.long)) for s in range(3)]
    with torch.no_grad():
        conv = torch.cat([net.stem[0](x) for x, _ in batches]).double()
    with bn_mode(net, "recalibrated", batches):
        assert not stem_bn.training and not net.training
        # equal batches: the cumulative average of batch means is the mean over all samples
        torch.testing.assert_close(stem_bn.running_mean.double(), conv.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    for k, v in stem_bn.state_dict().items():
        assert torch.equal(v, saved[k])


def test_batch_statistics_mode_normalises_each_batch_and_keeps_the_running_statistics():
    net = _net()
    before = {id(bn): bn.running_mean.clone() for bn in batch_norms(net)}
    x = _x(8)
    with bn_mode(net, "batch"), torch.no_grad():
        whole = net(x)
        half = net(x[:4])
        assert not torch.allclose(whole[:4], half)  # batch statistics: a sample depends on its batch
    with bn_mode(net, "running"), torch.no_grad():
        torch.testing.assert_close(net(x)[:4], net(x[:4]))
    for bn in batch_norms(net):
        assert torch.equal(bn.running_mean, before[id(bn)])
    with pytest.raises(ValueError, match="valid modes"):
        with bn_mode(net, "frozen"):
            pass


def test_score_genotype_scores_in_each_mode():
    net = _net()
    g = random_genotype(NET, np.random.default_rng(1))
    data = TensorDataset(_x(12), torch.arange(12) % NET.n_classes)
    loader = DataLoader(data, batch_size=6)
    for mode in ("running", "batch", "recalibrated"):
        out = score_genotype(net, g, loader, torch.device("cpu"), mode, recal_loader=loader, recal_batches=2)
        assert 0.0 <= out["ua"] <= 1.0 and np.isfinite(out["loss"])
    with pytest.raises(ValueError, match="recal_loader"):
        score_genotype(net, g, loader, torch.device("cpu"), "recalibrated")
