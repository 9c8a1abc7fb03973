"""What the step benchmark times: the supernet built from one seed, and one search step of it.

A search step is what the search loop does per batch (`emodarts_core.darts.search`): one
α step (the architect, first or second order) on a validation batch, then one SGD weight
step on a training batch. `build_supernet` builds the network of either form from the
same seed, so both rows of a benchmark start from the same weights and α;
`search_step` returns the step as a function of no arguments, on batches drawn once;
`arithmetic_floor` counts the step's arithmetic and measures this machine's rate
(`emodarts_core.perf.arithmetic`). `tools/profile_search_step.py` and the arithmetic
tests time and count the same step.
"""

from __future__ import annotations

import gc

import torch

from emodarts_core import fast
from emodarts_core.config import SearchConfig
from emodarts_core.darts.architect import Architect
from emodarts_core.networks import search_network
from emodarts_core.perf import arithmetic
from emodarts_core.runtime import heap
from emodarts_core.training.device import Precision
from emodarts_core.training.loop import weight_step


def release_freed_memory(dev: torch.device) -> None:
    """Hand memory freed by an earlier configuration back to the system (glibc's
    `malloc_trim`, CUDA's cache), so that the next configuration's resident size starts
    from what it holds itself."""
    gc.collect()
    heap.release_freed_memory()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def build_supernet(net_cfg, form: str, dev: torch.device, checkpointing):
    """The supernet to time, built after `torch.manual_seed(0)` (so both rows start from the
    same weights and alphas): the fast form (`fast.networks.FastSearchNetwork`) for "fast",
    the plain one (`space.search_network.SearchNetwork`) for "plain", which is never
    checkpointed (exact DARTS)."""
    torch.manual_seed(0)
    with fast.enabled_as(form == "fast"):
        model = search_network(net_cfg)
    if form == "fast":
        model.set_checkpointing(checkpointing)
    return model.to(dev)


def search_step(model, net_cfg, cfg: SearchConfig, precision: Precision, dev: torch.device, batch: int):
    """One search step of `model` as the search loop runs it, as a function of no arguments:
    an alpha step (`Architect`, order `cfg.order`) on a validation batch, then an SGD weight
    step on a training batch, both drawn once (seed 1, so both implementations get the
    same batches)."""
    weights = list(model.weights())
    w_optim = torch.optim.SGD(weights, lr=cfg.w_lr, momentum=cfg.w_momentum, weight_decay=cfg.w_weight_decay)
    scaler = precision.scaler()
    architect = Architect(model, cfg.w_momentum, cfg.w_weight_decay, cfg.alpha_lr, cfg.alpha_betas,
                          cfg.alpha_weight_decay,
                          autocast=precision.autocast if not precision.needs_scaler else None)
    shape = (batch, net_cfg.in_channels, *net_cfg.input_size)
    gen = torch.Generator().manual_seed(1)
    tx, vx = torch.randn(shape, generator=gen).to(dev), torch.randn(shape, generator=gen).to(dev)
    ty = torch.randint(0, net_cfg.n_classes, (batch,), generator=gen).to(dev)
    vy = torch.randint(0, net_cfg.n_classes, (batch,), generator=gen).to(dev)

    def step():
        architect.step(tx, ty, vx, vy, cfg.w_lr, w_optim, cfg.order)
        weight_step(model, weights, tx, ty, w_optim, scaler, precision, cfg.w_grad_clip)

    return step


def arithmetic_floor(net_cfg, cfg: SearchConfig, precision: Precision, dev: torch.device, batch: int,
                     checkpointing, counted_batch: int = 2) -> arithmetic.StepFloor:
    """The fast step's counted arithmetic at `batch` (counted on a fresh network at
    `counted_batch` and scaled: `perf.arithmetic`) and this machine's dense matrix-product
    rate in the step's precision, measured now."""
    counted_batch = min(counted_batch, batch)
    model = build_supernet(net_cfg, "fast", dev, checkpointing)
    count = arithmetic.count_flops(search_step(model, net_cfg, cfg, precision, dev, counted_batch))
    del model
    release_freed_memory(dev)
    rate = arithmetic.matmul_gflops(dev, precision.dtype)
    return arithmetic.StepFloor(arithmetic.scale_to_batch(count, counted_batch, batch).total / 1e9, rate)


__all__ = ["arithmetic_floor", "build_supernet", "release_freed_memory", "search_step"]
