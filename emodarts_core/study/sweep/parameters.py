"""A sweep's parameters: the network, search, training and control settings every task
shares, read from a dict, a YAML file or an installed parameter file (docs/SWEEPS.md).

Parameters have four optional sections whose keys are the fields of `NetworkConfig`,
`SearchConfig`, `TrainConfig` and `ControlConfig`, plus the fold seed and the baselines'
own settings:

    network: {preset: smoke, input_size: [128, 128], stem_stride: 4}   # preset + overrides
    search: {epochs: 2, batch_size: 16}
    train: {epochs: 2, batch_size: 16}
    controls: {random: 5, random_search: 8, random_search_epochs: 10}
    fold_seed: 0          # seed of load_fold's 70/30 search/training split
    baselines:            # per baseline: TrainConfig fields replacing `train`'s
      cnn: {optimizer: adam, lr: 0.001, lr_min: 0.00001, normalise: coefficient}
      classic: {model: logistic, Cs: [0.001, 0.01, 0.1, 1, 10]}   # ClassicConfig's fields
      egemaps: {model: logistic, Cs: [0.001, 0.01, 0.1, 1, 10]}   # EgemapsConfig's fields

    nested: {groups: [0, 1, 2], random_architectures: 3}   # NestedConfig's fields

With a `nested` section, the network baselines' optimiser and normalisation and the
search space's normalisation are chosen per fold on that fold's training speakers
(`emodarts_core.study.nested`) and replace the values above for that fold's tasks.
Without it, a baseline's settings are those given (chosen with
`emodarts_core.study.tune_baselines`), and the searched networks and the controls train
with `train` as it is.

`network.scope` is set per task from the sweep's scopes, the seeds of search and
retraining from its seeds, and the retraining protocol from its protocols, so one
parameter file serves them all. The extra scope `cnn_darts` searches the CNN alone
(`seq_cells = 0`: paper Table 3's CNN-only DARTS model) with the same parameters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from emodarts_core.config import (PRESETS, SEED_RANGE, ConfigError, NetworkConfig, SearchConfig, TrainConfig,
                                  from_dict, to_dict)
from emodarts_core.space.search_space import SCOPES
from emodarts_core.training.classic import CLASSIC
from emodarts_core.training.egemaps import EGEMAPS
from emodarts_core.training.loop import ADDED_DEFAULTS, RESUMABLE_KEYS

CNN_DARTS = "cnn_darts"  # a CNN-only search: no SeqNN cells (paper Table 3)
SEARCH_SCOPES = (*SCOPES, CNN_DARTS)
#: The baselines that are linear classifiers with settings of their own, not `train`'s
#: (`emodarts_core.training.classic`, `emodarts_core.training.egemaps`).
LINEAR_BASELINES = (CLASSIC, EGEMAPS)
#: Settings each task sets for itself (scope, seed, protocol), so a parameter file's value is not binding.
PER_TASK_KEYS = ("scope", "seed", "protocol")


@dataclass
class ControlConfig:
    """The random-architecture controls: how many, in which scope, at what budget."""

    random: int = 5  # random architectures per (fold, seed)
    random_search: int = 8  # candidates of the random search per (fold, seed)
    random_search_epochs: int = 10  # training epochs of each candidate (protocol "holdout")
    scope: str = "emodarts"  # the space the controls draw from

    def validate(self) -> "ControlConfig":
        for name in ("random", "random_search", "random_search_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"controls.{name} must be a positive integer, got {value!r}")
        if self.scope not in SCOPES:
            raise ConfigError(f"unknown controls.scope {self.scope!r}; valid scopes: {', '.join(SCOPES)}")
        return self


@dataclass(frozen=True)
class SweepParams:
    """Network, search, training and control settings shared by every task of a sweep."""

    network: NetworkConfig
    search: SearchConfig
    train: TrainConfig
    fold_seed: int = 0
    controls: ControlConfig = field(default_factory=ControlConfig)
    #: baseline name -> the fields its training sets (TrainConfig's; ClassicConfig's for `classic`,
    #: EgemapsConfig's for `egemaps`)
    baselines: dict = field(default_factory=dict)
    #: settings chosen per fold on its training speakers (`emodarts_core.study.nested.NestedConfig`'s
    #: fields); empty: none are (every task takes the settings above as they are)
    nested: dict = field(default_factory=dict)

    def nested_config(self):
        """The nested choices' settings (`emodarts_core.study.nested.NestedConfig`), or None."""
        if not self.nested:
            return None
        from emodarts_core.study.nested import NestedConfig

        return from_dict(NestedConfig, dict(self.nested)).validate()

    def to_dict(self) -> dict:
        out = {"network": to_dict(self.network), "search": to_dict(self.search), "train": to_dict(self.train),
               "controls": to_dict(self.controls), "fold_seed": self.fold_seed}
        if self.baselines:  # absent when empty, so that folders of earlier sweeps still match
            out["baselines"] = {name: {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
                                for name, values in sorted(self.baselines.items())}
        if self.nested:  # absent when empty, as `baselines`
            out["nested"] = {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(self.nested.items())}
        return out

    def train_for(self, baseline: str) -> TrainConfig:
        """The training settings of a network baseline: `train` with its `baselines` entry applied."""
        if baseline in LINEAR_BASELINES:  # settings of their own (`classic()`, `egemaps()`); seed, protocol
            return self.train
        return dataclasses.replace(self.train, **self.baselines.get(baseline, {})).validate()

    def classic(self):
        """The classic baseline's settings (`emodarts_core.training.classic.ClassicConfig`)."""
        from emodarts_core.training.classic import ClassicConfig

        return from_dict(ClassicConfig, dict(self.baselines.get("classic", {})))

    def egemaps(self):
        """The egemaps baseline's settings (`emodarts_core.training.egemaps.EgemapsConfig`)."""
        from emodarts_core.training.egemaps import EgemapsConfig

        return from_dict(EgemapsConfig, dict(self.baselines.get("egemaps", {})))

    def network_for(self, scope: str) -> NetworkConfig:
        """The searched network of `scope`; `cnn_darts` is the CNN without SeqNN cells."""
        if scope == CNN_DARTS:
            return dataclasses.replace(self.network, seq_cells=0, scope="emodarts").validate()
        return dataclasses.replace(self.network, scope=scope).validate()


def load_params(params) -> SweepParams:
    """Read sweep parameters from a dict, a YAML file path, an installed parameter file's
    name (`"sweep_smoke"`, see `emodarts_core.params`), or a `SweepParams` (validated)."""
    if isinstance(params, SweepParams):
        return params
    if isinstance(params, (str, Path)):
        import yaml

        from emodarts_core import params as packaged

        path = Path(params)
        if not path.is_file() and isinstance(params, str) and path.name == params:
            try:
                path = packaged.path(params)  # a bare name: the file installed with the package
            except KeyError:
                pass
        if not path.is_file():
            raise ConfigError(f"parameter file {path} does not exist "
                              f"(installed parameter files: {', '.join(packaged.names())})")
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(params, dict):
        raise ConfigError("parameters must be a mapping with network/search/train sections, "
                          f"got {type(params).__name__}")
    unknown = sorted(set(params) - {"network", "search", "train", "controls", "fold_seed", "baselines", "nested"})
    if unknown:
        raise ConfigError(f"unknown parameter sections {unknown}; valid: network, search, train, controls, fold_seed, "
                          "baselines, nested")
    network = dict(params.get("network") or {})
    base = network.pop("preset", None)
    if base is not None:
        if base not in PRESETS:
            raise ConfigError(f"unknown network preset {base!r}; valid presets: {', '.join(PRESETS)}")
        network = {**to_dict(PRESETS[base]), **network}
    fold_seed = params.get("fold_seed", 0)
    if not SEED_RANGE.accepts(fold_seed):
        raise ConfigError(f"fold_seed must be {SEED_RANGE.describe()}, got {fold_seed!r}")
    train = from_dict(TrainConfig, dict(params.get("train") or {}))
    out = SweepParams(from_dict(NetworkConfig, network), from_dict(SearchConfig, dict(params.get("search") or {})),
                      train, fold_seed, from_dict(ControlConfig, dict(params.get("controls") or {})),
                      _baseline_settings(params.get("baselines"), train), dict(params.get("nested") or {}))
    out.classic()
    out.egemaps()
    out.nested_config()  # unknown or invalid nested settings fail here
    return out


def _baseline_settings(section, train: TrainConfig) -> dict:
    """The `baselines` section, checked: known baselines, and fields their training has."""
    from emodarts_core.space.baselines import BASELINES

    section = dict(section or {})
    for name, values in section.items():
        if name not in (*BASELINES, *LINEAR_BASELINES):
            raise ConfigError(f"unknown baseline {name!r} in baselines; valid: "
                              f"{', '.join((*BASELINES, *LINEAR_BASELINES))}")
        if not isinstance(values, dict):
            raise ConfigError(f"baselines.{name} must be a mapping of settings, got {values!r}")
        if name not in LINEAR_BASELINES:
            from_dict(TrainConfig, {**to_dict(train), **values})  # unknown or invalid fields fail here
    return {name: dict(values) for name, values in section.items()}


def params_differences(stored: dict, current: dict, path: str = "") -> list[str]:
    """Dotted keys whose values differ, ignoring settings a run may change on resume, and
    settings added since the stored sweep ran that hold the value it ran with (ADDED_DEFAULTS)."""
    if isinstance(stored, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(stored) | set(current)):
            added = key not in stored and f"{path}{key}" in ADDED_DEFAULTS
            if added and current.get(key) == ADDED_DEFAULTS[f"{path}{key}"]:
                continue
            if key not in RESUMABLE_KEYS and key not in PER_TASK_KEYS:
                out += params_differences(stored.get(key), current.get(key), f"{path}{key}.")
        return out
    return [] if stored == current else [path.rstrip(".")]
