"""Random architectures: valid members of their scope, uniform over the parse's space,
reproducible from (seed, fold, k), and different across seeds."""

from collections import Counter

import numpy as np
import pytest

from emodarts_core.config import preset
from emodarts_core.space.genotypes import check_compatible, to_json
from emodarts_core.space.sampling import random_genotype, random_genotypes
from emodarts_core.space.search_space import CNN_PRIMITIVES, SCOPES


@pytest.mark.parametrize("scope", sorted(SCOPES))
def test_random_genotypes_are_valid_members_of_their_scope(scope):
    net = preset("small", scope=scope)
    for genotype in random_genotypes(net, 20, seed=0, fold=1):
        check_compatible(genotype, net)  # node counts and the scope's SeqNN ops
        assert {op for op, _ in genotype.seq} <= set(SCOPES[scope]) - {"none"}
        assert {op for op, _ in genotype.normal + genotype.reduce} <= set(CNN_PRIMITIVES) - {"none"}
        for cell in (genotype.normal, genotype.reduce, genotype.seq):
            for node in range(len(cell) // 2):  # two distinct inputs per node, as a DARTS parse keeps
                (_, a), (_, b) = cell[2 * node:2 * node + 2]
                assert a < b < 2 + node


def test_random_genotypes_differ_across_seeds_and_folds_and_repeat_exactly():
    net = preset("small")
    by_seed = [[to_json(g) for g in random_genotypes(net, 5, seed=s, fold=1)] for s in range(3)]
    assert len({g for gs in by_seed for g in gs}) == 15
    assert [to_json(g) for g in random_genotypes(net, 5, seed=1, fold=1)] == by_seed[1]
    assert to_json(random_genotypes(net, 1, seed=0, fold=2)[0]) != by_seed[0][0]
    # architecture k does not depend on how many were asked for
    assert [to_json(g) for g in random_genotypes(net, 3, seed=2, fold=1)] == by_seed[2][:3]
    # the random search's candidates are another stream
    assert to_json(random_genotypes(net, 1, seed=0, fold=1, stream="random_search")[0]) != by_seed[0][0]


def test_random_genotypes_are_uniform_over_ops_and_input_pairs():
    """Chi-square-sized check: each op and each input pair of a node is about equally frequent."""
    net = preset("small")
    rng = np.random.default_rng(0)
    ops, pairs = Counter(), Counter()
    n = 3000
    for _ in range(n):
        g = random_genotype(net, rng)
        ops.update(op for op, _ in g.normal)
        (_, a), (_, b) = g.normal[4:6]  # node 2 reads two of its four predecessors: 6 pairs
        pairs[(a, b)] += 1
    expected_op = n * len(g.normal) / 8
    assert all(abs(c - expected_op) < 5 * expected_op ** 0.5 for c in ops.values()) and len(ops) == 8
    assert len(pairs) == 6 and all(abs(c - n / 6) < 5 * (n / 6) ** 0.5 for c in pairs.values())


def test_a_cnn_only_network_gets_no_seq_cell():
    genotype = random_genotypes(preset("small", seq_cells=0), 1, seed=0)[0]
    assert genotype.seq == [] and genotype.seq_concat == []
