"""Retraining: selection on training speakers only, one test scoring, drop-path ramp, and the
non-finite-loss stop that keeps the last good checkpoint."""

import json

import numpy as np
import pytest
import torch

import emodarts_core.training.train as train_mod
from data_prep import Split
from emodarts_core.space.baselines import build_baseline
from emodarts_core.training.data import make_loader, to_dataset
from emodarts_core.training.device import Precision
from emodarts_core.training.loop import NonFiniteLossError, evaluate
from emodarts_core.training.rundir import RunDir
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.training.train import run_retrain
from loop_helpers import single_thread, tiny_fold, tiny_net, train_cfg  # noqa: F401


def _genotype():
    torch.manual_seed(0)
    return SearchNetwork(tiny_net()).genotype()


def test_selection_never_looks_at_test_speakers(tmp_path):
    fold = tiny_fold()
    other = tiny_fold()
    rng = np.random.default_rng(5)
    other.test = Split(X=rng.standard_normal(fold.test.X.shape).astype(np.float32),
                       y=rng.permutation(fold.test.y), ids=fold.test.ids, speakers=fold.test.speakers)
    cfg = train_cfg(epochs=3)
    a = run_retrain(fold, "cnn", tiny_net(), cfg, tmp_path / "a")
    b = run_retrain(other, "cnn", tiny_net(), cfg, tmp_path / "b")
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history) and a.best_epoch == b.best_epoch
    assert a.best_epoch == max(a.history, key=lambda r: r["val_ua"])["epoch"]
    assert all("test" not in key for r in a.history for key in r)
    # the kept weights are those of the best epoch: they reproduce its selection UA
    model = build_baseline("cnn", 4, (16, 16))
    model.load_state_dict(RunDir(tmp_path / "a").load_torch("model.pt"))
    loader = make_loader(to_dataset(fold.search.X, fold.search.y), 4, shuffle=False)
    ev = evaluate(model, loader, torch.device("cpu"), Precision(torch.device("cpu"), False))
    assert ev["ua"] == a.history[a.best_epoch - 1]["val_ua"]


def test_drop_path_ramps_linearly(tmp_path):
    result = run_retrain(tiny_fold(), _genotype(), tiny_net(), train_cfg(epochs=2, drop_path_prob=0.2),
                         tmp_path / "run")
    assert [r["drop_path_prob"] for r in result.history] == [0.0, 0.1]


def test_non_finite_loss_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_step = train_mod.weight_step

    def poisoned(model, params, x, y, *args):
        calls["n"] += 1
        if calls["n"] == 4:  # first step of epoch 2 (3 steps per epoch)
            x = x.clone()
            x[0] = float("inf")
        return real_step(model, params, x, y, *args)

    monkeypatch.setattr(train_mod, "weight_step", poisoned)
    run_dir = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as err:
        run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(epochs=3), run_dir)
    message = str(err.value)
    assert "epoch 2" in message and "last good checkpoint (epoch 1)" in message and "resume=True" in message
    rd = RunDir(run_dir)
    assert rd.load_checkpoint()["epoch"] == 1 and len(rd.read_epochs()) == 1 and not rd.is_finished()

    monkeypatch.setattr(train_mod, "weight_step", real_step)
    resumed = run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(epochs=3), run_dir, resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert json.loads((run_dir / "FINISHED").read_text())["kind"] == "retrain"
