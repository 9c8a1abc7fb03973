"""Each epoch's test UA in a file of its own, and the optimism of the best test epoch."""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
from loop_helpers import single_thread  # noqa: E402,F401

from emodarts_core.study.optimism import LABEL, optimism_markdown, optimism_table, run_gaps  # noqa: E402
from emodarts_core.training.device import Precision  # noqa: E402
from emodarts_core.training.optimism_trace import TEST_TRACE, read_trace, trace_callback  # noqa: E402
from emodarts_core.training.rundir import RunDir  # noqa: E402


def test_the_trace_scores_each_epoch_and_leaves_the_random_state_alone(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5))
    x, y = torch.randn(10, 3), torch.arange(10) % 4
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    cpu = torch.device("cpu")
    callback = trace_callback(RunDir(tmp_path), model, loader, cpu, Precision(cpu, False))
    state = torch.random.get_rng_state()
    callback({"epoch": 1})
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model.training  # evaluation puts the mode back
    with torch.no_grad():
        pred = model.eval()(x).argmax(1).numpy()
    model.train()
    ua = np.mean([np.mean(pred[y.numpy() == c] == c) for c in range(4)])
    callback({"epoch": 2})
    callback({"epoch": 2})  # an epoch written again (a resumed run) replaces its line
    trace = read_trace(tmp_path)
    assert [t["epoch"] for t in trace] == [1, 2]
    assert trace[1]["test_ua"] == pytest.approx(ua)
    assert (tmp_path / TEST_TRACE).is_file()


def _run(tmp_path, name, honest, per_epoch):
    d = tmp_path / name
    d.mkdir()
    (d / TEST_TRACE).write_text("".join(json.dumps({"epoch": e + 1, "test_ua": u, "test_wa": u}) + "\n"
                                        for e, u in enumerate(per_epoch)))
    return {"model": name.split("_")[0], "protocol": "full", "fold": 1, "seed": 0, "arch": np.nan,
            "ua": honest, "run_dir": str(d)}


def test_the_gap_is_the_best_epoch_minus_the_honest_last_epoch(tmp_path):
    study = pd.DataFrame([_run(tmp_path, "emodarts_a", 60.0, [0.5, 0.7, 0.6]),
                          _run(tmp_path, "emodarts_b", 50.0, [0.5, 0.5]),
                          _run(tmp_path, "random_a", 40.0, [0.4, 0.45, 0.4]),
                          {"model": "cnn", "protocol": "paper", "fold": 1, "seed": 0, "arch": np.nan, "ua": 70.0,
                           "run_dir": str(tmp_path)}])
    gaps = run_gaps(study)
    assert list(gaps["gap"]) == pytest.approx([10.0, 0.0, 5.0])
    assert list(gaps["best_epoch"]) == [2, 1, 2]
    table = optimism_table(study).set_index("model")
    assert table.loc["emodarts", "gap_mean"] == pytest.approx(5.0) and table.loc["emodarts", "n_runs"] == 2
    assert "cnn" not in table.index  # paper runs select on training speakers: no trace, no row
    text = optimism_markdown(optimism_table(study))
    assert LABEL in text and "| emodarts | 2 | 55.0 | 60.0 | +5.0 | +10.0 | 1.5 |" in text


def test_a_full_retraining_traces_its_epochs_and_trains_as_it_would_without(tmp_path, monkeypatch):
    from loop_helpers import tiny_fold, tiny_net, train_cfg, without_timing

    from emodarts_core.space.sampling import random_genotype
    from emodarts_core.training import train

    fold, net = tiny_fold(), tiny_net()
    genotype = random_genotype(net, np.random.default_rng(0))
    cfg = train_cfg(protocol="full", epochs=2)
    traced = train.run_retrain(fold, genotype, net, cfg, tmp_path / "traced")
    trace = read_trace(tmp_path / "traced")
    assert [t["epoch"] for t in trace] == [1, 2]
    assert trace[-1]["test_ua"] == pytest.approx(traced.test_ua)  # the last epoch is the honest score
    monkeypatch.setattr(train, "trace_callback", lambda *args: (lambda record: None))
    plain = train.run_retrain(fold, genotype, net, cfg, tmp_path / "plain")
    assert not (tmp_path / "plain" / TEST_TRACE).exists()
    assert plain.test_ua == traced.test_ua
    assert without_timing(plain.history) == without_timing(traced.history)
    a, b = (torch.load(tmp_path / d / "model.pt") for d in ("traced", "plain"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    paper = train.run_retrain(fold, genotype, net, dataclasses.replace(cfg, protocol="paper"), tmp_path / "paper")
    assert paper is not None and not (tmp_path / "paper" / TEST_TRACE).exists()


def test_traces_are_read_from_a_packed_study(tmp_path):
    import shutil

    from emodarts_core.study.results import collect_study
    from emodarts_core.study.results.pack import pack_study

    root = tmp_path / "emodb"
    d = root / "emodarts" / "fold1" / "seed0" / "retrain-full"
    d.mkdir(parents=True)
    study = {"dataset": "emodb", "protocol": "full", "model": "emodarts", "scope": "emodarts", "fold": 1, "seed": 0}
    (d / "config.json").write_text(json.dumps({"kind": "retrain", "study": study}))
    (d / "result.json").write_text(json.dumps({"test_ua": 0.5, "test_wa": 0.5, "params": 10, "n_test": 8}))
    (d / TEST_TRACE).write_text("".join(json.dumps({"epoch": e, "test_ua": u, "test_wa": u}) + "\n"
                                        for e, u in ((1, 0.55), (2, 0.5))))
    pack_study(root)
    shutil.rmtree(root / "emodarts")
    gaps = run_gaps(collect_study(root), root)
    assert list(gaps["gap"]) == pytest.approx([5.0]) and list(gaps["best_epoch"]) == [1]


def test_the_seeds_agreement_per_selection_rule_reads_the_retrained_genotypes(tmp_path):
    from emodarts_core.study.diagnosis import seed_agreement_markdown, seed_agreement_table
    from emodarts_core.study.results import collect_study

    a = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]], "reduce": [["max_pool_3x3", 0], ["skip_connect", 1]]}
    b = {"normal": [["sep_conv_3x3", 0], ["avg_pool_3x3", 1]], "reduce": [["max_pool_3x3", 0], ["skip_connect", 1]]}
    root = tmp_path / "emodb"
    for seed, genotype in enumerate((a, b)):
        d = root / "emodarts_pt" / "fold1" / f"seed{seed}" / "retrain-full"
        d.mkdir(parents=True)
        study = {"dataset": "emodb", "protocol": "full", "model": "emodarts_pt", "fold": 1, "seed": seed}
        (d / "config.json").write_text(json.dumps({"kind": "retrain", "study": study, "model": {"genotype": genotype}}))
        (d / "result.json").write_text(json.dumps({"test_ua": 0.5, "test_wa": 0.5, "params": 10, "n_test": 8}))
    table = seed_agreement_table(root, collect_study(root))
    assert list(table["agreement"]) == pytest.approx([0.75]) and list(table["seeds"]) == [2]
    assert "| emodarts_pt | 0.75 | 0.750 |" in seed_agreement_markdown(table)


def test_the_consensus_section_reads_one_record_per_fold_from_a_packed_study(tmp_path):
    import shutil

    from emodarts_core.study.diagnosis import consensus_markdown, consensus_table
    from emodarts_core.study.results.pack import pack_study

    root = tmp_path / "emodb"
    seq = [["skip_connect", 0], ["rnn_1", 1], ["skip_connect", 1], ["skip_connect", 2]]
    for fold, (mean, pairs) in {2: (0.5, 0.25), 1: (0.4, 0.1)}.items():
        for seed in (0, 1):  # each seed retrains the same genotype; the table reads one record per fold
            d = root / "consensus" / f"fold{fold}" / f"seed{seed}"
            d.mkdir(parents=True)
            (d / "genotype.json").write_text(json.dumps({"seq": seq}))
            (d / "consensus.json").write_text(json.dumps({"report": {
                "mean_with_seeds": {"all": mean, "seq": 0.75}, "seed_pairs": {"all": pairs, "seq": 0.5}}}))
    pack_study(root)
    shutil.rmtree(root / "consensus")
    table = consensus_table(root)
    assert list(table["fold"]) == [1, 2] and list(table["with_seeds"]) == [0.4, 0.5]
    assert list(table["seq_skips"]) == ["3 of 4", "3 of 4"]
    assert "| 2 | 0.50 | 0.25 | 0.75 | 0.50 | 3 of 4 |" in consensus_markdown(table)
    assert consensus_markdown(consensus_table(tmp_path / "nothing")) == ""


def test_each_rule_is_compared_with_the_alpha_parse_of_the_same_fold_and_seed(tmp_path):
    from emodarts_core.study.diagnosis import rule_agreement_markdown, rule_agreement_table
    from emodarts_core.study.results import collect_study

    a = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]], "reduce": [["max_pool_3x3", 0], ["skip_connect", 1]]}
    b = {"normal": [["sep_conv_3x3", 0], ["avg_pool_3x3", 1]], "reduce": [["max_pool_3x3", 0], ["skip_connect", 1]]}
    root = tmp_path / "emodb"
    # seed 0: the rule keeps the parse (1.0); seed 1: it changes one edge of four (0.75); seed 2 has no parse
    for model, seed, genotype in (("emodarts", 0, a), ("emodarts_pt", 0, a), ("emodarts", 1, a),
                                  ("emodarts_pt", 1, b), ("emodarts_pt", 2, b)):
        d = root / model / "fold1" / f"seed{seed}" / "retrain-full"
        d.mkdir(parents=True)
        study = {"dataset": "emodb", "protocol": "full", "model": model, "fold": 1, "seed": seed}
        (d / "config.json").write_text(json.dumps({"kind": "retrain", "study": study, "model": {"genotype": genotype}}))
        (d / "result.json").write_text(json.dumps({"test_ua": 0.5, "test_wa": 0.5, "params": 10, "n_test": 8}))
    table = rule_agreement_table(root, collect_study(root))
    assert table[["rule", "parse", "fold", "seeds"]].values.tolist() == [["emodarts_pt", "emodarts", 1, 2]]
    assert list(table["agreement"]) == pytest.approx([0.875])
    assert "| emodarts_pt | emodarts | 0.88 | 0.875 |" in rule_agreement_markdown(table)
