"""The architecture search loop (DARTS over the joint CNN -> SeqNN supernet).

The fold's `search` split is divided 50/50 (stratified, seeded) into a weight-training
half and an alpha-validation half. Each step takes one alpha step on a validation batch
(the architect, first or second order; none during the first `warmup_epochs`) and then
one SGD step on a training batch. Each epoch ends with an evaluation on the validation
half and a record of the alpha softmax, the genotype and the alpha mass on
parameter-free ops (the early sign of the skip-connection collapse of paper section
6.2), followed by an atomic checkpoint from which `resume=True` continues bit-identically
on CPU. `SearchConfig.collapse_remedy` switches on a published collapse remedy (DARTS-,
the P-DARTS skip cap with the DARTS+ early stop, or β-DARTS' Beta-Decay; see
`emodarts_core.darts.collapse`), whose per-epoch state is recorded under "remedy".
An epoch record's "alpha_loss" is the mean validation loss of the batches the α steps
descended (None in warm-up epochs). Each epoch is also logged to TensorBoard event files
in `<run>/tb/` (`emodarts_core.training.tblog`; `SearchConfig.tensorboard`).

Did the α move? Each epoch record and α-history entry carries the diagnostics of
`emodarts_core.darts.diagnostics` per cell type: the lift (top op's weight over uniform),
the normalised entropy, the margin between the two strongest ops other than `none`, and
the agreement of the genotype with the previous epoch's and with the initial α's
(`alpha_history.json` also holds the initial α under "initial"). The search states its
budget in α steps when it starts (`emodarts_core.darts.budget`; logger
`emodarts_core.darts.search`, and printed with `progress`), and at its end a verdict: when
the mean lift stays below 1.2 or the genotype still changed in the last quarter of the
epochs, it says in plain words that the genotype reflects the initialisation rather than
the data, as a `SearchBudgetWarning`, in the log, in `genotype.json`'s "metadata"
("alpha_moved": false and the message) and in `FINISHED`.

`SearchConfig.freeze_alpha` runs the `prior` control: the same search with the α left at
their initial values (no α step; weights, warm-up and parse as in the search). The initial
weights and α of fold k under seed s are drawn from `budget.init_seed(s, k)`.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from emodarts_core.space import genotypes
from emodarts_core.darts.architect import Architect
from emodarts_core.darts.budget import init_seed, search_budget
from emodarts_core.darts.diagnostics import epoch_diagnostics, search_verdict
from emodarts_core.darts.collapse import (AuxiliarySkip, beta_decay_loss, beta_decay_weight, capped_genotype,
                                          darts_minus_beta)
from emodarts_core.config import ConfigError, NetworkConfig, SearchConfig, to_dict
from emodarts_core.training.data import make_loader, stratified_halves, to_dataset, to_device
from emodarts_core.training.normalise import NORMALISATION, fit_normaliser, normalised
from emodarts_core.training.device import Precision, resolve_device, seed_everything
from emodarts_core.space.genotypes import Genotype
from emodarts_core.fast.heap import retained_heap
from emodarts_core.training.loop import (NonFiniteLossError, claim_run_dir, describe_fold, end_epoch, environment,
                                         epoch_line, progress, restore_training_state, stop_message, training_state,
                                         validate_fold, weight_step)
from emodarts_core.darts.memory import CheckpointPlan, plan_checkpointing
from emodarts_core.training.rundir import RunDir
from emodarts_core.training.tblog import RunLog
from emodarts_core.networks import search_network
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.space.search_space import CNN_PRIMITIVES, seq_primitives

ALPHA_HISTORY = "alpha_history.json"
GENOTYPE = "genotype.json"
GENOTYPE_TEXT = "genotype.txt"  # the same genotype in pt.darts' Genotype(...) form
PARAMETER_FREE_OPS = ("none", "skip_connect", "max_pool_3x3", "avg_pool_3x3")
SEQ_COLLAPSE_OPS = ("none", "skip_connect")
log = logging.getLogger(__name__)


class CollapseWarning(UserWarning):
    """The SeqNN genotype chose only skip_connect/none: the search collapsed (paper section 6.2)."""


class SearchBudgetWarning(UserWarning):
    """The α barely left their initial values, or the genotype was still changing at the
    end: the genotype reflects the initialisation rather than the data."""


@dataclass
class SearchResult:
    genotype: Genotype
    history: list[dict]
    run_dir: Path


def primitives_of(net_cfg: NetworkConfig) -> dict[str, tuple[str, ...]]:
    """The op names of each alpha's columns, keyed like `SearchNetwork.alpha_probs()`."""
    out = {"normal": CNN_PRIMITIVES, "reduce": CNN_PRIMITIVES}
    if net_cfg.seq_cells:
        out["seq"] = seq_primitives(net_cfg.scope)
    return out


def parameter_free_share(probs: dict, net_cfg: NetworkConfig) -> dict[str, float]:
    """Per cell type, the mean over edges of the softmax mass on parameter-free ops."""
    prims = primitives_of(net_cfg)
    share = {}
    for kind, p in probs.items():
        mask = np.array([op in PARAMETER_FREE_OPS for op in prims[kind]])
        share[kind] = float(np.asarray(p)[:, mask].sum(axis=1).mean())
    return share


def seq_collapsed(genotype: Genotype) -> bool:
    """True when a SeqNN cell exists and every chosen op is skip_connect or none."""
    return bool(genotype.seq) and all(op in SEQ_COLLAPSE_OPS for op, _ in genotype.seq)


def _warn_collapse(genotype: Genotype, run_dir: Path) -> None:
    warnings.warn(f"the SeqNN genotype of {run_dir} is all skip_connect/none ({genotype.seq}): the search "
                  "collapsed (paper section 6.2). Use at most 3 SeqNN cells/nodes, fewer epochs, or a "
                  "collapse remedy (SearchConfig.collapse_remedy='darts_minus' or 'skip_cap'), and check "
                  "the parameter-free share in alpha_history.json.",
                  CollapseWarning, stacklevel=3)


def derive(model: SearchNetwork, net_cfg: NetworkConfig, search_cfg: SearchConfig,
           probs: dict | None = None) -> tuple[Genotype, dict | None]:
    """The genotype the search ends with, and the remedy's record for it (None without one).

    With the skip_cap remedy the normal and SeqNN cells hold at most `skip_cap`
    skip_connects (P-DARTS); otherwise it is the plain DARTS parse of the alphas.
    """
    if search_cfg.collapse_remedy != "skip_cap":
        return model.genotype(), None
    probs = dict(model.alpha_probs() if probs is None else probs)
    for kind in ("normal", "reduce"):  # PC-DARTS edge normalisation weighs the edges as in model.genotype()
        probs[kind] = model._parse_probs(kind, probs[kind])
    genotype, state = capped_genotype(probs, primitives_of(net_cfg), net_cfg, search_cfg.skip_cap)
    stop = search_cfg.skip_stop is not None and any(n >= search_cfg.skip_stop
                                                    for n in state["uncapped_skips"].values())
    return genotype, {"name": "skip_cap", "cap": search_cfg.skip_cap, **state, "stop": stop}


def checkpoint_plan(net_cfg: NetworkConfig, search_cfg: SearchConfig, device) -> CheckpointPlan:
    """Which mixed ops the search checkpoints: every one ("on"), none ("off"), or with
    "auto" only where memory demands it (`plan_checkpointing`), within
    `search_cfg.memory_budget_gb` or else the memory available on `device`."""
    if search_cfg.checkpointing == "auto":
        budget = None if search_cfg.memory_budget_gb is None else int(search_cfg.memory_budget_gb * 2**30)
        return plan_checkpointing(net_cfg, search_cfg.batch_size, search_cfg.order, device, budget)
    on = search_cfg.checkpointing == "on"
    with torch.device("meta"):  # the edges' names only: no memory, no estimate
        names = tuple(SearchNetwork(net_cfg).mixed_ops())
    return CheckpointPlan(names if on else (), len(names), None, None, True, 1.0 if on else 0.0)


def _stored_result(rd: RunDir) -> SearchResult:
    return SearchResult(genotypes.load(rd.file(GENOTYPE)), rd.read_epochs(), rd.path)


def _config(fold_data, net_cfg: NetworkConfig, search_cfg: SearchConfig) -> dict:
    return {"kind": "search", "network": to_dict(net_cfg), "search": to_dict(search_cfg),
            "data": describe_fold(fold_data), "environment": environment()}


def _say(text: str, printed: bool) -> None:
    """A line for the log (logger `emodarts_core.darts.search`), printed too with progress on."""
    log.info(text)
    if printed:
        tqdm.write(text)


def alpha_file(primitives: dict, initial: dict, alpha_history: list[dict], verdict: dict | None = None) -> dict:
    """The content of alpha_history.json: op names, the initial α's softmax and genotype,
    each epoch's entry and, once the search has ended, its verdict."""
    out = {"primitives": primitives, "parameter_free_ops": list(PARAMETER_FREE_OPS), "initial": initial,
           "epochs": alpha_history}
    if verdict is not None:
        out["verdict"] = verdict
    return out


def _verdict(history: list[dict], alpha_history: list[dict], budget) -> dict:
    """`diagnostics.search_verdict` of the finished search; the prior control says why its α did not move."""
    taken = history[-1].get("alpha_updates", 0) if history else 0
    verdict = search_verdict(history, [e["genotype"] for e in alpha_history], alpha_lr=budget.alpha_lr,
                             alpha_steps=taken)
    verdict["alpha_frozen"] = budget.frozen
    if budget.frozen:
        verdict["message"] = ("α frozen at their initial values (the prior control): the genotype is the "
                              "initialisation's and the parse rule's by construction.")
    return verdict


def run_search(fold_data, net_cfg: NetworkConfig, search_cfg: SearchConfig, run_dir,
               resume: bool = False) -> SearchResult:
    """Search an architecture on `fold_data.search`; writes and returns the run's result.

    All configuration is validated first (ConfigError). A run directory holding a finished
    run is returned as is with `resume=True` and refused otherwise (RunExistsError), as is
    an unfinished one without `resume=True`. A non-finite loss raises NonFiniteLossError
    and leaves the last good checkpoint in place.
    """
    net_cfg, search_cfg = net_cfg.validate(), search_cfg.validate()
    validate_fold(fold_data, net_cfg, ("search",))
    normaliser = fit_normaliser(search_cfg.normalise, fold_data.search)  # training speakers' search split only
    split = normalised(fold_data.search, normaliser)
    if len(split.y) < 2:
        raise ConfigError(f"the search split has {len(split.y)} sample(s); it needs at least 2 to be halved")
    device = resolve_device(search_cfg.device)
    precision = Precision(device, search_cfg.amp)

    train_idx, val_idx = stratified_halves(split.y, search_cfg.seed)
    train_set, val_set = to_dataset(split.X, split.y, train_idx), to_dataset(split.X, split.y, val_idx)
    generators = {"train": torch.Generator().manual_seed(search_cfg.seed + 1),
                  "val": torch.Generator().manual_seed(search_cfg.seed + 2)}
    bs, workers = search_cfg.batch_size, search_cfg.num_workers
    train_loader = make_loader(train_set, bs, shuffle=True, generator=generators["train"], device=device,
                               num_workers=workers)
    val_loader = make_loader(val_set, bs, shuffle=True, generator=generators["val"], device=device,
                             num_workers=workers)
    val_eval_loader = make_loader(val_set, search_cfg.eval_batch_size, shuffle=False, device=device,
                                  num_workers=workers)
    steps = min(len(train_loader), len(val_loader))
    budget = search_budget(search_cfg, steps)
    n_epochs = budget.epochs

    plan = checkpoint_plan(net_cfg, search_cfg, device)
    fold_index = getattr(getattr(fold_data, "fold", None), "index", None)
    seed_everything(init_seed(search_cfg.seed, fold_index))  # the initial weights and α of this fold
    model = search_network(net_cfg).to(device)  # the fast form unless the switch is off
    model.set_checkpointing(plan.edges)
    initial_probs = model.alpha_probs()
    initial_genotype, _ = derive(model, net_cfg, search_cfg, initial_probs)
    weights = list(model.weights())
    w_optim = torch.optim.SGD(weights, lr=search_cfg.w_lr, momentum=search_cfg.w_momentum,
                              weight_decay=search_cfg.w_weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(w_optim, T_max=n_epochs,
                                                           eta_min=search_cfg.w_lr_min)
    scaler = precision.scaler()
    architect = Architect(model, search_cfg.w_momentum, search_cfg.w_weight_decay, search_cfg.alpha_lr,
                          search_cfg.alpha_betas, search_cfg.alpha_weight_decay,
                          autocast=precision.autocast if not precision.needs_scaler else None)
    aux_skip = AuxiliarySkip(model, 0.0) if search_cfg.collapse_remedy == "darts_minus" else None

    rd, mode = claim_run_dir(run_dir, _config(fold_data, net_cfg, search_cfg), resume)
    tb = None
    try:  # the run directory's writer lock goes back (and the event file is closed) however the run ends
        if mode == "finished":
            return _stored_result(rd)
        rd.atomic_write_json(NORMALISATION, normaliser.to_dict())

        stateful = {"model": model, "w_optim": w_optim, "a_optim": architect, "scheduler": scheduler,
                    "scaler": scaler, "generators": generators}
        history, alpha_history, start = [], [], 0
        ckpt = rd.load_checkpoint() if mode == "resume" else None  # on CPU: RNG states must stay there
        if ckpt is not None:
            restore_training_state(ckpt, stateful)
            history, alpha_history, start = ckpt["history"], ckpt["alpha_history"], ckpt["epoch"]
        rd.rewrite_epochs(history)  # drops lines of an epoch the checkpoint did not reach
        if history and history[-1].get("remedy", {}).get("stop"):
            start = n_epochs  # killed after the early stop's checkpoint: nothing left to run

        prims = {k: list(v) for k, v in primitives_of(net_cfg).items()}
        initial = {"probs": {k: v.tolist() for k, v in initial_probs.items()}, "genotype": initial_genotype.to_dict()}
        tb = RunLog(rd.path, search_cfg.tensorboard)  # <run>/tb/, rewritten from the checkpoint's history
        tb.begin_search(prims, history, alpha_history)
        _say(budget.describe(), search_cfg.progress)
        epochs = progress(range(start, n_epochs), enabled=search_cfg.progress, desc="search",
                          total=n_epochs - start, leave=True)
        with retained_heap(device.type == "cpu"):  # no page-fault storm per step (emodarts_core.fast.heap)
            for epoch in epochs:
                began = time.perf_counter()
                w_lr = scheduler.get_last_lr()[0]
                if aux_skip is not None:
                    aux_skip.beta = darts_minus_beta(epoch, n_epochs, search_cfg.darts_minus_beta)
                penalty, penalty_weight = None, 0.0
                if search_cfg.collapse_remedy == "beta_decay":
                    penalty = beta_decay_loss
                    penalty_weight = beta_decay_weight(epoch, n_epochs, search_cfg.beta_decay_weight)
                # weights only while warming up, and throughout the prior control (α frozen)
                update_alphas = epoch >= search_cfg.warmup_epochs and not search_cfg.freeze_alpha
                model.train()
                loss_sum, correct, seen = 0.0, 0, 0
                alpha_loss_sum, alpha_seen = 0.0, 0
                try:
                    batches = progress(zip(train_loader, val_loader), enabled=search_cfg.progress,
                                       desc=f"epoch {epoch + 1}", total=steps)
                    for train_batch, val_batch in batches:
                        tx, ty = to_device(train_batch, device)
                        vx, vy = to_device(val_batch, device)
                        if update_alphas:  # the α loss: L_val of the batch the α step descends
                            alpha_loss = architect.step(tx, ty, vx, vy, w_lr, w_optim, search_cfg.order, penalty,
                                                        penalty_weight)
                            alpha_loss_sum, alpha_seen = alpha_loss_sum + alpha_loss * len(vy), alpha_seen + len(vy)
                        loss, hits = weight_step(model, weights, tx, ty, w_optim, scaler, precision,
                                                 search_cfg.w_grad_clip)
                        loss_sum, correct, seen = loss_sum + loss * len(ty), correct + hits, seen + len(ty)
                    ev = end_epoch(scheduler, model, val_eval_loader, device, precision)
                except NonFiniteLossError as err:
                    raise NonFiniteLossError(stop_message(rd, epoch + 1, err)) from None

                probs = model.alpha_probs()
                genotype, remedy = derive(model, net_cfg, search_cfg, probs)
                if aux_skip is not None:
                    remedy = {"name": "darts_minus", "beta": aux_skip.beta}
                elif penalty is not None:
                    remedy = {"name": "beta_decay", "weight": penalty_weight}
                share = parameter_free_share(probs, net_cfg)
                previous = alpha_history[-1]["genotype"] if alpha_history else initial_genotype
                diagnostics = epoch_diagnostics(probs, prims, genotype, previous, initial_genotype)
                alpha_updates = (history[-1].get("alpha_updates", 0) if history else 0) + (steps if update_alphas else 0)
                record = {"epoch": epoch + 1, "lr": w_lr, "alpha_step": update_alphas, "alpha_updates": alpha_updates,
                          "train_loss": loss_sum / seen, "train_acc": correct / seen,
                          "alpha_loss": alpha_loss_sum / alpha_seen if update_alphas else None,
                          "val_loss": ev["loss"], "val_acc": ev["acc"], "val_ua": ev["ua"], "param_free": share,
                          "seq_collapsed": seq_collapsed(genotype), **diagnostics,
                          "seconds": time.perf_counter() - began}
                extra = {} if remedy is None else {"remedy": remedy}
                record.update(extra)
                history.append(record)
                alpha_history.append({"epoch": epoch + 1, "probs": {k: v.tolist() for k, v in probs.items()},
                                      "param_free": share, "genotype": genotype.to_dict(), **diagnostics,
                                      **extra})
                rd.save_checkpoint({"epoch": epoch + 1, **training_state(stateful),
                                    "history": history, "alpha_history": alpha_history})
                rd.append_epoch(record)
                rd.atomic_write_json(ALPHA_HISTORY, alpha_file(prims, initial, alpha_history))
                tb.search_epoch(record, alpha_history[-1])
                if search_cfg.progress:
                    epochs.set_postfix(val_ua=f"{ev['ua']:.3f}", loss=f"{record['train_loss']:.3f}")
                    epochs.write(epoch_line("search", record, n_epochs))
                if remedy is not None and remedy.get("stop"):
                    break  # DARTS+ early stop: the uncapped cell reached skip_stop skip_connects

        if aux_skip is not None:
            aux_skip.remove()
        genotype, _ = derive(model, net_cfg, search_cfg)
        stopped = history[-1]["epoch"] if history and history[-1].get("remedy", {}).get("stop") else None
        verdict = _verdict(history, alpha_history, budget)
        rd.atomic_write_json(ALPHA_HISTORY, alpha_file(prims, initial, alpha_history, verdict))
        rd.atomic_write_text(GENOTYPE, genotypes.to_json(genotype, metadata=verdict) + "\n")
        rd.atomic_write_text(GENOTYPE_TEXT, genotypes.to_text(genotype) + "\n")
        _say(f"verdict: {verdict['message'] or 'the α moved and the genotype settled'}", search_cfg.progress)
        if verdict["message"] is not None and not budget.frozen:
            warnings.warn(f"search in {rd.path}: {verdict['message']}", SearchBudgetWarning, stacklevel=2)
        if seq_collapsed(genotype):
            _warn_collapse(genotype, rd.path)
        rd.mark_finished({"kind": "search", "epochs": n_epochs, "budget": budget.to_dict(), "verdict": verdict,
                          "genotype": genotype.to_dict(),
                          "seq_collapsed": seq_collapsed(genotype), "collapse_remedy": search_cfg.collapse_remedy,
                          "stopped_early_at_epoch": stopped, "device": str(device),
                          "activation_checkpointing": bool(plan.edges),
                          "checkpointed_edges": len(plan.edges),
                          "precision": precision.describe(), "last_epoch": history[-1] if history else None})
        return SearchResult(genotype, history, rd.path)
    finally:
        if tb is not None:
            tb.close()
        rd.release()
