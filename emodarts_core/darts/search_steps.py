"""The steps of a search epoch (DARTS, Liu et al. 2019, Alg. 1) and the batches they draw.

The fold's `search` split (training speakers only) is normalised as `SearchConfig.normalise`
says and divided 50/50 (stratified, seeded) into a weight-training half and an
α-validation half (`search_data`). Each step takes one α step on a validation batch (the
architect, first or second order; none during the first `warmup_epochs`, and none in the
`prior` control, `SearchConfig.freeze_alpha`) and then one SGD step on a training batch
(`SearchSteps.epoch`). The epoch ends with the cosine schedule's step and an evaluation on
the validation half. `SearchConfig.collapse_remedy` switches on a published collapse
remedy (`emodarts_core.darts.collapse`): DARTS-' auxiliary skip and β-DARTS' Beta-Decay act
here, in the steps; P-DARTS' skip cap acts on the parse (`darts.alpha_record`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from emodarts_core.config import ConfigError, SearchConfig
from emodarts_core.darts.architect import Architect
from emodarts_core.darts.budget import SearchBudget, init_seed, search_budget
from emodarts_core.darts.collapse import AuxiliarySkip, beta_decay_loss, beta_decay_weight, darts_minus_beta
from emodarts_core.training.data import make_loader, stratified_halves, to_dataset, to_device
from emodarts_core.training.loop import end_epoch, weight_step
from emodarts_core.training.normalise import Normaliser, fit_normaliser, normalised


@dataclass
class SearchData:
    """The search's batches: the weight half and α half (shuffled, seeded by `generators`),
    the α half again in order for the epoch's evaluation, the steps per epoch, the budget
    they make (`darts.budget.search_budget`) and the seed of the initial weights and α of
    the fold (`darts.budget.init_seed`)."""

    normaliser: Normaliser
    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader
    val_eval: torch.utils.data.DataLoader
    generators: dict[str, torch.Generator]
    steps: int
    budget: SearchBudget
    init_seed: int


def search_data(fold_data, search_cfg: SearchConfig, device: torch.device) -> SearchData:
    """The `SearchData` of `fold_data.search`: the normaliser is fitted on that split alone,
    and the halves are `stratified_halves` under `search_cfg.seed`."""
    normaliser = fit_normaliser(search_cfg.normalise, fold_data.search)  # training speakers' search split only
    split = normalised(fold_data.search, normaliser)
    if len(split.y) < 2:
        raise ConfigError(f"the search split has {len(split.y)} sample(s); it needs at least 2 to be halved")
    train_idx, val_idx = stratified_halves(split.y, search_cfg.seed)
    train_set, val_set = to_dataset(split.X, split.y, train_idx), to_dataset(split.X, split.y, val_idx)
    generators = {"train": torch.Generator().manual_seed(search_cfg.seed + 1),
                  "val": torch.Generator().manual_seed(search_cfg.seed + 2)}
    bs, workers = search_cfg.batch_size, search_cfg.num_workers
    train = make_loader(train_set, bs, shuffle=True, generator=generators["train"], device=device,
                        num_workers=workers)
    val = make_loader(val_set, bs, shuffle=True, generator=generators["val"], device=device, num_workers=workers)
    val_eval = make_loader(val_set, search_cfg.eval_batch_size, shuffle=False, device=device, num_workers=workers)
    steps = min(len(train), len(val))
    fold_index = getattr(getattr(fold_data, "fold", None), "index", None)
    return SearchData(normaliser, train, val, val_eval, generators, steps, search_budget(search_cfg, steps),
                      init_seed(search_cfg.seed, fold_index))


class SearchSteps:
    """The weight optimiser and its cosine schedule, the architect (α's Adam) and the
    collapse remedy of one search of `model` over `epochs` epochs."""

    def __init__(self, model, search_cfg: SearchConfig, precision, epochs: int):
        self.model, self.cfg, self.precision, self.epochs = model, search_cfg, precision, epochs
        self.weights = list(model.weights())
        self.w_optim = torch.optim.SGD(self.weights, lr=search_cfg.w_lr, momentum=search_cfg.w_momentum,
                                       weight_decay=search_cfg.w_weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_optim, T_max=epochs,
                                                                    eta_min=search_cfg.w_lr_min)
        self.scaler = precision.scaler()
        self.architect = Architect(model, search_cfg.w_momentum, search_cfg.w_weight_decay, search_cfg.alpha_lr,
                                   search_cfg.alpha_betas, search_cfg.alpha_weight_decay,
                                   autocast=precision.autocast if not precision.needs_scaler else None)
        darts_minus = search_cfg.collapse_remedy == "darts_minus"
        self.aux_skip = AuxiliarySkip(model, 0.0) if darts_minus else None

    def stateful(self, generators: dict) -> dict:
        """What a checkpoint holds of the search, by name (`training.loop.training_state`)."""
        return {"model": self.model, "w_optim": self.w_optim, "a_optim": self.architect,
                "scheduler": self.scheduler, "scaler": self.scaler, "generators": generators}

    def epoch(self, epoch: int, batches, data: SearchData, device, alpha_updates: int) -> tuple[dict, dict | None]:
        """Run epoch `epoch` (0-based) over `batches` (pairs of a training and a validation
        batch) and evaluate it; returns its record (learning rate, α steps so far after the
        `alpha_updates` before it, losses and scores) and the remedy's state (None without
        one, or with the skip cap, which acts on the parse)."""
        cfg = self.cfg
        w_lr = self.scheduler.get_last_lr()[0]
        remedy, penalty, penalty_weight = None, None, 0.0
        if self.aux_skip is not None:
            self.aux_skip.beta = darts_minus_beta(epoch, self.epochs, cfg.darts_minus_beta)
            remedy = {"name": "darts_minus", "beta": self.aux_skip.beta}
        elif cfg.collapse_remedy == "beta_decay":
            penalty, penalty_weight = beta_decay_loss, beta_decay_weight(epoch, self.epochs, cfg.beta_decay_weight)
            remedy = {"name": "beta_decay", "weight": penalty_weight}
        # weights only while warming up, and throughout the prior control (α frozen)
        update_alphas = epoch >= cfg.warmup_epochs and not cfg.freeze_alpha
        self.model.train()
        loss_sum, correct, seen, alpha_loss_sum, alpha_seen = 0.0, 0, 0, 0.0, 0
        for train_batch, val_batch in batches:
            tx, ty = to_device(train_batch, device)
            vx, vy = to_device(val_batch, device)
            if update_alphas:  # the α loss: L_val of the batch the α step descends
                alpha_loss = self.architect.step(tx, ty, vx, vy, w_lr, self.w_optim, cfg.order, penalty,
                                                 penalty_weight)
                alpha_loss_sum, alpha_seen = alpha_loss_sum + alpha_loss * len(vy), alpha_seen + len(vy)
            loss, hits = weight_step(self.model, self.weights, tx, ty, self.w_optim, self.scaler, self.precision,
                                     cfg.w_grad_clip)
            loss_sum, correct, seen = loss_sum + loss * len(ty), correct + hits, seen + len(ty)
        ev = end_epoch(self.scheduler, self.model, data.val_eval, device, self.precision)
        record = {"epoch": epoch + 1, "lr": w_lr, "alpha_step": update_alphas,
                  "alpha_updates": alpha_updates + (data.steps if update_alphas else 0),
                  "train_loss": loss_sum / seen, "train_acc": correct / seen,
                  "alpha_loss": alpha_loss_sum / alpha_seen if update_alphas else None,
                  "val_loss": ev["loss"], "val_acc": ev["acc"], "val_ua": ev["ua"]}
        return record, remedy

    def finish(self) -> None:
        """Take the remedy's hooks off the network (DARTS-' auxiliary skip)."""
        if self.aux_skip is not None:
            self.aux_skip.remove()


__all__ = ["SearchData", "SearchSteps", "search_data"]
