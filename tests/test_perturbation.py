"""Selection by perturbation (darts-pt): masking, the decisions, the record, resume."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net  # noqa: E402,F401

from emodarts_core.config import ConfigError  # noqa: E402
from emodarts_core.darts import perturbation  # noqa: E402
from emodarts_core.darts.perturbation import PerturbationConfig, Projection, select_by_perturbation  # noqa: E402
from emodarts_core.darts.subnet import alphas_set  # noqa: E402
from emodarts_core.networks import search_network  # noqa: E402
from emodarts_core.space.genotypes import check_compatible, from_dict  # noqa: E402

NET = tiny_net(scope="rnn_att_only")  # three SeqNN candidates besides none: fewer masked scores per decision


def _supernet(seed=0):
    torch.manual_seed(seed)
    net = search_network(NET)
    with torch.no_grad():
        for a in net.alphas():
            a.normal_(0, 1.0)
    return net


def test_masking_moves_an_ops_weight_to_none_and_keeps_the_others():
    net = _supernet()
    proj = Projection(net)
    before = proj.weights["normal"][3].copy()
    masked = proj.masked("normal", 3, 2)["normal"][3]
    none = proj.none["normal"]
    assert masked[2] == 0.0 and masked[none] == pytest.approx(before[none] + before[2])
    keep = [i for i in range(len(before)) if i not in (2, none)]
    np.testing.assert_array_equal(masked[keep], before[keep])
    with alphas_set(net, proj.logits(proj.masked("normal", 3, 2))):  # the supernet sees exactly these weights
        np.testing.assert_allclose(F.softmax(net.alpha_normal[3].detach().double(), -1).numpy(), masked, atol=1e-6)
    removed = proj.masked("seq", 1)["seq"][1]
    assert removed[proj.none["seq"]] == 1.0 and removed.sum() == 1.0


def test_decisions_are_planned_ops_first_then_inputs():
    proj = Projection(_supernet())
    steps = perturbation.plan_decisions(proj)
    # smoke cells: 2 nodes, 5 edges each; only node 1 (3 candidate inputs) has inputs to choose
    assert steps[:5] == [[("op", "normal"), ("op", "reduce"), ("op", "seq")]] * 5
    assert steps[5:] == [[("inputs", "normal"), ("inputs", "reduce"), ("inputs", "seq")]]


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="criterion"):
        PerturbationConfig(criterion="alpha").validate()
    with pytest.raises(ConfigError, match="tune_epochs"):
        PerturbationConfig(tune_epochs=-1).validate()


@pytest.mark.slow
def test_selection_chooses_what_masking_hurts_most_and_a_resumed_run_equals_an_uninterrupted_one(tmp_path,
                                                                                                 monkeypatch):
    fold, net_cfg, scfg = tiny_fold(), NET, search_cfg()
    cfg = PerturbationConfig(tune_epochs=1)
    genotype, record = select_by_perturbation(_supernet(), fold, net_cfg, scfg, tmp_path / "whole", cfg)
    check_compatible(genotype, net_cfg)
    ops = [d for d in record["decisions"] if d["step"] == "op"]
    assert len(ops) == 15 and all("none" not in d["masked_score"] for d in ops)
    for d in ops:  # the op chosen is the one whose removal left the lowest score
        assert d["masked_score"][d["chosen"]] == min(d["masked_score"].values())
    inputs = [d for d in record["decisions"] if d["step"] == "inputs"]
    assert len(inputs) == 3 and all(len(d["kept_inputs"]) == 2 for d in inputs)
    for d in inputs:  # the dropped input is the one whose removal hurt least
        assert d["masked_score"][0][str(d["dropped_inputs"][0])] == max(d["masked_score"][0].values())
    assert (tmp_path / "whole" / "FINISHED").is_file()

    calls = {"n": 0}
    tune = perturbation._tune

    def dies_on_the_third_tuning(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return tune(*args, **kwargs)

    monkeypatch.setattr(perturbation, "_tune", dies_on_the_third_tuning)
    with pytest.raises(KeyboardInterrupt):
        select_by_perturbation(_supernet(), fold, net_cfg, scfg, tmp_path / "killed", cfg)
    monkeypatch.setattr(perturbation, "_tune", tune)
    again, resumed = select_by_perturbation(_supernet(), fold, net_cfg, scfg, tmp_path / "killed", cfg, resume=True)
    assert again.to_dict() == genotype.to_dict()
    assert resumed["decisions"] == record["decisions"] and resumed["final_val"] == record["final_val"]
    stored, _ = select_by_perturbation(_supernet(1), fold, net_cfg, scfg, tmp_path / "killed", cfg)
    assert stored.to_dict() == from_dict(record["genotype"]).to_dict()  # a finished selection is read back
