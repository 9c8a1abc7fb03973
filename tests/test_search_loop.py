"""The search loop end to end on CPU, its run directory, config validation and guards."""

import json

import numpy as np
import pytest

from emodarts_core.space import genotypes
from emodarts_core.config import ConfigError, NetworkConfig
from emodarts_core.space.genotypes import Genotype
from emodarts_core.training.loop import NonFiniteLossError
from emodarts_core.training.metrics import count_parameters
from emodarts_core.space.derived import DerivedNetwork
from emodarts_core.training.rundir import RunExistsError
from emodarts_core.darts import memory
from emodarts_core.darts.search import (CollapseWarning, checkpoint_plan, parameter_free_share, run_search,
                                        seq_collapsed)
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.training.train import run_retrain
from loop_helpers import (budget_between_gb, search_cfg, single_thread, tiny_fold, tiny_net, train_cfg,  # noqa: F401
                          without_timing)

SEARCH_FILES = {"config.json", "genotype.json", "alpha_history.json", "metrics.csv", "metrics.jsonl",
                "checkpoint.pt", "FINISHED"}
RETRAIN_FILES = {"config.json", "metrics.csv", "metrics.jsonl", "checkpoint.pt", "model.pt", "result.json",
                 "FINISHED"}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("search") / "run"
    return run_search(tiny_fold(), tiny_net(), search_cfg(epochs=2), run_dir)


def test_tiny_search_then_retrain_end_to_end(searched, tmp_path):
    rd = searched.run_dir
    assert SEARCH_FILES <= {p.name for p in rd.iterdir()}
    assert len(searched.history) == 2
    assert genotypes.load(rd / "genotype.json") == searched.genotype
    config = json.loads((rd / "config.json").read_text())
    assert config["network"]["input_size"] == [16, 16] and config["search"]["epochs"] == 2
    assert config["data"]["splits"]["search"]["ids"] == tiny_fold().search.ids
    alpha = json.loads((rd / "alpha_history.json").read_text())
    assert [e["epoch"] for e in alpha["epochs"]] == [1, 2]
    assert np.asarray(alpha["epochs"][-1]["probs"]["seq"]).shape[1] == len(alpha["primitives"]["seq"])
    assert set(alpha["epochs"][-1]["param_free"]) == {"normal", "reduce", "seq"}
    assert len((rd / "metrics.csv").read_text().splitlines()) == 3
    for record in searched.history:
        assert 0.0 <= record["val_ua"] <= 1.0 and np.isfinite(record["train_loss"])

    fold = tiny_fold()
    result = run_retrain(fold, searched.genotype, tiny_net(), train_cfg(epochs=2), tmp_path / "retrain")
    assert RETRAIN_FILES <= {p.name for p in (tmp_path / "retrain").iterdir()}
    assert result.confusion.sum() == len(fold.test.y) and result.confusion.shape == (4, 4)
    assert result.best_epoch in (1, 2)
    assert result.params == count_parameters(DerivedNetwork(searched.genotype, tiny_net()))
    stored = json.loads((tmp_path / "retrain" / "result.json").read_text())
    assert stored["test_ua"] == result.test_ua and "training speakers" in stored["selection"]


@pytest.mark.parametrize("how", ["every edge", "within a budget"])
def test_checkpointed_search_equals_the_plain_one(searched, tmp_path, how):
    """Activation checkpointing (of every edge, or of the edges a memory budget needs)
    changes memory and time only: same history, alphas, genotype."""
    cfg = (search_cfg(epochs=2, checkpointing="on") if how == "every edge"
           else search_cfg(epochs=2, checkpointing="auto",
                           memory_budget_gb=budget_between_gb(tiny_net(), search_cfg().batch_size)))
    result = run_search(tiny_fold(), tiny_net(), cfg, tmp_path / "ckpt")
    finished = json.loads((tmp_path / "ckpt" / "FINISHED").read_text())
    n_edges = len(SearchNetwork(tiny_net()).mixed_ops())
    assert finished["activation_checkpointing"] is True
    assert (finished["checkpointed_edges"] == n_edges) == (how == "every edge") and finished["checkpointed_edges"] > 0
    assert result.genotype == searched.genotype
    plain, ckpt = without_timing(searched.history), without_timing(result.history)
    assert [r["epoch"] for r in plain] == [r["epoch"] for r in ckpt]
    for a, b in zip(plain, ckpt):
        for key in ("train_loss", "val_loss", "val_ua", "train_acc"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    alphas = [json.loads((d / "alpha_history.json").read_text())["epochs"][-1]["probs"]
              for d in (searched.run_dir, tmp_path / "ckpt")]
    for kind in alphas[0]:
        np.testing.assert_allclose(alphas[0][kind], alphas[1][kind], rtol=1e-5, atol=1e-7)


def test_auto_checkpointing_follows_the_memory_plan(monkeypatch):
    calls = []
    real_plan = memory.plan_checkpointing
    monkeypatch.setattr(memory, "plan_checkpointing", lambda *a: calls.append(a) or real_plan(*a))
    edges = tuple(SearchNetwork(tiny_net()).mixed_ops())
    assert checkpoint_plan(tiny_net(), search_cfg(checkpointing="off"), "cpu").edges == ()
    assert checkpoint_plan(tiny_net(), search_cfg(checkpointing="on"), "cpu").edges == edges
    assert not calls  # "on" and "off" ask no estimate
    budget = checkpoint_plan(tiny_net(), search_cfg(checkpointing="auto", memory_budget_gb=0.5), "cpu")
    assert calls[-1][-1] == 2**29 and budget.budget == 2**29
    checkpoint_plan(tiny_net(), search_cfg(checkpointing="auto"), "cpu")
    assert calls[-1][-1] is None  # no budget: the memory available on the device
    with pytest.raises(ConfigError, match="checkpointing"):
        search_cfg(checkpointing="yes").validate()
    for bad in (0, -1.0, True, "4"):
        with pytest.raises(ConfigError, match="memory_budget_gb"):
            search_cfg(memory_budget_gb=bad).validate()


def test_second_order_search_runs(tmp_path):
    result = run_search(tiny_fold(n_search=8), tiny_net(), search_cfg(epochs=1, order=2), tmp_path / "r")
    assert len(result.history) == 1 and np.isfinite(result.history[0]["val_loss"])


def test_finished_run_is_never_overwritten(searched):
    before = {p.name: p.stat().st_mtime_ns for p in searched.run_dir.iterdir()}
    with pytest.raises(RunExistsError, match="finished run"):
        run_search(tiny_fold(), tiny_net(), search_cfg(epochs=2), searched.run_dir)
    again = run_search(tiny_fold(), tiny_net(), search_cfg(epochs=2), searched.run_dir, resume=True)
    assert again.genotype == searched.genotype and again.history == searched.history
    assert {p.name: p.stat().st_mtime_ns for p in searched.run_dir.iterdir()} == before


def test_resume_with_a_different_config_is_refused(searched):
    with pytest.raises(ConfigError, match="search.epochs"):
        run_search(tiny_fold(), tiny_net(), search_cfg(epochs=3), searched.run_dir, resume=True)


@pytest.mark.parametrize("net, cfg, fold, match", [
    (NetworkConfig(input_size=(16, 16), scope="gru_only"), search_cfg(), tiny_fold(), "unknown scope"),
    (tiny_net(), search_cfg(order=3), tiny_fold(), "order must be"),
    (tiny_net(), search_cfg(device="tpu"), tiny_fold(), "unknown device"),
    (tiny_net(), search_cfg(batch_size=0), tiny_fold(), "batch_size"),
    (tiny_net(input_size=(32, 32)), search_cfg(), tiny_fold(), "input_size"),
    (tiny_net(n_classes=3), search_cfg(), tiny_fold(), "n_classes=3"),
    (NetworkConfig(input_size=(18, 18)), search_cfg(), tiny_fold(), "cannot be reduced"),
])
def test_invalid_search_configs_fail_before_work(tmp_path, net, cfg, fold, match):
    with pytest.raises(ConfigError, match=match):
        run_search(fold, net, cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("spec, match", [
    ("transformer", "unknown baseline"),
    (Genotype([("skip_connect", 0), ("sep_conv_3x3", 1)], [2], [("max_pool_3x3", 0), ("skip_connect", 1)], [2],
              [("lstm_1", 0), ("rnn_1", 1)], [2]), "nodes"),
    (42, "Genotype or a baseline"),
])
def test_invalid_model_spec_fails_before_work(tmp_path, spec, match):
    with pytest.raises(ConfigError, match=match):
        run_retrain(tiny_fold(), spec, tiny_net(), train_cfg(), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_non_finite_search_loss_stops_with_clear_message(tmp_path):
    with pytest.raises(NonFiniteLossError, match="run stopped in epoch 1.*no epoch had finished"):
        run_search(tiny_fold(), tiny_net(), search_cfg(w_lr=1e30, w_lr_min=1e-3), tmp_path / "run")
    assert not (tmp_path / "run" / "FINISHED").exists()


def test_parameter_free_share_and_collapse_detection():
    net = tiny_net()
    probs = SearchNetwork(net).alpha_probs()
    share = parameter_free_share(probs, net)
    # Uniform-ish alphas: 4 of 9 CNN ops and 2 of the seq ops are parameter-free.
    assert share["normal"] == pytest.approx(4 / 9, abs=1e-3)
    assert share["seq"] == pytest.approx(2 / probs["seq"].shape[1], abs=1e-3)
    collapsed = Genotype([], [], [], [], [("skip_connect", 0), ("skip_connect", 1)], [2])
    assert seq_collapsed(collapsed)
    assert not seq_collapsed(Genotype([], [], [], [], [("skip_connect", 0), ("lstm_1", 1)], [2]))
    assert not seq_collapsed(Genotype([], [], [], [], [], []))


def test_collapsed_seq_genotype_warns(tmp_path, monkeypatch):
    real = SearchNetwork.genotype

    def collapsed(self):
        g = real(self)
        g.seq = [("skip_connect", i % 2) if i < 2 else ("skip_connect", 2) for i in range(len(g.seq))]
        return g

    monkeypatch.setattr(SearchNetwork, "genotype", collapsed)
    with pytest.warns(CollapseWarning, match="collapsed"):
        result = run_search(tiny_fold(n_search=8), tiny_net(), search_cfg(epochs=1), tmp_path / "run")
    assert result.history[-1]["seq_collapsed"] is True
