"""Where a notebook's run goes, and which searched genotype a retraining takes.

A notebook names its run directory after what it computes: `runs/<kind>_<dataset>_fold<k>_
<label>_<hash>`, where the hash covers every setting that changes the result. The same
settings give the same folder, so rerunning a notebook resumes (or reloads) its run; other
settings give a new folder and never overwrite it. Notebooks 03 and 04 both use
`run_directory`.

`searched_genotype` is the other half of notebook 04: the genotype of a search run (by
default the newest under `runs/`), with the network it was searched with (a genotype fits
only that shape: nodes per cell, SeqNN scope), after checking that the retraining uses the
fold the search held out. A genotype searched on another fold has seen this fold's test
speakers (docs/REFERENCE_CODE.md, defect 4, for why the test speakers must choose nothing).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from emodarts_core.config import NetworkConfig, from_dict
from emodarts_core.space import genotypes
from emodarts_core.space.genotypes import Genotype

#: Where the notebooks keep their runs, relative to the working directory.
RUNS = Path("runs")


def settings_hash(settings) -> str:
    """Eight hex digits of the SHA-256 of `settings` (any JSON-ready value) as sorted JSON."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def run_directory(run_dir, kind: str, dataset: str, fold: int, label: str, settings, root=RUNS) -> Path:
    """`run_dir` when one is given; otherwise `root/<kind>_<dataset>_fold<fold>_<label>_<hash>`,
    the hash being `settings_hash(settings)`: pass every setting that changes the result."""
    if run_dir:
        return Path(run_dir)
    return Path(root) / f"{kind}_{dataset}_fold{fold}_{label}_{settings_hash(settings)}"


@dataclass(frozen=True)
class SearchedGenotype:
    """A search run's genotype, the network it fits, and the test speakers its fold held out."""

    path: Path
    genotype: Genotype
    network: NetworkConfig
    test_speakers: tuple[str, ...]


def newest_genotype(root=RUNS) -> Path:
    """The most recently written `search_*/genotype.json` under `root`."""
    found = sorted(Path(root).glob("search_*/genotype.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no genotype under {Path(root).resolve()}/search_*/: run notebook 03 first, "
                                "set genotype_path, or train a baseline (model='cnn')")
    return found[-1]


def searched_genotype(genotype_path=None, fold_data=None, root=RUNS, **network_overrides) -> SearchedGenotype:
    """Load a search run's genotype and the network settings of its `config.json`.

    `genotype_path` defaults to the newest under `root` (`newest_genotype`). Network
    settings given in `network_overrides` (None values are ignored) replace the search's,
    e.g. more channels for the final model. With `fold_data`, a fold whose test speakers
    differ from the search's is refused with a ValueError that names both.
    """
    path = Path(genotype_path) if genotype_path is not None else newest_genotype(root)
    config_path = path.parent / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} does not exist: {path} is not in a search run directory, so the "
                                "network it was searched with is unknown; give the network settings and a baseline, "
                                "or point genotype_path into a run of notebook 03")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        searched_net, searched_on = config["network"], config["data"]["test_speakers"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{config_path} is not a search run's config.json (it needs network settings and "
                         f"data.test_speakers): {type(exc).__name__}: {exc}") from None
    overrides = {k: v for k, v in network_overrides.items() if v is not None}
    network = dataclasses.replace(from_dict(NetworkConfig, searched_net), **overrides).validate()
    if fold_data is not None and sorted(searched_on) != sorted(fold_data.fold.test_speakers):
        raise ValueError(f"the genotype {path} was searched with test speakers {sorted(searched_on)}, but this "
                         f"fold tests {sorted(fold_data.fold.test_speakers)}: retrain on the fold it was searched on")
    return SearchedGenotype(path, genotypes.load(path), network, tuple(searched_on))
