"""Machinery shared by the search and retraining loops.

The run-directory claim with config matching on resume, the mixed-precision weight step with gradient clipping and the non-finite guard,
evaluation, and progress bars.
"""

from __future__ import annotations

import os
import platform
import sys

import numpy as np
import torch
import torch.nn.functional as F
import tqdm as text_bars
from tqdm.auto import tqdm

import emodarts_core
from data_prep.errors import EmodartsError
from emodarts_core.config import ConfigError
from emodarts_core.training.data import features, to_device
from emodarts_core.training.device import Precision, capture_rng_state, restore_rng_state
from emodarts_core.training.metrics import unweighted_accuracy, weighted_accuracy
from emodarts_core.training.rundir import RunDir

# Settings that may change between an interrupted run and its resumption: they change
# how a run computes or records, not what (activation checkpointing and its memory budget
# are exact; TensorBoard event files are only a view of the records; the evaluation's batch
# changes no prediction, since in eval mode a sample's prediction does not depend on its
# batch, only the order in which the validation loss is summed).
RESUMABLE_KEYS = frozenset({"progress", "device", "num_workers", "amp", "checkpointing", "memory_budget_gb",
                            "tensorboard", "eval_batch_size"})
# Options added after runs may have started, with the value that reproduces those runs: a
# stored config without the key matches a current one holding this value.
ADDED_DEFAULTS = {"search.collapse_remedy": "none", "search.darts_minus_beta": 1.0, "search.skip_cap": 2,
                  "search.skip_stop": None, "network.partial_channels": 1, "search.alpha_steps": None,
                  "search.freeze_alpha": False, "search.normalise": "none",
                  "train.normalise": "none", "train.optimizer": "sgd"}
_ABSENT = object()


class NonFiniteLossError(EmodartsError, RuntimeError):
    """A loss or gradient became NaN/inf; the run stopped and kept its last good checkpoint."""


def progress(iterable, *, enabled: bool, desc: str, total: int | None = None, leave: bool = False):
    """A tqdm progress bar, or the bare iterable when disabled.

    A widget in a notebook frontend; a text bar on stderr, refreshed at most every 2 s,
    where `EMODARTS_PROGRESS=text` (set by papermill's command through
    `emodarts_core.notebooks.papermill_errors`), since `papermill --log-output` logs
    text and never a widget's updates."""
    if not enabled:
        return iterable
    if os.environ.get("EMODARTS_PROGRESS") == "text":
        return text_bars.tqdm(iterable, desc=desc, total=total, leave=leave, file=sys.stderr, mininterval=2.0,
                              position=0)  # one line: a log has no cursor to move up
    return tqdm(iterable, desc=desc, total=total, leave=leave, dynamic_ncols=True)


def epoch_line(what: str, record: dict, epochs: int) -> str:
    """One printed line per finished epoch (loss, selection UA, seconds): what a terminal
    shows of a notebook run with `papermill --log-output`, where bars are widgets."""
    ua = record.get("val_ua")
    return (f"{what} epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.3f}"
            + ("" if ua is None else f", val UA {100 * ua:.1f} %") + f", {record['seconds']:.1f} s")


# -- inputs ----------------------------------------------------------------------------
def describe_fold(fold_data) -> dict:
    """The fold's identity and data shape, for config.json (and resume matching)."""
    fold = getattr(fold_data, "fold", None)
    out = {"classes": list(getattr(fold_data, "classes", []) or []),
           "index": getattr(fold, "index", None),
           "test_speakers": list(getattr(fold, "test_speakers", []) or []),
           "splits": {}}
    for name in ("search", "train", "test"):
        split = getattr(fold_data, name, None)
        if split is not None:
            out["splits"][name] = {"n": int(len(split.y)), "shape": list(features(split).shape[1:]),
                                   "ids": [str(i) for i in split.ids]}
    return out


def software_versions() -> dict:
    """The versions config.json records under "environment" (never compared on resume)."""
    return {"emodarts": emodarts_core.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _differences(stored, current, path="") -> list[str]:
    if isinstance(stored, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(stored) | set(current)):
            if key in RESUMABLE_KEYS or key == "environment":
                continue
            name = f"{path}{key}"
            if key not in stored and current.get(key) == ADDED_DEFAULTS.get(name, _ABSENT):
                continue
            out += _differences(stored.get(key), current.get(key), name + ".")
        return out
    return [] if stored == current else [path.rstrip(".")]


def claim_run_dir(run_dir, config: dict, resume: bool) -> tuple[RunDir, str]:
    """Claim `run_dir` for a run described by `config` (see RunDir.claim).

    The claim takes the directory's writer lock, so a second run into it (another process,
    or another thread) fails with RunLockedError naming the holder before computing
    anything; the lock is kept until `mark_finished` or the end of the process, and a lock
    left by a killed process does not block resuming (docs/DATA.md, "Run directories").
    On resume the stored config must equal `config` apart from device, AMP, progress,
    worker, TensorBoard and evaluation-batch settings (RESUMABLE_KEYS); otherwise ConfigError names the
    differing keys.
    """
    rd = RunDir(run_dir)
    mode = rd.claim(resume)
    try:
        if mode in ("resume", "finished"):
            stored = rd.read_config()
            if stored is not None:
                diff = _differences(stored, config)
                if diff:
                    raise ConfigError(f"cannot resume {rd.path}: its stored config differs in {', '.join(diff)}. "
                                      "A resumed run continues with the settings it started with; for new "
                                      "ones (e.g. a lower learning rate) choose a new run directory, or put "
                                      "the stored values back to continue this run")
        if mode != "finished":
            rd.write_config(config)
    except BaseException:
        if mode != "finished":
            rd.release()
        raise
    return rd, mode


# -- steps -----------------------------------------------------------------------------
def weight_step(model, params: list, x, y, optimizer, scaler, precision: Precision,
                grad_clip: float) -> tuple[float, int]:
    """One SGD step on `params` only; returns (loss, number correct).

    Raises NonFiniteLossError before the step if the loss (or, without loss scaling, the
    gradient norm) is not finite, so the weights stay as they were.
    """
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"non-finite training loss ({loss.item()}) in the weight step")
    scaler.scale(loss).backward(inputs=params)
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if not precision.needs_scaler and not torch.isfinite(norm):
        raise NonFiniteLossError(f"non-finite gradient norm ({norm.item()}) in the weight step")
    scaler.step(optimizer)
    scaler.update()
    return loss.item(), int((logits.argmax(1) == y).sum())


@torch.no_grad()
def evaluate_as_set(model, loader, device: torch.device, precision: Precision) -> dict:
    """Loss, WA ('acc'), UA and predictions of `model` on `loader`, in whatever mode its
    modules are in now (a one-shot score sets BatchNorm's mode itself: darts.subnet)."""
    total, preds, truth = 0.0, [], []
    for batch in loader:
        x, y = to_device(batch, device)
        with precision.autocast():
            logits = model(x)
        total += F.cross_entropy(logits.float(), y, reduction="sum").item()
        preds.append(logits.argmax(1).cpu())
        truth.append(y.cpu())
    y_true, y_pred = torch.cat(truth).numpy(), torch.cat(preds).numpy()
    return {"loss": total / len(y_true), "acc": weighted_accuracy(y_true, y_pred),
            "ua": unweighted_accuracy(y_true, y_pred), "y_true": y_true, "y_pred": y_pred}


def evaluate(model, loader, device: torch.device, precision: Precision) -> dict:
    """Loss, WA ('acc'), UA and predictions of `model` (in eval mode) on `loader`."""
    was_training = model.training
    model.eval()
    try:
        return evaluate_as_set(model, loader, device, precision)
    finally:
        model.train(was_training)


def end_epoch(scheduler, model, loader, device: torch.device, precision: Precision) -> dict:
    """Step the learning-rate schedule and `evaluate` on `loader`, as every epoch of the
    search and of retraining ends; a non-finite loss raises NonFiniteLossError. Without a
    loader (a retraining that selects nothing) the scores are None."""
    scheduler.step()
    if loader is None:
        return {"loss": None, "acc": None, "ua": None}
    ev = evaluate(model, loader, device, precision)
    if not np.isfinite(ev["loss"]):
        raise NonFiniteLossError(f"non-finite validation loss ({ev['loss']})")
    return ev


def stop_message(rd: RunDir, epoch: int, err: Exception) -> str:
    """The message of a run stopped by a non-finite loss: what happened and what is kept."""
    ckpt = rd.load_checkpoint()
    if ckpt:
        kept = f"the last good checkpoint (epoch {ckpt['epoch']}) is kept in {rd.file('checkpoint.pt')}"
        how = (f"To run with a lower learning rate, start a new run directory (a resumed run keeps the "
               f"settings it started with); after fixing NaN/inf in the data, resume=True continues from "
               f"epoch {ckpt['epoch']}")
    else:
        kept = "no epoch had finished, so there is no checkpoint"
        how = (f"Lower the learning rate or check the data for NaN/inf, then run again into {rd.path} "
               "(nothing was computed there, so new settings are accepted)")
    return f"run stopped in epoch {epoch}: {err}. {kept}. {how}."


def training_state(stateful: dict) -> dict:
    """What a checkpoint needs to resume bit for bit: each named object's state (a module,
    optimiser, scheduler or scaler: `state_dict()`; a torch.Generator: `get_state()`; a dict
    of them: each) and every random-number generator's state under "rng"."""
    def state(obj):
        if isinstance(obj, dict):
            return {k: state(v) for k, v in obj.items()}
        return obj.get_state() if isinstance(obj, torch.Generator) else obj.state_dict()

    return {**{name: state(obj) for name, obj in stateful.items()}, "rng": capture_rng_state()}


def restore_training_state(ckpt: dict, stateful: dict) -> None:
    """Load what `training_state(stateful)` saved back into the same objects."""
    def load(obj, saved):
        if isinstance(obj, dict):
            for k, v in obj.items():
                load(v, saved[k])
        elif isinstance(obj, torch.Generator):
            obj.set_state(saved)
        else:
            obj.load_state_dict(saved)

    for name, obj in stateful.items():
        load(obj, ckpt[name])
    restore_rng_state(ckpt["rng"])

