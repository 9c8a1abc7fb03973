"""Retraining a derived network (from a genotype) or a baseline, and scoring it once on test.

`TrainConfig.protocol` says which speakers train, select and score
(`emodarts_core.training.protocols`). Model selection never looks at the test speakers
(docs/REFERENCE_CODE.md, defect 4): under ``paper`` each epoch is evaluated on the
fold's `search` split (training speakers only) and the weights of the epoch with the
best UA there are kept; under ``full`` the network trains on all training speakers for a
fixed number of epochs and the last epoch is kept. After training, the score split (the
test speakers) is scored once with those weights. Drop-path on derived cells ramps
linearly: drop_path_prob * epoch / epochs. Checkpoints, resume and the non-finite guard
work as in the search, and so do the TensorBoard event files in `<run>/tb/`
(`emodarts_core.training.tblog`; `TrainConfig.tensorboard`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch

from emodarts_core.space.baselines import BASELINES, build_baseline
from emodarts_core.config import ConfigError, NetworkConfig, TrainConfig, to_dict
from emodarts_core.training.data import make_loader, to_dataset, to_device
from emodarts_core.networks import derived_network
from emodarts_core.training.device import Precision, resolve_device, seed_everything
from emodarts_core.space.genotypes import Genotype, GenotypeError, check_compatible
from emodarts_core.fast.heap import retained_heap
from emodarts_core.training.loop import (NonFiniteLossError, claim_run_dir, describe_fold, end_epoch, environment,
                                         epoch_line, evaluate, progress, restore_training_state, stop_message,
                                         training_state, validate_fold, weight_step)
from emodarts_core.training.metrics import confusion_matrix, count_parameters
from emodarts_core.training.normalise import NORMALISATION, normalise_protocol
from emodarts_core.training.protocols import protocol_data, protocol_epochs
from emodarts_core.training.rundir import RunDir
from emodarts_core.training.tblog import RunLog

MODEL = "model.pt"
RESULT = "result.json"
SELECTIONS = {"paper": "best UA on the fold's search split (training speakers only)",
              "paper_equal": "best UA on the fold's search split (training speakers only)",
              "full": "none: the last of a fixed number of epochs",
              "holdout": "none: the last of a fixed number of epochs"}


@dataclass
class TrainResult:
    test_ua: float
    test_wa: float
    confusion: np.ndarray
    params: int
    best_epoch: int
    history: list[dict]


def build_model(model_spec, net_cfg: NetworkConfig) -> tuple[torch.nn.Module, dict]:
    """The network for `model_spec` (a Genotype or a baseline name) and its description."""
    if isinstance(model_spec, Genotype):
        try:
            check_compatible(model_spec, net_cfg)
        except GenotypeError as err:
            raise ConfigError(str(err)) from None
        return derived_network(model_spec, net_cfg), {"genotype": model_spec.to_dict()}
    if isinstance(model_spec, str):
        if model_spec not in BASELINES:
            raise ConfigError(f"unknown baseline {model_spec!r}; valid baselines: {', '.join(BASELINES)} "
                              "(or pass a Genotype)")
        return (build_baseline(model_spec, net_cfg.n_classes, tuple(net_cfg.input_size), net_cfg.in_channels),
                {"baseline": model_spec})
    raise ConfigError(f"model_spec must be a Genotype or a baseline name ({', '.join(BASELINES)}), "
                      f"got {type(model_spec).__name__}")


def make_optimizer(params, train_cfg: TrainConfig) -> torch.optim.Optimizer:
    """The weights' optimiser of `train_cfg`: SGD with momentum (the DARTS cells' setting,
    paper section IV-C) or Adam with beta1 = `momentum`; weight decay as configured."""
    if train_cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=train_cfg.lr, betas=(train_cfg.momentum, 0.999),
                                weight_decay=train_cfg.weight_decay)
    return torch.optim.SGD(params, lr=train_cfg.lr, momentum=train_cfg.momentum, weight_decay=train_cfg.weight_decay)


def one_class(y_pred) -> bool:
    """Whether every prediction is the same class: a collapsed network (or a constant model)."""
    return len(np.unique(np.asarray(y_pred))) <= 1


def prediction_record(split, y_pred) -> dict:
    """Per-utterance test predictions for result.json: ids, speakers, true and predicted
    labels, in the order of `split` (the statistics resample speakers and utterances from them)."""
    return {"ids": [str(i) for i in split.ids], "speakers": [str(s) for s in split.speakers],
            "y_true": [int(v) for v in np.asarray(split.y)], "y_pred": [int(v) for v in np.asarray(y_pred)]}


def _stored_result(rd: RunDir) -> TrainResult:
    r = rd.read_json(RESULT)
    return TrainResult(r["test_ua"], r["test_wa"], np.asarray(r["confusion"], dtype=np.int64), r["params"],
                       r["best_epoch"], rd.read_epochs())


def _split_ids(split) -> dict:
    return {"n": int(len(split.y)), "speakers": sorted({str(s) for s in split.speakers}),
            "ids": [str(i) for i in split.ids]}


def run_retrain(fold_data, model_spec, net_cfg: NetworkConfig, train_cfg: TrainConfig, run_dir,
                resume: bool = False, study: dict | None = None) -> TrainResult:
    """Train `model_spec` as `train_cfg.protocol` says, then score the test speakers once.

    Under ``paper``: train on `fold_data.train`, select the epoch on `.search`, score
    `.test`. Under ``full``: train on `.search` + `.train` for `train_cfg.epochs`, keep the
    last epoch, score `.test`. `study` (protocol, model, fold, seed, ...) is stored in
    config.json for `emodarts_core.study.results`. Same run-directory rules as
    `run_search`: configuration errors before any work, no silent overwrite,
    `resume=True` continues (or returns a finished result), and a non-finite loss raises
    NonFiniteLossError keeping the last good checkpoint.
    """
    net_cfg, train_cfg = net_cfg.validate(), train_cfg.validate()
    validate_fold(fold_data, net_cfg, ("train", "search", "test"))
    train_cfg = dataclasses.replace(train_cfg, epochs=protocol_epochs(  # paper_equal derives its epochs
        fold_data, train_cfg.protocol, train_cfg.epochs, train_cfg.batch_size))
    splits, normaliser = normalise_protocol(protocol_data(fold_data, train_cfg.protocol, train_cfg.seed),
                                            train_cfg.normalise)
    device = resolve_device(train_cfg.device)
    precision = Precision(device, train_cfg.amp)

    seed_everything(train_cfg.seed)
    model, spec = build_model(model_spec, net_cfg)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, train_cfg)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train_cfg.epochs,
                                                           eta_min=train_cfg.lr_min)
    scaler = precision.scaler()
    generator = torch.Generator().manual_seed(train_cfg.seed + 1)
    bs, workers = train_cfg.batch_size, train_cfg.num_workers
    train_loader = make_loader(to_dataset(splits.train.X, splits.train.y), bs, shuffle=True,
                               generator=generator, device=device, num_workers=workers)
    eval_bs = train_cfg.eval_batch_size  # eval mode: a prediction does not depend on its batch
    select_loader = None if splits.select is None else make_loader(
        to_dataset(splits.select.X, splits.select.y), eval_bs, shuffle=False, device=device, num_workers=workers)
    test_loader = make_loader(to_dataset(splits.score.X, splits.score.y), eval_bs, shuffle=False,
                              device=device, num_workers=workers)

    selection = SELECTIONS[train_cfg.protocol]
    config = {"kind": "retrain", "model": spec, "network": to_dict(net_cfg), "train": to_dict(train_cfg),
              "selection": selection, "data": describe_fold(fold_data),
              "protocol": {"name": train_cfg.protocol, "scored_on": splits.scored_on,
                           "train": _split_ids(splits.train),
                           "select": None if splits.select is None else _split_ids(splits.select),
                           "score": _split_ids(splits.score)},
              "environment": environment()}
    if study is not None:
        config["study"] = dict(study)
    rd, mode = claim_run_dir(run_dir, config, resume)
    tb = None
    try:  # the run directory's writer lock goes back (and the event file is closed) however the run ends
        if mode == "finished":
            return _stored_result(rd)
        rd.atomic_write_json(NORMALISATION, normaliser.to_dict())

        stateful = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler,
                    "generator": generator}
        history, start, best = [], 0, {"epoch": 0, "ua": -1.0, "state": None}
        ckpt = rd.load_checkpoint() if mode == "resume" else None  # on CPU: RNG states must stay there
        if ckpt is not None:
            restore_training_state(ckpt, stateful)
            history, start, best = ckpt["history"], ckpt["epoch"], ckpt["best"]
        rd.rewrite_epochs(history)
        tb = RunLog(rd.path, train_cfg.tensorboard)  # <run>/tb/, rewritten from the checkpoint's history
        tb.begin_retrain(model_spec, history)

        epochs = progress(range(start, train_cfg.epochs), enabled=train_cfg.progress, desc="retrain",
                          total=train_cfg.epochs - start, leave=True)
        with retained_heap(device.type == "cpu"):  # no page-fault storm per step (emodarts_core.fast.heap)
            for epoch in epochs:
                began = time.perf_counter()
                lr = scheduler.get_last_lr()[0]
                drop = train_cfg.drop_path_prob * epoch / train_cfg.epochs
                if hasattr(model, "drop_path_prob"):
                    model.drop_path_prob = drop
                model.train()
                loss_sum, correct, seen = 0.0, 0, 0
                try:
                    for batch in progress(train_loader, enabled=train_cfg.progress, desc=f"epoch {epoch + 1}"):
                        x, y = to_device(batch, device)
                        loss, hits = weight_step(model, params, x, y, optimizer, scaler, precision, train_cfg.grad_clip)
                        loss_sum, correct, seen = loss_sum + loss * len(y), correct + hits, seen + len(y)
                    ev = end_epoch(scheduler, model, select_loader, device, precision)
                except NonFiniteLossError as err:
                    raise NonFiniteLossError(stop_message(rd, epoch + 1, err)) from None

                if select_loader is None:  # nothing selected: the last epoch is the one kept
                    best = {"epoch": epoch + 1, "ua": None, "state": None}
                elif ev["ua"] > best["ua"]:
                    best = {"epoch": epoch + 1, "ua": ev["ua"],
                            "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
                record = {"epoch": epoch + 1, "lr": lr, "drop_path_prob": drop, "train_loss": loss_sum / seen,
                          "train_acc": correct / seen, "val_loss": ev["loss"], "val_acc": ev["acc"], "val_ua": ev["ua"],
                          "best_epoch": best["epoch"], "seconds": time.perf_counter() - began}
                history.append(record)
                rd.save_checkpoint({"epoch": epoch + 1, **training_state(stateful), "history": history, "best": best})
                rd.append_epoch(record)
                tb.retrain_epoch(record)
                if train_cfg.progress:
                    if ev["ua"] is not None:
                        epochs.set_postfix(val_ua=f"{ev['ua']:.3f}", best=best["epoch"])
                    epochs.write(epoch_line("retrain", record, train_cfg.epochs))

        if best["state"] is None:  # no selection: keep the weights of the last epoch
            best["state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(best["state"])
        rd.atomic_save_torch(MODEL, best["state"])
        test = evaluate(model, test_loader, device, precision)
        confusion = confusion_matrix(test["y_true"], test["y_pred"], net_cfg.n_classes)
        n_params = count_parameters(model)
        result = {"test_ua": test["ua"], "test_wa": test["acc"], "confusion": confusion.tolist(),
                  "classes": list(getattr(fold_data, "classes", []) or []), "params": n_params,
                  "best_epoch": best["epoch"], "best_val_ua": best["ua"], "selection": selection,
                  "protocol": train_cfg.protocol, "scored_on": splits.scored_on,
                  "n_test": int(len(test["y_true"])), "one_class": one_class(test["y_pred"]),
                  "normalise": train_cfg.normalise, "predictions": prediction_record(splits.score, test["y_pred"]),
                  "device": str(device), "precision": precision.describe()}
        rd.atomic_write_json(RESULT, result)
        tb.test_scores(test["ua"], test["acc"], history[-1]["epoch"] if history else 0)
        rd.mark_finished({"kind": "retrain", **{k: v for k, v in result.items() if k != "predictions"}})
        return TrainResult(test["ua"], test["acc"], confusion, n_params, best["epoch"], history)
    finally:
        if tb is not None:
            tb.close()
        rd.release()
