"""K stacked searches against K single searches of the plain form (docs/PERFORMANCE.md,
"Many searches in one step").

In float64 with the attention ops' inter-layer dropout off, a stacked search must equal
the single searches step by step: weights, α, BatchNorm statistics, the α history (one
epoch holds two steps here), the records and the genotypes, in first and second order,
with the `prior` control in the same stack. The comparison must fail for a stack that
clips all copies by one shared norm or draws every copy from one seed. A copy whose loss
turns non-finite stops with a single search's message while the others finish, and every
run directory holds exactly the files of a single search.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from emodarts_core import fast
from emodarts_core.config import ConfigError
from emodarts_core.darts import search_steps, stacked, stacked_step
from emodarts_core.darts.search import run_search
from emodarts_core.darts.stacked import run_stacked_search
from emodarts_core.space import ops
from emodarts_core.training.loop import NonFiniteLossError
from emodarts_core.training.rundir import RunDir
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net  # noqa: F401

TOLERANCE = 1e-9  # float64: rounding differences only (sums in another order), a few steps deep
# the records' losses are float32 by construction (training.loop computes the loss on logits.float())
RECORD_TOLERANCE = 1e-6


def configs(order: int) -> list:
    """Two seeds and the prior control of the second; a clip small enough to act on every step."""
    base = search_cfg(epochs=3, warmup_epochs=1, order=order, w_grad_clip=0.05, collapse_remedy="beta_decay", alpha_lr=0.05,
                      beta_decay_weight=0.5, eval_batch_size=8)
    return [dataclasses.replace(base, seed=0), dataclasses.replace(base, seed=1),
            dataclasses.replace(base, seed=1, freeze_alpha=True)]


@pytest.fixture
def float64_without_dropout(monkeypatch):
    """Float64 data and networks, and no dropout between the attention ops' recurrent layers."""
    to_dataset = search_steps.to_dataset

    def as_float64(X, y, indices=None):
        ds = to_dataset(X, y, indices)
        return TensorDataset(ds.tensors[0].double(), ds.tensors[1])

    init = ops.RecurrentAttention.__init__

    def without_dropout(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.rnn.dropout = 0.0

    monkeypatch.setattr(search_steps, "to_dataset", as_float64)
    monkeypatch.setattr(ops.RecurrentAttention, "__init__", without_dropout)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def singles(tmp_path, cfgs) -> list:
    with fast.disabled():  # the plain form (emodarts_core.space) is the reference
        return [run_search(tiny_fold(), tiny_net(), c, tmp_path / f"single{k}").run_dir for k, c in enumerate(cfgs)]


def stack(tmp_path, cfgs) -> list:
    dirs = [tmp_path / f"stacked{k}" for k in range(len(cfgs))]
    outcomes = run_stacked_search(tiny_fold(), tiny_net(), cfgs, dirs)
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    return dirs


def _relative(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12)) if a.size else 0.0


def difference(single_dirs, stacked_dirs) -> tuple[float, float]:
    """The largest relative differences between the runs' checkpoints (weights, α, BatchNorm
    statistics, optimiser state), α histories and genotype files (inf where a genotype
    differs), and between their epoch records."""
    worst = records = 0.0
    for a, b in zip(single_dirs, stacked_dirs):
        ca, cb = RunDir(a).load_checkpoint(), RunDir(b).load_checkpoint()
        assert ca["epoch"] == cb["epoch"] and set(ca["model"]) == set(cb["model"])
        for name, t in ca["model"].items():
            worst = max(worst, _relative(t.numpy(), cb["model"][name].numpy()))
        for opt in ("w_optim", "a_optim"):
            assert set(ca[opt]["state"]) == set(cb[opt]["state"])
            for i, entry in ca[opt]["state"].items():
                for key, value in entry.items():
                    worst = max(worst, _relative(value.numpy(), cb[opt]["state"][i][key].numpy()))
        ha, hb = (json.loads((d / "alpha_history.json").read_text()) for d in (a, b))
        for ea, eb in zip(ha["epochs"], hb["epochs"], strict=True):
            for kind in ea["probs"]:
                worst = max(worst, _relative(ea["probs"][kind], eb["probs"][kind]))
            if ea["genotype"] != eb["genotype"]:
                return float("inf"), records
        ra = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()]
        rb = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
        for x, y in zip(ra, rb, strict=True):
            for key in ("lr", "train_loss", "val_loss", "alpha_loss", "train_acc", "val_ua"):
                if x[key] is None or y[key] is None:
                    assert x[key] == y[key]
                else:
                    records = max(records, _relative(x[key], y[key]))
        worst = max(worst, _nested(*(json.loads((d / "genotype.json").read_text()) for d in (a, b))))
    return worst, records


def _nested(x, y) -> float:
    """The largest relative difference between the numbers of two JSON values; inf where
    anything else (a genotype's ops, a message, a flag) differs."""
    if isinstance(x, dict) and isinstance(y, dict):
        return max([_nested(x[k], y[k]) for k in x], default=0.0) if set(x) == set(y) else float("inf")
    if isinstance(x, list) and isinstance(y, list):
        return max([_nested(u, v) for u, v in zip(x, y)], default=0.0) if len(x) == len(y) else float("inf")
    if isinstance(x, float) and isinstance(y, float):
        return _relative(x, y)
    return 0.0 if x == y else float("inf")


@pytest.mark.parametrize("order", [1, 2])
def test_stacked_searches_equal_single_searches(tmp_path, float64_without_dropout, order):
    cfgs = configs(order)
    state, records = difference(singles(tmp_path, cfgs), stack(tmp_path, cfgs))
    assert state < TOLERANCE and records < RECORD_TOLERANCE


def test_a_shared_clipping_norm_or_a_shared_seed_fails_the_comparison(tmp_path, float64_without_dropout,
                                                                      monkeypatch):
    cfgs = configs(1)[:2]
    reference = singles(tmp_path, cfgs)
    per_copy = stacked_step.per_copy_norm
    with monkeypatch.context() as m:  # one norm over all copies, as clip_grad_norm_ over the stack gives
        m.setattr(stacked_step, "per_copy_norm", lambda ts: per_copy(ts).norm().expand(ts[0].shape[0]))
        assert difference(reference, stack(tmp_path / "shared_norm", cfgs))[0] > RECORD_TOLERANCE
    networks = stacked.initial_networks
    with monkeypatch.context() as m:  # every copy drawn from the first copy's seed
        m.setattr(stacked, "initial_networks", lambda cfg, seeds, seed: networks(cfg, seeds[:1] * len(seeds), seed))
        assert difference(reference, stack(tmp_path / "shared_seed", cfgs))[0] > RECORD_TOLERANCE


def _files(run_dir) -> set:
    return {str(p.relative_to(run_dir).parent / p.name.split(".tfevents")[0]) for p in run_dir.rglob("*")
            if "lock" not in p.name}


def test_a_non_finite_copy_stops_alone_and_run_dirs_match_a_single_search(tmp_path, monkeypatch):
    cfgs = configs(1)
    single = run_search(tiny_fold(), tiny_net(), cfgs[0], tmp_path / "single")
    losses, calls = stacked_step.copy_losses, [0]

    def second_copy_diverges(logits, y):  # copy 1's loss turns NaN in its second epoch
        out = losses(logits, y)
        calls[0] += 1
        return out + torch.tensor([0.0, float("nan"), 0.0]) if calls[0] > 2 else out

    monkeypatch.setattr(stacked_step, "copy_losses", second_copy_diverges)
    dirs = [tmp_path / f"stacked{k}" for k in range(3)]
    outcomes = run_stacked_search(tiny_fold(), tiny_net(), cfgs, dirs)
    assert isinstance(outcomes[1], NonFiniteLossError)
    assert "run stopped in epoch 2: non-finite" in str(outcomes[1]) and "(epoch 1) is kept" in str(outcomes[1])
    assert not (dirs[1] / "FINISHED").exists() and RunDir(dirs[1]).load_checkpoint()["epoch"] == 1
    for k in (0, 2):
        assert outcomes[k].run_dir == dirs[k] and (dirs[k] / "FINISHED").exists()
        assert _files(dirs[k]) == _files(single.run_dir)
        a, b = RunDir(single.run_dir).load_checkpoint(), RunDir(dirs[k]).load_checkpoint()
        assert set(a) == set(b) and set(a["model"]) == set(b["model"])
        assert all(a["model"][n].shape == b["model"][n].shape for n in a["model"])
        assert set(a["w_optim"]) == set(b["w_optim"]) and a["w_optim"]["param_groups"] == b["w_optim"]["param_groups"]
        sa, sb = (json.loads((d / "FINISHED").read_text()) for d in (single.run_dir, dirs[k]))
        assert set(sa) == set(sb)
        ca, cb = (json.loads((d / "config.json").read_text()) for d in (single.run_dir, dirs[k]))
        assert set(ca) == set(cb) and ca["network"] == cb["network"]
    # the prior control's α never moved and its α optimiser never stepped, as a single prior run
    assert RunDir(dirs[2]).load_checkpoint()["a_optim"]["state"] == {}
    # a finished stack is returned as stored, and a single search resumes what a stacked one left
    again = run_stacked_search(tiny_fold(), tiny_net(), [cfgs[0], cfgs[2]], [dirs[0], dirs[2]], resume=True)
    assert [o.genotype for o in again] == [outcomes[0].genotype, outcomes[2].genotype]


def test_searches_that_differ_beyond_seed_and_prior_are_refused(tmp_path):
    cfgs = [search_cfg(seed=0), search_cfg(seed=1, alpha_lr=0.1)]
    with pytest.raises(ConfigError, match="alpha_lr"):
        run_stacked_search(tiny_fold(), tiny_net(), cfgs, [tmp_path / "a", tmp_path / "b"])
    assert not (tmp_path / "a").exists()
