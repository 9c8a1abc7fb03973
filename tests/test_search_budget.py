"""The search's budget in α steps, its verdict on whether the α moved, seeds per fold,
and the `prior` control (α frozen at their initial values)."""

import dataclasses
import json
import logging

import numpy as np
import pytest
import torch

from data_prep import FoldData, Split, load_fold
from emodarts_core.config import ConfigError, SearchConfig, preset
from emodarts_core.darts.budget import init_seed, search_budget, steps_per_epoch
from emodarts_core.darts.search import ALPHA_HISTORY, GENOTYPE, SearchBudgetWarning, run_search
from emodarts_core.space import genotypes
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.training.data import make_loader, stratified_halves, to_dataset
from emodarts_core.training.device import seed_everything
from emodarts_core.training.rundir import RunDir
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net  # noqa: F401

GEN_NET = dict(input_size=(128, 128), stem_stride=8)  # the smoke space on the generated corpus's 128x128 features


def _subset(split: Split, per_class: int) -> Split:
    keep = np.sort(np.concatenate([np.flatnonzero(split.y == c)[:per_class] for c in np.unique(split.y)]))
    return Split(X=split.X[keep], y=split.y[keep], ids=[split.ids[i] for i in keep],
                 speakers=[split.speakers[i] for i in keep])


@pytest.fixture(scope="module")
def generated_fold():
    """Fold 1 of the generated corpus, a few utterances per class (a search epoch in about a second)."""
    fold = load_fold("synthetic", None, 1)
    return FoldData(_subset(fold.search, 8), _subset(fold.train, 2), _subset(fold.test, 2), fold.classes, fold.fold)


def test_a_search_with_too_few_alpha_steps_says_its_genotype_is_the_initialisations(generated_fold, tmp_path,
                                                                                      caplog):
    cfg = search_cfg(epochs=None, alpha_steps=3, batch_size=8)  # the study's α lr, 3e-4
    with caplog.at_level(logging.INFO, logger="emodarts_core.darts.search"), \
            pytest.warns(SearchBudgetWarning, match="reflects the initialisation") as caught:
        result = run_search(generated_fold, preset("smoke", **GEN_NET), cfg, tmp_path / "s")
    message = str(caught[0].message)
    assert "alpha_steps" in message and "alpha_lr" in message
    # the budget, in α steps, is in the log before the first epoch
    assert "search budget:" in caplog.text and "α steps at α lr 0.0003" in caplog.text
    stored = json.loads((tmp_path / "s" / GENOTYPE).read_text())
    assert stored["metadata"]["alpha_moved"] is False
    assert "initialisation" in stored["metadata"]["message"]
    assert genotypes.load(tmp_path / "s" / GENOTYPE) == result.genotype  # the metadata does not disturb reading
    finished = json.loads((tmp_path / "s" / "FINISHED").read_text())
    assert finished["verdict"]["alpha_moved"] is False and finished["budget"]["alpha_steps"] >= 3
    # the diagnostics of every epoch: per cell type, near uniform after so few steps
    alpha = json.loads((tmp_path / "s" / ALPHA_HISTORY).read_text())
    assert alpha["verdict"] == stored["metadata"]
    for record, entry in zip(result.history, alpha["epochs"]):
        assert set(record["lift"]) == set(record["entropy"]) == set(record["margin"]) == {"normal", "reduce", "seq"}
        assert entry["lift"] == record["lift"]
        for kind in record["lift"]:
            assert 1.0 <= record["lift"][kind] < 1.2 and 0.99 < record["entropy"][kind] <= 1.0
        assert 0.0 <= record["agreement_initial"]["all"] <= 1.0
    assert result.history[-1]["alpha_updates"] == finished["budget"]["alpha_steps"]


def test_alpha_steps_fix_the_epochs_from_the_alpha_halfs_batches():
    fold = tiny_fold(n_search=16)
    train_idx, val_idx = stratified_halves(fold.search.y, 0)
    loaders = [make_loader(to_dataset(fold.search.X, fold.search.y, idx), 3, shuffle=True,
                           generator=torch.Generator()) for idx in (train_idx, val_idx)]
    steps = steps_per_epoch(len(train_idx), len(val_idx), 3)
    assert steps == min(len(loader) for loader in loaders) == 3  # 8 utterances a half: 3 + 3 + 2
    budget = search_budget(SearchConfig(epochs=None, alpha_steps=7, warmup_epochs=2, batch_size=3), steps)
    assert (budget.epochs, budget.alpha_steps) == (2 + 3, 9)    # ceil(7 / 3) = 3 epochs with α steps
    assert "9 α steps" in budget.describe() and "alpha_steps=7" in budget.describe()
    by_epochs = search_budget(SearchConfig(epochs=10, warmup_epochs=2), 6)
    assert (by_epochs.epochs, by_epochs.alpha_steps) == (10, 48)   # the study's 10 epochs on an EmoDB fold


def test_a_search_given_alpha_steps_runs_the_derived_epochs(tmp_path):
    fold = tiny_fold(n_search=16)  # 8 a half, batch 4: 2 steps an epoch
    with pytest.warns(SearchBudgetWarning):
        result = run_search(fold, tiny_net(), search_cfg(epochs=None, alpha_steps=3, warmup_epochs=1), tmp_path / "s")
    assert [r["alpha_updates"] for r in result.history] == [0, 2, 4]
    assert [r["alpha_step"] for r in result.history] == [False, True, True]


@pytest.mark.parametrize("bad, match", [
    ({"epochs": 10, "alpha_steps": 100}, "not both"),
    ({"epochs": None}, "not both or neither"),
    ({"epochs": None, "alpha_steps": 0}, "alpha_steps must be"),
    ({"alpha_lr": 0.0}, "alpha_lr must be"),
    ({"alpha_lr": 2.0}, "alpha_lr must be"),
    ({"alpha_betas": (0.5, 1.5)}, "alpha_betas"),
    ({"alpha_weight_decay": -1e-3}, "alpha_weight_decay"),
    ({"freeze_alpha": "yes"}, "freeze_alpha"),
])
def test_bad_budgets_are_refused_before_any_work(tmp_path, bad, match):
    with pytest.raises(ConfigError, match=match):
        run_search(tiny_fold(), tiny_net(), search_cfg(**bad), tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_two_folds_under_one_seed_start_from_different_alphas(tmp_path):
    one = tiny_fold()
    two = dataclasses.replace(one, fold=dataclasses.replace(one.fold, index=2))
    assert init_seed(0, 1) != init_seed(0, 2) and init_seed(0, 1) != init_seed(1, 1)
    assert init_seed(3, 4) == init_seed(3, 4)  # stable: a hash of (seed, fold), not of the process
    initial = {}
    for name, fold in (("fold1", one), ("fold2", two), ("fold1_again", one)):
        with pytest.warns(SearchBudgetWarning):
            run_search(fold, tiny_net(), search_cfg(epochs=1), tmp_path / name)
        initial[name] = json.loads((tmp_path / name / ALPHA_HISTORY).read_text())["initial"]["probs"]
    for kind in initial["fold1"]:
        assert not np.array_equal(initial["fold1"][kind], initial["fold2"][kind]), kind
        assert initial["fold1"][kind] == initial["fold1_again"][kind]


def test_the_prior_control_keeps_every_alpha_bit_identical_while_its_weights_learn(tmp_path):
    fold, net = tiny_fold(), tiny_net()
    run_search(fold, net, search_cfg(epochs=3, warmup_epochs=1, freeze_alpha=True, alpha_lr=0.1,
                                     collapse_remedy="beta_decay"), tmp_path / "prior")
    seed_everything(init_seed(0, fold.fold.index))
    start = SearchNetwork(net)
    trained = SearchNetwork(net)
    trained.load_state_dict(RunDir(tmp_path / "prior").load_checkpoint()["model"])
    for (name, a), (_, b) in zip(start.named_alphas(), trained.named_alphas()):
        assert torch.equal(a, b), f"{name} moved"
    moved = [not torch.equal(a, b) for (_, a), (_, b) in zip(start.named_weights(), trained.named_weights())]
    assert sum(moved) > len(moved) // 2
    metadata = json.loads((tmp_path / "prior" / GENOTYPE).read_text())["metadata"]
    assert metadata["alpha_frozen"] is True and metadata["alpha_steps"] == 0 and "prior control" in metadata["message"]
    history = json.loads((tmp_path / "prior" / ALPHA_HISTORY).read_text())
    assert all(e["probs"] == history["initial"]["probs"] for e in history["epochs"])
    assert all(e["genotype"] == history["initial"]["genotype"] for e in history["epochs"])
