"""Configurations of the search network, the search and the retraining, with validation.

Every configuration is checked before any work starts (`validate()`), and each error
message lists what would have been valid, so a wrong parameter fails in the first second
rather than after an hour of search.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

from data_prep import MAX_SEED
from data_prep.errors import EmodartsError

# The SeqNN candidate operations each scope of paper Table 6 allows, a setting of
# `NetworkConfig.scope`; `none` and `skip_connect` stay in every scope (paper section 5.C).
# `emodarts_core.space.search_space` builds the search space from them.
LSTM_OPS = ("lstm_1", "lstm_2", "lstm_3", "lstm_4")
LSTM_ATT_OPS = ("lstm_att_1", "lstm_att_2")
RNN_OPS = ("rnn_1", "rnn_2", "rnn_3", "rnn_4")
RNN_ATT_OPS = ("rnn_att_1", "rnn_att_2")
ALWAYS_OPS = ("none", "skip_connect")
SCOPES: dict[str, tuple[str, ...]] = {
    "emodarts": ALWAYS_OPS + LSTM_OPS + LSTM_ATT_OPS + RNN_OPS + RNN_ATT_OPS,
    "lstm_only": ALWAYS_OPS + LSTM_OPS,
    "lstm_att_only": ALWAYS_OPS + LSTM_ATT_OPS,
    "rnn_only": ALWAYS_OPS + RNN_OPS,
    "rnn_att_only": ALWAYS_OPS + RNN_ATT_OPS,
}


class ConfigError(EmodartsError, ValueError):
    """A configuration value is invalid; the message says which and what is valid (shown alone in a notebook)."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def reduction_positions(cnn_cells: int) -> tuple[int, ...]:
    """Cell indices that are reduction cells: C/3 and 2C/3 as in DARTS (paper section 4.C)."""
    return tuple(sorted({cnn_cells // 3, 2 * cnn_cells // 3})) if cnn_cells >= 3 else ()


@dataclass
class NetworkConfig:
    """Shape of the joint CNN -> SeqNN network (search supernet and derived network alike)."""

    in_channels: int = 1
    input_size: tuple[int, int] = (128, 128)  # (MFCC coefficients F, frames T)
    n_classes: int = 4
    init_channels: int = 8
    cnn_cells: int = 4
    nodes: int = 4
    seq_cells: int = 2
    seq_nodes: int = 3
    seq_dim: int = 128
    scope: str = "emodarts"
    stem_multiplier: int = 3
    stem_stride: int = 1
    dropout: float = 0.0
    # PC-DARTS partial channels K (search supernet only): 1/K of each CNN edge's channels go
    # through its mixed op, plus edge normalisation. 1 = exact DARTS; K > 1 is a different
    # algorithm (Xu et al. 2020), for searches that would not fit otherwise.
    partial_channels: int = 1
    # Form of the SeqNN attention ops (lstm_att_j, rnn_att_j): "paper" is the reference
    # code's (bidirectional recurrent net, a linear layer scoring outputs and final state,
    # softmax over time, two linear layers; `RecurrentAttention` in space/ops.py), "dot" a parameter-free residual
    # dot-product self-attention after the unidirectional net (emodarts_core.space.ops).
    seq_attention: str = "paper"

    SEQ_ATTENTIONS = ("paper", "dot")  # not a field (no annotation)

    def validate(self) -> "NetworkConfig":
        _require(isinstance(self.scope, str) and self.scope in SCOPES,
                 f"unknown scope {self.scope!r}; valid scopes: {', '.join(SCOPES)}")
        _require(isinstance(self.seq_attention, str) and self.seq_attention in self.SEQ_ATTENTIONS,
                 f"unknown seq_attention {self.seq_attention!r}; valid: {', '.join(self.SEQ_ATTENTIONS)}")
        check_ranges(self, NETWORK_RANGES)
        _require(self.init_channels % self.partial_channels == 0,
                 f"partial_channels must divide init_channels ({self.init_channels}), got {self.partial_channels!r}")
        _require(isinstance(self.input_size, (tuple, list)) and len(self.input_size) == 2
                 and all(_INPUT_SIDE.accepts(size) for size in self.input_size),
                 f"input_size must be (F, T), two integers in [1, {_INPUT_SIDE.high:g}], got {self.input_size!r}")
        shrink = self.stem_stride * 2 ** len(reduction_positions(self.cnn_cells))
        for axis, size in zip(("F (MFCC)", "T (frames)"), self.input_size):
            _require(size % shrink == 0 and size // shrink >= 1,
                     f"input {axis} size {size} cannot be reduced by stem stride {self.stem_stride} and "
                     f"{len(reduction_positions(self.cnn_cells))} reduction cells (needs a multiple of {shrink})")
        return self


ORDERS = (1, 2)
DEVICES = ("auto", "cpu", "cuda")
COLLAPSE_REMEDIES = ("none", "darts_minus", "skip_cap", "beta_decay")
CHECKPOINTING = ("auto", "on", "off")
#: Retraining protocols (emodarts_core.training.protocols): the study's three (``paper_equal``
#: is ``paper`` at ``full``'s number of weight updates), and the speaker-held-out scoring of
#: candidates that the random-search control uses.
PROTOCOLS = ("paper", "full", "paper_equal")
#: Feature normalisations (emodarts_core.training.normalise) and retraining optimisers.
NORMALISATIONS = ("none", "utterance", "coefficient")
OPTIMIZERS = ("sgd", "adam")
RETRAIN_PROTOCOLS = (*PROTOCOLS, "holdout")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric setting: from `low` to `high` (each end open where
    said), integers only where `integer`, infinity only where `infinite` says what it
    means, None only where `none` says what it means."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    infinite: str = ""
    none: str = ""
    # At most the CPUs this process may use (`available_cpus`, read when checked): a
    # setting that starts one process per unit must not fork past them.
    at_most_cpus: bool = False

    def accepts(self, value) -> bool:
        if value is None:
            return bool(self.none)
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            return False
        if math.isnan(value):
            return False
        if math.isinf(value):
            return bool(self.infinite) and value > 0
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below and (not self.at_most_cpus or value <= available_cpus())

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.at_most_cpus:
            return (f"{kind} in [{self.low:g}, {available_cpus()}], at most the CPUs this process may use "
                    "(os.sched_getaffinity)")
        if self.high == math.inf:
            text = f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        else:
            high = f"{self.high:d}" if self.integer else f"{self.high:g}"  # 4294967295, not 4.29497e+09
            text = (f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {high}"
                    f"{')' if self.high_open else ']'}")
        text += f", or inf ({self.infinite})" if self.infinite else ""
        return text + (f", or None ({self.none})" if self.none else "")


_POSITIVE = Range(0, low_open=True)
_NON_NEGATIVE = Range(0)
_FRACTION = Range(0, 1, high_open=True)
_COUNT = Range(1, integer=True)
_CLIP = Range(0, low_open=True, infinite="no clipping")  # <= 0 would scale the step the wrong way
#: The range of every seed (searches, retrainings, a sweep's seeds and fold_seed): numpy and
#: torch take no negative seed, and the runs derive further seeds from it (seed + 2 for a
#: loader, seed * 1000 + step for a perturbation) that must stay below torch's 2^64.
SEED_RANGE = Range(0, MAX_SEED, integer=True)  # the folds' seeds too (data_prep.load_fold)
_SEED = SEED_RANGE
_WORKERS = Range(0, integer=True, at_most_cpus=True)  # DataLoader processes; 0 loads in the main process

#: The ranges of the network's sizes. The upper ends lie far above any space the paper
#: or DARTS searches (C = 8 here, 16 to 48 in DARTS; cells of at most a few nodes) and low
#: enough that a mistyped size fails here, not after allocating tens of GB for weights.
NETWORK_RANGES: dict[str, Range] = {
    "in_channels": Range(1, 16, integer=True), "n_classes": Range(2, 1000, integer=True),
    "init_channels": Range(1, 256, integer=True), "cnn_cells": Range(1, 32, integer=True),
    "nodes": Range(1, 12, integer=True), "seq_cells": Range(0, 16, integer=True),
    "seq_nodes": Range(1, 12, integer=True), "seq_dim": Range(1, 4096, integer=True),
    "stem_multiplier": Range(1, 16, integer=True), "stem_stride": Range(1, 16, integer=True),
    "partial_channels": Range(1, 256, integer=True), "dropout": _FRACTION,
}
_INPUT_SIDE = Range(1, 4096, integer=True)  # MFCC coefficients F and frames T (128 x 128 in the paper)

#: The range of every numeric setting of a search, by field (others are checked in
#: `SearchConfig.validate`); `check_ranges` applies it, so a setting added later is
#: checked by adding its line here.
SEARCH_RANGES: dict[str, Range] = {
    "batch_size": _COUNT, "eval_batch_size": _COUNT, "w_lr": _POSITIVE, "w_lr_min": _POSITIVE,
    "w_momentum": _FRACTION, "w_weight_decay": _NON_NEGATIVE, "w_grad_clip": _CLIP, "seed": _SEED,
    "num_workers": _WORKERS,
    "darts_minus_beta": _NON_NEGATIVE, "skip_cap": Range(0, integer=True), "beta_decay_weight": _NON_NEGATIVE,
    "memory_budget_gb": Range(0, low_open=True, none="the device's available memory"),
}
#: The same for retraining (`TrainConfig`; its epochs are checked in `TrainConfig.validate`).
TRAIN_RANGES: dict[str, Range] = {
    "batch_size": _COUNT, "eval_batch_size": _COUNT, "lr": _POSITIVE, "lr_min": _POSITIVE, "momentum": _FRACTION,
    "weight_decay": _NON_NEGATIVE, "grad_clip": _CLIP, "drop_path_prob": _FRACTION, "seed": _SEED,
    "num_workers": _WORKERS,
}


def check_ranges(cfg, ranges: dict[str, Range]) -> None:
    """ConfigError for the first setting of `cfg` outside its range: a negative gradient
    clip would run gradient ascent to the end of a run that looks finished, a negative
    seed or worker count fail deep inside numpy or the DataLoader."""
    for name, valid in ranges.items():
        value = getattr(cfg, name)
        _require(valid.accepts(value),
                 f"{type(cfg).__name__}.{name} must be {valid.describe()}, got {value!r}")


def check_flags(cfg, names: tuple[str, ...]) -> None:
    """ConfigError for the first of `names` that is not True or False: `amp='yes'` or
    `progress=1` from a YAML file would otherwise pass as a truthy value."""
    for name in names:
        value = getattr(cfg, name)
        _require(isinstance(value, bool), f"{type(cfg).__name__}.{name} must be True or False, got {value!r}")


def _validate_device(device: str) -> None:
    _require(device in DEVICES or str(device).startswith("cuda:"),
             f"unknown device {device!r}; valid: {', '.join(DEVICES)} or cuda:N")


@dataclass
class SearchConfig:
    """Architecture search (paper section 4.C): SGD for weights, Adam for alphas.

    The budget is given either as `epochs` or as `alpha_steps`, the number of α updates
    (Adam steps of the architect) the search takes: then `epochs` must be None, and the
    search runs `warmup_epochs` plus as many epochs as the α half of the search split needs
    at `batch_size` to reach `alpha_steps` (`emodarts_core.darts.budget.search_budget`).
    How far α move depends on the number of α steps times `alpha_lr` (Adam moves a logit by
    at most about `alpha_lr` per step), not on the epochs: a small corpus gives few steps
    per epoch.
    """

    epochs: int | None = 50
    alpha_steps: int | None = None
    batch_size: int = 16
    # The batch of the end-of-epoch evaluation (eval mode, no gradient), apart from the
    # steps' `batch_size`: a sample's prediction does not depend on its batch there, and
    # a few larger forward passes cost less than many small ones on a per-call-bound CPU
    # (docs/PERFORMANCE.md, "Evaluating in larger batches").
    eval_batch_size: int = 64
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    w_grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_betas: tuple[float, float] = (0.5, 0.999)
    alpha_weight_decay: float = 1e-3
    order: int = 1
    device: str = "auto"
    seed: int = 0
    amp: bool = True  # mixed precision, used on CUDA only
    num_workers: int = 0
    progress: bool = True
    # Activation checkpointing of the CNN and SeqNN cells' mixed ops (SearchNetwork.set_checkpointing):
    # the same results for less memory and more time (a checkpointed op runs its forward again
    # in the backward). "on": every edge; "off": none; "auto": only where memory demands it,
    # the edges that free the most memory per second of recomputation until the step is
    # predicted to fit (darts.memory.plan_checkpointing) within memory_budget_gb GiB, or by
    # default the memory available on the device when the search starts.
    checkpointing: str = "auto"
    memory_budget_gb: float | None = None
    # Skip-connection collapse remedy (emodarts_core.darts.collapse): "none" is the paper's plain
    # DARTS; "darts_minus" (DARTS-, Chu et al. 2021) adds an auxiliary skip beta * x on each
    # identity-shaped edge, beta decaying linearly from darts_minus_beta to 0; "skip_cap"
    # (P-DARTS cap, Chen et al. 2019) keeps at most skip_cap skip_connects in the normal and
    # SeqNN cells, and with skip_stop set stops early (DARTS+, Liang et al. 2019) once an
    # uncapped normal or SeqNN cell has skip_stop skip_connects; "beta_decay" (β-DARTS, Ye et
    # al. 2022) adds lambda * mean logsumexp(alpha) to the alpha loss, lambda rising linearly
    # from 0 to beta_decay_weight over the search.
    collapse_remedy: str = "none"
    darts_minus_beta: float = 1.0
    skip_cap: int = 2
    skip_stop: int | None = None
    beta_decay_weight: float = 1.0
    # Weight warm-up: the first warmup_epochs epochs train the weights only, no alpha step,
    # so that the alphas are not ranked by ops whose weights have not learned anything yet
    # (the warm-up of P-DARTS and PC-DARTS).
    warmup_epochs: int = 0
    # The `prior` control: the same search with the alphas frozen at their initial values.
    # The weights train as in the search (warm-up included) and the genotype is parsed the
    # same way, so it shows what the initialisation and the parse rule give without α steps.
    freeze_alpha: bool = False
    # TensorBoard event files in the run directory's tb/ (emodarts_core.training.tblog): how a
    # run records, not what it computes, so a run may resume with it changed.
    tensorboard: bool = True
    # Feature normalisation (emodarts_core.training.normalise): "none", "utterance" or
    # "coefficient" (statistics of the search split, training speakers only).
    normalise: str = "none"

    def validate(self) -> "SearchConfig":
        check_ranges(self, SEARCH_RANGES)
        check_flags(self, ("amp", "progress", "freeze_alpha", "tensorboard"))
        _require(_is_int(self.order) and self.order in ORDERS,
                 f"order must be 1 (first-order) or 2 (second-order), got {self.order!r}")
        _require((self.epochs is None) != (self.alpha_steps is None),
                 f"give the search budget as epochs or as alpha_steps (the number of α updates), not both or "
                 f"neither: got epochs={self.epochs!r}, alpha_steps={self.alpha_steps!r} (with alpha_steps set "
                 "epochs=None)")
        _require(self.epochs is None or (_is_int(self.epochs) and self.epochs >= 1),
                 f"epochs must be an integer >= 1 (or None with alpha_steps), got {self.epochs!r}")
        _require(self.alpha_steps is None or (_is_int(self.alpha_steps) and self.alpha_steps >= 1),
                 f"alpha_steps must be an integer >= 1 (or None with epochs), got {self.alpha_steps!r}")
        _require(_is_number(self.alpha_lr) and 0 < self.alpha_lr <= 1,
                 f"alpha_lr must be a number in (0, 1], got {self.alpha_lr!r}")
        _require(_is_number(self.alpha_weight_decay) and self.alpha_weight_decay >= 0,
                 f"alpha_weight_decay must be a number >= 0, got {self.alpha_weight_decay!r}")
        _require(len(self.alpha_betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in self.alpha_betas),
                 f"alpha_betas must be two numbers in [0, 1), got {self.alpha_betas!r}")
        _require(isinstance(self.freeze_alpha, bool), f"freeze_alpha must be True or False, got {self.freeze_alpha!r}")
        _require(0 < self.w_lr_min <= self.w_lr, f"need 0 < w_lr_min <= w_lr, got {self.w_lr_min}, {self.w_lr}")
        _validate_device(self.device)
        _require(self.checkpointing in CHECKPOINTING,
                 f"unknown checkpointing {self.checkpointing!r}; valid: {', '.join(CHECKPOINTING)}")
        _require(self.memory_budget_gb is None or (isinstance(self.memory_budget_gb, (int, float))
                                                   and not isinstance(self.memory_budget_gb, bool)
                                                   and self.memory_budget_gb > 0),
                 f"memory_budget_gb must be None (the device's available memory) or a number > 0, "
                 f"got {self.memory_budget_gb!r}")
        _require(self.collapse_remedy in COLLAPSE_REMEDIES,
                 f"unknown collapse_remedy {self.collapse_remedy!r}; valid: {', '.join(COLLAPSE_REMEDIES)}")
        _require(isinstance(self.darts_minus_beta, (int, float)) and self.darts_minus_beta >= 0,
                 f"darts_minus_beta must be >= 0, got {self.darts_minus_beta!r}")
        _require(isinstance(self.skip_cap, int) and not isinstance(self.skip_cap, bool) and self.skip_cap >= 0,
                 f"skip_cap must be an integer >= 0, got {self.skip_cap!r}")
        _require(self.skip_stop is None or (isinstance(self.skip_stop, int) and self.skip_stop >= 1),
                 f"skip_stop must be None (no early stop) or an integer >= 1, got {self.skip_stop!r}")
        _require(isinstance(self.beta_decay_weight, (int, float)) and self.beta_decay_weight >= 0,
                 f"beta_decay_weight must be >= 0, got {self.beta_decay_weight!r}")
        _require(_is_int(self.warmup_epochs) and 0 <= self.warmup_epochs
                 and (self.epochs is None or self.warmup_epochs < self.epochs),
                 f"warmup_epochs must be an integer in 0..epochs-1 "
                 f"({'any' if self.epochs is None else self.epochs - 1}), got {self.warmup_epochs!r}")
        _require(isinstance(self.tensorboard, bool), f"tensorboard must be True or False, got {self.tensorboard!r}")
        _require(self.normalise in NORMALISATIONS,
                 f"unknown normalise {self.normalise!r}; valid: {', '.join(NORMALISATIONS)}")
        return self


@dataclass
class TrainConfig:
    """Retraining of a derived network or a baseline on the fold's training split."""

    epochs: int = 50
    batch_size: int = 16
    eval_batch_size: int = 64  # the epoch selection's and the test scoring's batch, as for SearchConfig
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    drop_path_prob: float = 0.2  # DARTS drop-path on derived cells, ramped linearly over epochs
    # Which speakers train, select and score (emodarts_core.training.protocols): "paper"
    # trains on the 30 % training split and selects the epoch on the search split; "full"
    # trains on all training speakers for `epochs` and keeps the last epoch; "holdout"
    # scores on a held-out group of training speakers (candidates of a random search).
    protocol: str = "paper"
    device: str = "auto"
    seed: int = 0
    amp: bool = True
    num_workers: int = 0
    progress: bool = True
    tensorboard: bool = True  # event files in <run>/tb/, as for SearchConfig
    # Feature normalisation (emodarts_core.training.normalise): "none", "utterance" or
    # "coefficient" (statistics of the utterances the network trains on, never a test speaker).
    normalise: str = "none"
    # The weights' optimiser: "sgd" (momentum, as the DARTS cells are trained) or "adam"
    # (Kingma & Ba 2015; `momentum` is then its beta1), both with the cosine schedule lr -> lr_min.
    optimizer: str = "sgd"

    def validate(self) -> "TrainConfig":
        check_ranges(self, TRAIN_RANGES)
        check_flags(self, ("amp", "progress", "tensorboard"))
        _require(_is_int(self.epochs) and self.epochs >= 1, f"epochs must be >= 1 (an integer), got {self.epochs!r}")
        _require(0 < self.lr_min <= self.lr, f"need 0 < lr_min <= lr, got {self.lr_min}, {self.lr}")
        _require(0.0 <= self.drop_path_prob < 1.0, f"drop_path_prob must be in [0, 1), got {self.drop_path_prob}")
        _require(self.protocol in RETRAIN_PROTOCOLS,
                 f"unknown protocol {self.protocol!r}; valid: {', '.join(RETRAIN_PROTOCOLS)}")
        _validate_device(self.device)
        _require(isinstance(self.tensorboard, bool), f"tensorboard must be True or False, got {self.tensorboard!r}")
        _require(self.normalise in NORMALISATIONS,
                 f"unknown normalise {self.normalise!r}; valid: {', '.join(NORMALISATIONS)}")
        _require(self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        _require(0.0 <= self.momentum < 1.0, f"momentum must be in [0, 1), got {self.momentum!r}")
        return self


PRESETS: dict[str, NetworkConfig] = {
    # The paper's search space (paper section IV-C): 1x128x128 input, C=8, 4 CNN cells x 4 nodes,
    # 2 SeqNN cells x 3 nodes, full scope.
    "paper": NetworkConfig(),
    # A laptop-sized space that still has both reductions and both SeqNN cells.
    "small": NetworkConfig(init_channels=4, cnn_cells=3, nodes=3, seq_cells=2, seq_nodes=2,
                           seq_dim=32, stem_stride=2),
    # For tests and CI smoke runs.
    "smoke": NetworkConfig(input_size=(32, 32), init_channels=2, cnn_cells=3, nodes=2,
                           seq_cells=1, seq_nodes=2, seq_dim=8, stem_stride=1),
}


def preset(name: str, **overrides) -> NetworkConfig:
    """A copy of preset `name` with `overrides` applied, validated."""
    _require(name in PRESETS, f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides).validate()


def to_dict(cfg) -> dict:
    """A JSON-ready dict of a configuration dataclass."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def from_dict(cls, data: dict):
    """Rebuild a configuration dataclass from `to_dict` output, rejecting unknown keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    _require(not unknown, f"unknown {cls.__name__} keys {unknown}; valid keys: {', '.join(sorted(names))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values).validate()


__all__ = ["ConfigError", "Range", "SEARCH_RANGES", "TRAIN_RANGES", "NETWORK_RANGES", "SEED_RANGE", "check_ranges",
           "check_flags",
           "available_cpus", "NetworkConfig",
           "SearchConfig", "TrainConfig", "PRESETS", "preset", "reduction_positions", "to_dict", "from_dict"]
