"""emodarts_core: joint CNN -> SeqNN differentiable architecture search for speech emotion recognition.

The package is grouped by stage (``docs/ARCHITECTURE.md`` has the map):

- ``space``: the search space of the paper (ops, mixed op, cells, networks, genotypes,
  baselines), in plain PyTorch;
- ``fast``: the fast form of that network and its CPU kernels, behind one switch
  (``EMODARTS_FAST=0``); ``networks`` builds the form the switch chooses;
- ``training``: retraining, the shared epoch loop, data loaders, devices, run directories,
  metrics;
- ``darts``: the search itself (architect, search loop, collapse remedies, memory
  estimator); ``perf``: the step benchmark;
- ``study``: sweeps, controls, result tables, statistics, the paper's numbers;
- ``plots``: the notebooks' figures; ``teaching``: the exercises' self-checks; ``params``:
  the installed parameter files.

- ``runtime``: the process settings of a run (the heap, OpenMP's threads).

Importing the package does one thing besides defining names: it chooses OpenMP's wait
policy, which takes effect where torch is not loaded yet (``emodarts_core.runtime.threads``;
each run covers the other case). The names below are imported on first use, so
``import emodarts_core`` stays cheap.
"""

from emodarts_core.runtime.threads import choose_wait_policy

choose_wait_policy()

__version__ = "0.1.0"

# name -> module that defines it; loaded on first attribute access (PEP 562)
_EXPORTS = {
    "NetworkConfig": "emodarts_core.config", "SearchConfig": "emodarts_core.config",
    "TrainConfig": "emodarts_core.config", "preset": "emodarts_core.config",
    "Genotype": "emodarts_core.space.genotypes", "MixedOp": "emodarts_core.space.cells",
    "SearchNetwork": "emodarts_core.space.search_network",
    "DerivedNetwork": "emodarts_core.space.derived",
    "run_search": "emodarts_core.darts.search", "run_retrain": "emodarts_core.training.train",
    "estimate_search_memory": "emodarts_core.darts.memory",
    "resolve_device": "emodarts_core.training.device",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'emodarts_core' has no attribute {name!r}")
