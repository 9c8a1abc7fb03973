"""The derived network: builds from a parsed genotype, trains, drop-path, batch independence."""

import pytest
import torch

from emodarts_core.config import preset
from emodarts_core.space.derived import DerivedNetwork
from emodarts_core.space.genotypes import GenotypeError
from emodarts_core.space.search_network import SearchNetwork


@pytest.fixture(scope="module")
def genotype():
    torch.manual_seed(0)
    return SearchNetwork(preset("smoke")).genotype()


def test_forward_backward_from_parsed_genotype(genotype):
    net = DerivedNetwork(genotype, preset("smoke"))
    net.drop_path_prob = 0.3
    x, y = torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 3])
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_eval_is_deterministic_and_batch_independent(genotype):
    net = DerivedNetwork(genotype, preset("smoke"))
    net.drop_path_prob = 0.5  # must not act in eval mode
    net.eval()
    x = torch.randn(5, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x)[3:4], net(x[3:4]), rtol=1e-5, atol=1e-5)


def test_drop_path_acts_in_training_only(genotype):
    torch.manual_seed(0)
    net = DerivedNetwork(genotype, preset("smoke")).train()
    net.drop_path_prob = 0.5
    x = torch.randn(4, 1, 32, 32)
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, net(x))


def test_cnn_only_and_mismatch(genotype):
    geno = type(genotype)(genotype.normal, genotype.normal_concat, genotype.reduce, genotype.reduce_concat)
    assert DerivedNetwork(geno, preset("smoke", seq_cells=0))(torch.randn(2, 1, 32, 32)).shape == (2, 4)
    with pytest.raises(GenotypeError):
        DerivedNetwork(genotype, preset("smoke", nodes=3))
