"""The seeds' consensus genotype: parsed from the mean of the seeds' softmax(α)."""

import json

import numpy as np
import pytest
import torch

from emodarts_core.config import SearchConfig, preset
from emodarts_core.space.genotypes import GenotypeError
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.space.search_space import CNN_PRIMITIVES
from emodarts_core.study.consensus import consensus_genotype, consensus_report, final_probs, mean_probs

NET = preset("smoke")


def _probs(seed: int) -> dict:
    torch.manual_seed(seed)
    net = SearchNetwork(NET)
    with torch.no_grad():
        for a in net.alphas():
            a.normal_(0, 1.0)
    return net, net.alpha_probs()


def test_the_consensus_of_one_search_is_that_searchs_genotype():
    net, probs = _probs(0)
    assert consensus_genotype([probs], NET).to_dict() == net.genotype().to_dict()


def test_the_consensus_parses_the_mean_not_a_vote():
    _, p0 = _probs(0)
    _, p1 = _probs(1)
    mean = mean_probs([p0, p1])
    for kind in p0:
        np.testing.assert_allclose(mean[kind], (np.asarray(p0[kind], float) + np.asarray(p1[kind], float)) / 2)
    # node 0 of the normal cell: seed b alone chooses sep_conv_3x3 on edge 0, but the mean
    # keeps seed a's stronger dil_conv_3x3 there
    k = len(CNN_PRIMITIVES)
    sep, dil = CNN_PRIMITIVES.index("sep_conv_3x3"), CNN_PRIMITIVES.index("dil_conv_3x3")
    a = {kind: np.full_like(np.asarray(v, float), 1.0 / k) for kind, v in p0.items()}
    b = {kind: v.copy() for kind, v in a.items()}
    a["normal"][0, dil], a["normal"][1, sep] = 0.60, 0.35
    b["normal"][0, sep], b["normal"][1, sep] = 0.20, 0.50
    g = consensus_genotype([a, b], NET)
    assert g.normal[:2] == [("dil_conv_3x3", 0), ("sep_conv_3x3", 1)]
    assert consensus_genotype([b], NET).normal[:2] == [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)]


def test_the_skip_cap_rule_is_applied_when_the_searches_used_it():
    _, p = _probs(2)
    skip = CNN_PRIMITIVES.index("skip_connect")
    p = {kind: np.asarray(v, float).copy() for kind, v in p.items()}
    p["normal"][:, skip] = 5.0  # every normal edge's strongest op is a skip
    plain = consensus_genotype([p], NET)
    capped = consensus_genotype([p], NET, SearchConfig(collapse_remedy="skip_cap", skip_cap=1))
    assert sum(op == "skip_connect" for op, _ in plain.normal) == 4
    assert sum(op == "skip_connect" for op, _ in capped.normal) == 1


def test_searches_of_different_spaces_are_refused():
    _, p = _probs(0)
    other = dict(p, seq=np.ones((3, 2)) / 2)
    with pytest.raises(GenotypeError, match="one space"):
        mean_probs([p, other])
    with pytest.raises(ValueError, match="at least one"):
        mean_probs([])


def test_report_shares_with_each_seed_and_between_seeds():
    a = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]], "reduce": [["max_pool_3x3", 0], ["dil_conv_3x3", 1]]}
    b = {"normal": [["sep_conv_3x3", 0], ["avg_pool_3x3", 1]], "reduce": [["max_pool_3x3", 0], ["dil_conv_3x3", 1]]}
    rep = consensus_report([a, b], a)
    assert [s["all"] for s in rep["with_each_seed"]] == [1.0, 0.75]
    assert rep["mean_with_seeds"]["all"] == pytest.approx(0.875)
    assert rep["mean_with_seeds"]["normal"] == pytest.approx(0.75)
    assert rep["seed_pairs"]["all"] == pytest.approx(0.75)


def test_final_probs_names_the_file_of_a_search_that_has_not_run(tmp_path):
    (tmp_path / "alpha_history.json").write_text(json.dumps({"epochs": []}))
    with pytest.raises(GenotypeError, match="alpha_history.json"):
        final_probs(tmp_path)
    (tmp_path / "alpha_history.json").write_text(json.dumps({"epochs": [{"probs": {"normal": [[1.0]]}}]}))
    assert final_probs(tmp_path) == {"normal": [[1.0]]}
