"""The α diagnostics on softmax weights whose answers are known in closed form."""

import math

import numpy as np
import pytest

from emodarts_core.darts import diagnostics as dg
from emodarts_core.space.genotypes import Genotype
from emodarts_core.space.search_space import CNN_PRIMITIVES

K = len(CNN_PRIMITIVES)


def one_hot(n_edges: int, k: int, column: int = 1) -> np.ndarray:
    p = np.zeros((n_edges, k))
    p[:, column] = 1.0
    return p


@pytest.mark.parametrize("k", [2, 5, 9])
def test_uniform_softmax_has_lift_one_and_entropy_one(k):
    p = np.full((5, k), 1.0 / k)
    np.testing.assert_allclose(dg.edge_lift(p), 1.0, rtol=1e-12)
    np.testing.assert_allclose(dg.edge_entropy(p), 1.0, rtol=1e-12)
    np.testing.assert_allclose(dg.edge_margin(p, [f"op{i}" for i in range(k)]), 0.0, atol=1e-15)


@pytest.mark.parametrize("k", [2, 5, 9])
def test_one_hot_softmax_over_k_ops_has_lift_k_and_entropy_zero(k):
    p = one_hot(4, k)
    np.testing.assert_allclose(dg.edge_lift(p), float(k))
    np.testing.assert_allclose(dg.edge_entropy(p), 0.0, atol=1e-15)


def test_entropy_of_a_two_level_softmax_matches_the_formula():
    # half the mass on one op, the rest spread evenly over the other K - 1
    p = np.full((1, K), 0.5 / (K - 1))
    p[0, 3] = 0.5
    expected = -(0.5 * math.log(0.5) + 0.5 * math.log(0.5 / (K - 1))) / math.log(K)
    assert dg.edge_entropy(p)[0] == pytest.approx(expected, rel=1e-12)
    assert dg.edge_lift(p)[0] == pytest.approx(0.5 * K, rel=1e-12)


def test_margin_is_the_gap_between_the_two_strongest_ops_other_than_none():
    prims = ("none", "a", "b", "c")
    p = np.array([[0.7, 0.1, 0.15, 0.05],    # none dominates: it is ignored, gap b - a
                  [0.1, 0.4, 0.4, 0.1],      # a tie: margin 0
                  [0.0, 0.6, 0.1, 0.3]])     # a - c
    np.testing.assert_allclose(dg.edge_margin(p, prims), [0.05, 0.0, 0.3], atol=1e-15)
    assert dg.cell_diagnostics(p, prims)["margin"] == pytest.approx(0.35 / 3)


def test_agreement_counts_shared_node_input_op_edges():
    a = Genotype(normal=[("skip_connect", 0), ("sep_conv_3x3", 1)], normal_concat=[2],
                 reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1)], reduce_concat=[2],
                 seq=[("rnn_1", 0), ("skip_connect", 1)], seq_concat=[2])
    b = Genotype(normal=[("skip_connect", 0), ("sep_conv_5x5", 1)], normal_concat=[2],   # one op differs
                 reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1)], reduce_concat=[2],
                 seq=[("rnn_1", 1), ("skip_connect", 0)], seq_concat=[2])                   # inputs swapped
    assert dg.agreement(a, a) == 1.0
    assert dg.agreement(a, b, "normal") == 0.5
    assert dg.agreement(a, b, "reduce") == 1.0
    assert dg.agreement(a, b, "seq") == 0.0
    assert dg.agreement(a, b) == pytest.approx(3 / 6)
    assert dg.agreement(a.to_dict(), b.to_dict()) == dg.agreement(a, b)  # the stored form reads the same


def test_epoch_diagnostics_per_cell_type():
    prims = {"normal": CNN_PRIMITIVES, "reduce": CNN_PRIMITIVES}
    probs = {"normal": np.full((2, K), 1.0 / K), "reduce": one_hot(2, K)}
    g = Genotype(normal=[("skip_connect", 0), ("skip_connect", 1)], normal_concat=[2],
                 reduce=[("skip_connect", 0), ("skip_connect", 1)], reduce_concat=[2])
    out = dg.epoch_diagnostics(probs, prims, g, previous=g)
    assert out["lift"] == pytest.approx({"normal": 1.0, "reduce": float(K)})
    assert out["entropy"] == pytest.approx({"normal": 1.0, "reduce": 0.0})
    assert out["agreement_previous"] == {"normal": 1.0, "reduce": 1.0, "all": 1.0}
    assert "agreement_initial" not in out
    assert dg.mean_lift(out["lift"]) == pytest.approx((1 + K) / 2)


def _geno(op):
    return Genotype(normal=[(op, 0), (op, 1)], normal_concat=[2], reduce=[(op, 0), (op, 1)], reduce_concat=[2])


def test_last_quarter_change_is_detected_and_an_earlier_one_is_not():
    a, b = _geno("skip_connect"), _geno("sep_conv_3x3")
    assert not dg.last_quarter_changed([a, b, b, b, b, b, b, b])   # changed in epoch 2 of 8
    assert dg.last_quarter_changed([a, a, a, a, a, a, a, b])       # changed in the last epoch
    assert dg.last_quarter_changed([a, a, a, a, a, a, b, b])       # epoch 7 differs from epoch 6, which enters it
    assert not dg.last_quarter_changed([a, a, a, a, a, b, b, b])   # settled at epoch 6, before the last quarter
    assert not dg.last_quarter_changed([a])


def test_verdict_says_the_alpha_did_not_move_and_how_to_fix_it():
    flat = {"lift": {"normal": 1.01, "reduce": 1.02, "seq": 1.05}}
    g = _geno("skip_connect")
    verdict = dg.search_verdict([flat, flat], [g, g], alpha_lr=3e-4, alpha_steps=12)
    assert verdict["alpha_moved"] is False and verdict["genotype_settled"] is True
    assert "initialisation" in verdict["message"] and "alpha_steps" in verdict["message"]
    assert "alpha_lr" in verdict["message"] and "12 α steps" in verdict["message"]
    moved = {"lift": {"normal": 2.0, "reduce": 1.5, "seq": 3.0}}
    ok = dg.search_verdict([moved], [g], alpha_lr=1e-2, alpha_steps=400)
    assert ok["alpha_moved"] is True and ok["message"] is None and ok["mean_lift"] == pytest.approx(6.5 / 3)
    unsettled = dg.search_verdict([moved] * 4, [g, g, g, _geno("sep_conv_3x3")], alpha_lr=1e-2, alpha_steps=400)
    assert unsettled["alpha_moved"] is True and unsettled["genotype_settled"] is False
    assert "where the search stopped" in unsettled["message"] and "alpha_steps" in unsettled["message"]


def test_malformed_softmax_is_refused():
    with pytest.raises(ValueError, match="edges, ops"):
        dg.edge_lift(np.ones(4))
    with pytest.raises(ValueError, match="op names"):
        dg.edge_margin(np.full((2, 3), 1 / 3), ("a", "b"))


def test_alpha_correlation_is_one_for_identical_weights_and_negative_for_opposed_ones():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(8), size=5)
    assert dg.alpha_correlation(probs, probs) == pytest.approx(1.0)
    opposed = probs.max(axis=1, keepdims=True) + probs.min(axis=1, keepdims=True) - probs  # mirror image per edge
    assert dg.alpha_correlation(probs, opposed) == pytest.approx(-1.0)
    assert abs(dg.alpha_correlation(probs, rng.dirichlet(np.ones(8), size=5))) < 0.9


def test_alpha_correlation_leaves_out_uniform_edges():
    uniform = np.full((2, 4), 0.25)
    leaning = np.array([[0.4, 0.2, 0.2, 0.2], [0.25, 0.25, 0.25, 0.25]])
    assert dg.alpha_correlation(uniform, leaning) is None
    both = np.array([[0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    assert dg.alpha_correlation(both, both * 1.0) == pytest.approx(1.0)  # the uniform edge is left out
    with pytest.raises(ValueError, match="different shapes"):
        dg.alpha_correlation(uniform, np.full((3, 4), 0.25))
