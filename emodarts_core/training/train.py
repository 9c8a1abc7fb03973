"""Retraining a derived network (from a genotype) or a baseline, and scoring it once on test.

`TrainConfig.protocol` says which speakers train, select and score
(`emodarts_core.training.protocols`). Model selection never looks at the test speakers
(docs/REFERENCE_CODE.md, defect 4): under ``paper`` each epoch is evaluated on the
fold's `search` split (training speakers only) and the weights of the epoch with the
best UA there are kept; under ``full`` the network trains on all training speakers for a
fixed number of epochs and the last epoch is kept. After training, the score split (the
test speakers) is scored once with those weights. Drop-path on derived cells ramps
linearly: drop_path_prob * epoch / epochs. Checkpoints, resume and the non-finite guard
work as in the search (the run lifecycle, `emodarts_core.training.run`), and so do the
TensorBoard event files in `<run>/tb/` (`emodarts_core.training.tblog`;
`TrainConfig.tensorboard`). A per-epoch file of its own is a callback registered with
`Run.on_epoch` before the epochs start.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from emodarts_core.space.baselines import BASELINES, build_baseline
from emodarts_core.config import ConfigError, NetworkConfig, TrainConfig, to_dict
from emodarts_core.training.data import make_loader, to_dataset, to_device
from emodarts_core.networks import derived_network
from emodarts_core.space.genotypes import Genotype, GenotypeError, check_compatible
from emodarts_core.training.loop import end_epoch, evaluate, weight_step
from emodarts_core.training.optimism_trace import trace_callback
from emodarts_core.training.metrics import confusion_matrix, count_parameters
from emodarts_core.training.normalise import normalise_protocol
from emodarts_core.training.protocols import protocol_data, protocol_epochs
from emodarts_core.training.rundir import RunDir
from emodarts_core.training.run import Run, validated

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
    config.json for `emodarts_core.study.results`. Same run lifecycle as `run_search`
    (`training.run`): configuration errors before any work, no silent overwrite,
    `resume=True` continues (or returns a finished result), and a non-finite loss raises
    NonFiniteLossError keeping the last good checkpoint.
    """
    net_cfg, train_cfg = validated(fold_data, net_cfg, train_cfg, ("train", "search", "test"))
    train_cfg = dataclasses.replace(train_cfg, epochs=protocol_epochs(  # paper_equal derives its epochs
        fold_data, train_cfg.protocol, train_cfg.epochs, train_cfg.batch_size))
    splits, normaliser = normalise_protocol(protocol_data(fold_data, train_cfg.protocol, train_cfg.seed),
                                            train_cfg.normalise)
    with Run("retrain", run_dir, train_cfg) as run:
        device, precision = run.device, run.precision
        run.seed(train_cfg.seed)
        model, spec = build_model(model_spec, net_cfg)
        model.to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(params, train_cfg)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train_cfg.epochs,
                                                               eta_min=train_cfg.lr_min)
        scaler = precision.scaler()
        generator = torch.Generator().manual_seed(train_cfg.seed + 1)
        train_loader, select_loader, test_loader = _loaders(splits, train_cfg, generator, device)

        selection = SELECTIONS[train_cfg.protocol]
        config = run.config(fold_data, {"model": spec, "network": to_dict(net_cfg), "train": to_dict(train_cfg),
                                        "selection": selection},
                            {"protocol": {"name": train_cfg.protocol, "scored_on": splits.scored_on,
                                          "train": _split_ids(splits.train),
                                          "select": None if splits.select is None else _split_ids(splits.select),
                                          "score": _split_ids(splits.score)}})
        if study is not None:
            config["study"] = dict(study)
        if run.claim(config, resume):
            return _stored_result(run.rd)
        stateful = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler,
                    "generator": generator}
        ckpt = run.restore(stateful, normaliser)
        start, best = 0, {"epoch": 0, "ua": -1.0, "state": None}
        if ckpt is not None:
            start, best = ckpt["epoch"], ckpt["best"]
        run.tb.begin_retrain(model_spec, run.history)
        run.on_epoch(run.tb.retrain_epoch)
        if train_cfg.protocol == "full":  # each epoch's test UA, to a file nothing here reads (optimism_trace)
            run.on_epoch(trace_callback(run.rd, model, test_loader, device, precision))

        for epoch in run.epochs(start, train_cfg.epochs):
            lr = scheduler.get_last_lr()[0]
            drop = train_cfg.drop_path_prob * epoch / train_cfg.epochs
            if hasattr(model, "drop_path_prob"):
                model.drop_path_prob = drop
            model.train()
            loss_sum, correct, seen = 0.0, 0, 0
            for batch in run.batches(train_loader):
                x, y = to_device(batch, device)
                loss, hits = weight_step(model, params, x, y, optimizer, scaler, precision, train_cfg.grad_clip)
                loss_sum, correct, seen = loss_sum + loss * len(y), correct + hits, seen + len(y)
            ev = end_epoch(scheduler, model, select_loader, device, precision)

            if select_loader is None:  # nothing selected: the last epoch is the one kept
                best = {"epoch": epoch + 1, "ua": None, "state": None}
            elif ev["ua"] > best["ua"]:
                best = {"epoch": epoch + 1, "ua": ev["ua"],
                        "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            record = {"epoch": epoch + 1, "lr": lr, "drop_path_prob": drop, "train_loss": loss_sum / seen,
                      "train_acc": correct / seen, "val_loss": ev["loss"], "val_acc": ev["acc"], "val_ua": ev["ua"],
                      "best_epoch": best["epoch"], "seconds": run.elapsed()}
            postfix = None if ev["ua"] is None else {"val_ua": f"{ev['ua']:.3f}", "best": best["epoch"]}
            run.end_epoch(record, postfix, best=best)

        if best["state"] is None:  # no selection: keep the weights of the last epoch
            best["state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(best["state"])
        run.rd.atomic_save_torch(MODEL, best["state"])
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
        run.rd.atomic_write_json(RESULT, result)
        run.tb.test_scores(test["ua"], test["acc"], run.history[-1]["epoch"] if run.history else 0)
        run.finish({k: v for k, v in result.items() if k != "predictions"})
        return TrainResult(test["ua"], test["acc"], confusion, n_params, best["epoch"], run.history)


def _loaders(splits, train_cfg: TrainConfig, generator: torch.Generator, device):
    """The training batches (shuffled by `generator`), and the selection (None under a
    protocol that selects nothing) and score splits in order at the evaluation batch size
    (in eval mode a prediction does not depend on its batch)."""
    bs, eval_bs, workers = train_cfg.batch_size, train_cfg.eval_batch_size, train_cfg.num_workers
    train = make_loader(to_dataset(splits.train.X, splits.train.y), bs, shuffle=True, generator=generator,
                        device=device, num_workers=workers)
    select = None if splits.select is None else make_loader(
        to_dataset(splits.select.X, splits.select.y), eval_bs, shuffle=False, device=device, num_workers=workers)
    score = make_loader(to_dataset(splits.score.X, splits.score.y), eval_bs, shuffle=False, device=device,
                        num_workers=workers)
    return train, select, score
