"""The evaluation's batch (`eval_batch_size`) changes how a run computes, not what it finds.

In eval mode a sample's prediction does not depend on its batch, so the end-of-epoch
evaluation of a search, the epoch selection of a retraining and its test scoring may run in
batches larger than the steps' (docs/PERFORMANCE.md, "Evaluating in larger batches"). These
tests run the same search and the same retraining with an evaluation batch of 1 and of 64
and require the same weights, α, genotype, selected epoch and predictions; only the
validation loss, summed in another order, may differ in its last digits. A run may also
resume with another evaluation batch than it started with. Its range is checked with
every other setting's (tests/test_config_ranges.py).
"""

import math

import numpy as np
import pytest
import torch

from emodarts_core.darts.search import run_search
from emodarts_core.training import loop
from emodarts_core.training import train as train_module
from emodarts_core.training.rundir import RunDir
from emodarts_core.training.train import run_retrain
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net, train_cfg  # noqa: F401

# A float32 sum of n per-sample losses in another order differs by at most about n * eps
# of the sum's magnitude (Higham, "Accuracy and Stability of Numerical Algorithms", 4.2);
# the per-sample logits agree to torch's float32 rounding.
F32_EPS = torch.finfo(torch.float32).eps


def _loss_tolerance(n_samples: int) -> float:
    return 4 * n_samples * F32_EPS


@pytest.fixture
def eval_batches(monkeypatch):
    """The batch size of every loader the runs evaluate on, in order."""
    seen, real = [], loop.evaluate

    def spy(model, loader, *args):
        seen.append(loader.batch_size)
        return real(model, loader, *args)

    monkeypatch.setattr(loop, "evaluate", spy)  # the epochs' evaluation (end_epoch)
    monkeypatch.setattr(train_module, "evaluate", spy)  # a retraining's test scoring
    return seen


def _same_except_loss(history_a, history_b, n_val):
    assert len(history_a) == len(history_b)
    for a, b in zip(history_a, history_b):
        assert {k: v for k, v in a.items() if k not in ("seconds", "val_loss")} == \
               {k: v for k, v in b.items() if k not in ("seconds", "val_loss")}
        if a["val_loss"] is not None:
            assert math.isclose(a["val_loss"], b["val_loss"], rel_tol=_loss_tolerance(n_val))


def test_search_is_the_same_at_any_evaluation_batch(tmp_path, eval_batches):
    fold = tiny_fold()
    one = run_search(fold, tiny_net(), search_cfg(epochs=3, eval_batch_size=1), tmp_path / "one")
    many = run_search(fold, tiny_net(), search_cfg(epochs=3, eval_batch_size=64), tmp_path / "many")
    assert eval_batches == [1] * 3 + [64] * 3  # the steps keep their batch of 4
    assert one.genotype == many.genotype
    _same_except_loss(one.history, many.history, len(fold.search.y))
    a, b = RunDir(tmp_path / "one").load_checkpoint(), RunDir(tmp_path / "many").load_checkpoint()
    for name, value in a["model"].items():
        assert torch.equal(b["model"][name], value), name
    assert a["alpha_history"] == b["alpha_history"]


@pytest.mark.parametrize("protocol", ["paper", "full"])
def test_retraining_selects_and_scores_the_same_at_any_evaluation_batch(tmp_path, protocol, eval_batches):
    fold = tiny_fold()
    runs = {bs: run_retrain(fold, "cnn", tiny_net(), train_cfg(epochs=3, protocol=protocol, eval_batch_size=bs),
                            tmp_path / f"eval{bs}")
            for bs in (1, 64)}
    per_run = 4 if protocol == "paper" else 1  # 3 epochs' selections (paper only), then the test
    assert eval_batches == [1] * per_run + [64] * per_run
    one, many = runs[1], runs[64]
    assert one.best_epoch == many.best_epoch
    assert one.test_ua == many.test_ua and one.test_wa == many.test_wa
    assert np.array_equal(one.confusion, many.confusion)
    _same_except_loss(one.history, many.history, len(fold.search.y))


def test_a_run_resumes_with_another_evaluation_batch(tmp_path):
    """The evaluation batch is one of the settings a resumed run may change (RESUMABLE_KEYS)."""
    run_dir = tmp_path / "run"
    run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(epochs=2, eval_batch_size=1), run_dir)
    again = run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(epochs=2, eval_batch_size=64), run_dir,
                        resume=True)
    assert [r["epoch"] for r in again.history] == [1, 2]
