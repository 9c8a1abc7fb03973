"""Every numeric setting of a search or a retraining is checked against its range before
any work (config.SEARCH_RANGES, TRAIN_RANGES): a negative gradient clip ran gradient
ascent to a run that ended FINISHED (loss 1.35 to 6826), and a negative seed or worker
count failed deep inside numpy or the DataLoader. Sweeps read the same configurations."""

import dataclasses
import math
import os
import re

import pytest

from emodarts_core.config import (PRESETS, SEARCH_RANGES, TRAIN_RANGES, ConfigError, NetworkConfig, SearchConfig,
                                  TrainConfig, available_cpus, from_dict, to_dict)
from emodarts_core.darts.search import run_search
from emodarts_core.study.sweep.parameters import load_params
from emodarts_core.training.train import run_retrain
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net, train_cfg  # noqa: F401

BAD = {  # per kind of range, values outside it
    "count": [0, -1, 2.5, True, None, "4"],
    "positive": [0, -0.1, math.nan, math.inf, None, "0.1"],
    "non-negative": [-1e-9, math.nan, math.inf, None],
    "fraction": [-0.1, 1.0, 1.5, math.nan, None],
    "clip": [-5, 0, -math.inf, math.nan, None],
    "seed": [-1, 1.0, None, "0", 2 ** 32, 2 ** 64],
    "workers": [-1, 0.5, None],
    "memory": [0, -1, math.nan],
}
KIND = {"batch_size": "count", "eval_batch_size": "count", "epochs": "count", "w_lr": "positive", "w_lr_min": "positive", "lr": "positive",
        "lr_min": "positive", "w_momentum": "fraction", "momentum": "fraction", "drop_path_prob": "fraction",
        "w_weight_decay": "non-negative", "weight_decay": "non-negative", "darts_minus_beta": "non-negative",
        "beta_decay_weight": "non-negative", "w_grad_clip": "clip", "grad_clip": "clip", "seed": "seed",
        "num_workers": "workers", "skip_cap": "workers", "memory_budget_gb": "memory"}


def _cases():
    for cls, ranges in ((SearchConfig, SEARCH_RANGES), (TrainConfig, TRAIN_RANGES)):
        for name in ranges:
            for value in BAD[KIND[name]]:
                yield pytest.param(cls, name, value, id=f"{cls.__name__}.{name}={value!r}")


@pytest.mark.parametrize("cls, name, value", list(_cases()))
def test_a_value_outside_its_range_is_refused_naming_the_setting(cls, name, value):
    cfg = dataclasses.replace(cls(), **{name: value}, **({"w_lr_min": 1e-9} if name == "w_lr" else {}),
                              **({"lr_min": 1e-9} if name == "lr" else {}))
    with pytest.raises(ConfigError, match=re.escape(f"{cls.__name__}.{name} must be ")) as info:
        cfg.validate()
    assert str(info.value).endswith(f"got {value!r}")
    with pytest.raises(ConfigError):  # a configuration read back from a run or a sweep's file too
        from_dict(cls, {**to_dict(cls()), name: value})


@pytest.mark.parametrize("cls, name, value", [(SearchConfig, "w_grad_clip", math.inf), (TrainConfig, "grad_clip", 1e-3),
                                              (SearchConfig, "seed", 0), (TrainConfig, "num_workers", 0),
                                              (SearchConfig, "memory_budget_gb", None), (TrainConfig, "momentum", 0.0),
                                              (SearchConfig, "w_weight_decay", 0)])
def test_the_ends_of_a_range_are_accepted(cls, name, value):
    dataclasses.replace(cls(), **{name: value}).validate()


def test_every_numeric_setting_has_a_range():
    """A numeric field added to a configuration without a line in its table fails here."""
    checked_elsewhere = {"epochs", "alpha_steps", "alpha_lr", "alpha_weight_decay", "skip_stop", "warmup_epochs",
                         "order"}
    for cls, ranges in ((SearchConfig, SEARCH_RANGES), (TrainConfig, TRAIN_RANGES)):
        for f in dataclasses.fields(cls):
            value = getattr(cls(), f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) or f.name == "memory_budget_gb":
                assert f.name in ranges or f.name in checked_elsewhere, (cls.__name__, f.name)


def test_a_negative_gradient_clip_is_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="grad_clip must be a number > 0"):
        run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(grad_clip=-5.0), tmp_path / "retrain")
    with pytest.raises(ConfigError, match="w_grad_clip must be a number > 0"):
        run_search(tiny_fold(), tiny_net(), search_cfg(w_grad_clip=-5.0), tmp_path / "search")
    with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 4294967295\]"):
        run_search(tiny_fold(), tiny_net(), search_cfg(seed=-1), tmp_path / "search")
    assert not (tmp_path / "retrain").exists() and not (tmp_path / "search").exists()


@pytest.mark.parametrize("section, key, value", [("train", "grad_clip", -5), ("search", "num_workers", -2),
                                                 ("search", "w_lr", -0.1)])
def test_a_sweep_parameter_file_out_of_range_is_refused(tmp_path, section, key, value):
    path = tmp_path / "params.yaml"
    path.write_text(f"network: {{preset: smoke}}\n{section}: {{epochs: 1, {key}: {value}}}\n")
    with pytest.raises(ConfigError, match=rf"\.{key} must be"):
        load_params(path)


# -- the network's sizes, flags and the CPU bound on workers ------------------------------
@pytest.mark.parametrize("name, value", [("init_channels", 100000), ("seq_dim", 10 ** 6), ("nodes", 50),
                                         ("cnn_cells", 1000), ("n_classes", 1), ("in_channels", True),
                                         ("dropout", "0.1"), ("dropout", 1.0), ("seq_cells", -1),
                                         ("partial_channels", 3), ("input_size", (128, 10 ** 6)),
                                         ("input_size", 128), ("input_size", ("128", 128))])
def test_a_network_size_out_of_range_or_of_the_wrong_type_is_a_config_error(name, value):
    """Before: init_channels=100000 tried to allocate about 120 GB, and `dropout: '0.1'`
    from a YAML file failed with a TypeError from a comparison."""
    with pytest.raises(ConfigError, match=re.escape(name)) as info:
        NetworkConfig(**{name: value}).validate()
    assert repr(value) in str(info.value)


def test_a_network_from_a_sweep_file_with_a_string_dropout_is_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("network: {preset: smoke, dropout: '0.1'}\nsearch: {epochs: 1}\ntrain: {epochs: 1}\n")
    with pytest.raises(ConfigError, match=r"dropout must be a number in \[0, 1\), got '0.1'"):
        load_params(path).network_for("emodarts")


def test_the_presets_and_the_paper_sizes_are_in_range():
    for cfg in PRESETS.values():
        cfg.validate()
    NetworkConfig(init_channels=48, cnn_cells=20, dropout=0.5).validate()  # DARTS' CIFAR retraining sizes


@pytest.mark.parametrize("cls, name, value", [(TrainConfig, "epochs", True), (TrainConfig, "amp", "yes"),
                                              (SearchConfig, "amp", "yes"), (TrainConfig, "progress", 1),
                                              (SearchConfig, "tensorboard", "false"), (SearchConfig, "order", True)])
def test_flags_and_counts_of_the_wrong_type_are_refused(cls, name, value):
    with pytest.raises(ConfigError, match=re.escape(name)):
        dataclasses.replace(cls(), **{name: value}).validate()


@pytest.mark.parametrize("cls", [SearchConfig, TrainConfig])
def test_num_workers_is_bounded_by_the_cpus_this_process_may_use(cls, monkeypatch):
    cpus = available_cpus()
    dataclasses.replace(cls(), num_workers=cpus).validate()
    for too_many in (cpus + 1, 100000):
        with pytest.raises(ConfigError, match=rf"num_workers must be an integer in \[0, {cpus}\], at most the CPUs"):
            dataclasses.replace(cls(), num_workers=too_many).validate()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)  # `taskset -c 0`
    assert available_cpus() == 1
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        dataclasses.replace(cls(), num_workers=2).validate()
