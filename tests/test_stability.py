"""Genotype stability: agreement over a search's epochs and across seeds."""

import json

import pytest

from emodarts_core.study.stability import agreement, epoch_agreement, search_stability, seed_agreement

A = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]], "reduce": [["max_pool_3x3", 0], ["dil_conv_3x3", 1]],
     "seq": [["rnn_1", 0], ["lstm_att_1", 1]]}
B = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]], "reduce": [["max_pool_3x3", 0], ["dil_conv_3x3", 1]],
     "seq": [["rnn_2", 0], ["lstm_att_1", 1]]}  # one op differs on an edge that keeps its input


def test_agreement_counts_edges_with_the_same_input_and_op():
    assert agreement(A, A) == 1.0
    assert agreement(A, B) == pytest.approx(5 / 6)
    assert seed_agreement([A, A, B]) == pytest.approx((1 + 5 / 6 + 5 / 6) / 3)


def test_epoch_agreement_reaches_one_at_the_last_epoch():
    history = {"epochs": [{"genotype": B}, {"genotype": A}, {"genotype": A}]}
    assert epoch_agreement(history) == [pytest.approx(5 / 6), 1.0, 1.0]


def test_search_stability_reads_finished_searches_only(tmp_path):
    for fold, seed, last in ((1, 0, A), (1, 1, B), (2, 0, A)):
        d = tmp_path / "emodb" / "emodarts" / f"fold{fold}" / f"seed{seed}" / "search"
        d.mkdir(parents=True)
        (d / "alpha_history.json").write_text(json.dumps({"epochs": [{"genotype": B}, {"genotype": last}]}))
        (d / "FINISHED").write_text("{}")
    unfinished = tmp_path / "emodb" / "emodarts" / "fold3" / "seed0" / "search"
    unfinished.mkdir(parents=True)
    (unfinished / "alpha_history.json").write_text(json.dumps({"epochs": [{"genotype": A}]}))
    out = search_stability(tmp_path)
    assert out["n_searches"] == 3 and out["epochs"] == 2
    assert out["mean_agreement_per_epoch"] == [pytest.approx((5 / 6 + 1 + 5 / 6) / 3, abs=1e-4), 1.0]
    assert out["settled_in_second_half"] == 1.0
    assert out["seed_agreement_per_fold"] == {"fold1": pytest.approx(5 / 6, abs=1e-4)}


def test_search_stability_reports_the_final_lift_and_the_seeds_alpha_correlation(tmp_path):
    lean = [[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]]
    against = [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]
    for seed, (probs, lift) in enumerate(((lean, 1.6), (lean, 1.0), (against, 1.4))):
        d = tmp_path / "emodb" / "emodarts" / "fold1" / f"seed{seed}" / "search"
        d.mkdir(parents=True)
        last = {"genotype": A, "lift": {"normal": lift, "reduce": lift, "seq": lift},
                "probs": {"normal": probs, "reduce": probs, "seq": probs}}
        (d / "alpha_history.json").write_text(json.dumps({"epochs": [last]}))
        (d / "FINISHED").write_text("{}")
    out = search_stability(tmp_path)
    assert out["final_lift"] == {"mean": pytest.approx(4 / 3, abs=1e-3), "min": 1.0, "max": 1.6,
                                 "moved": pytest.approx(2 / 3, abs=1e-4)}
    # pairs (0, 1): +1, (0, 2) and (1, 2): -1 on every edge -> mean -1/3 per cell type
    assert out["seed_alpha_correlation_per_fold"]["fold1"] == {c: pytest.approx(-1 / 3, abs=1e-3)
                                                               for c in ("normal", "reduce", "seq")}
