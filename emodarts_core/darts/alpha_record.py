"""What a search records of its α, and the genotype it ends with.

Each epoch the search records the α softmax, the genotype it parses to, the α mass on
parameter-free ops (the early sign of the skip-connection collapse of paper section 6.2)
and the diagnostics of `emodarts_core.darts.diagnostics` per cell type: the lift (top
op's weight over uniform), the normalised entropy, the margin between the two strongest
ops other than `none`, and the agreement of the genotype with the previous epoch's and
with the initial α's. `AlphaRecord` keeps these entries and writes `alpha_history.json`
(op names, the initial α's softmax and genotype under "initial", each epoch's entry and,
once the search has ended, its verdict).

At the end (`AlphaRecord.conclude`) the search writes `genotype.json` and
`genotype.txt` and gives its verdict: when the mean lift stays below 1.2 or the
genotype still changed in the last quarter of the epochs, it says in plain words that
the genotype reflects the initialisation rather than the data (`SearchBudgetWarning`,
and "alpha_moved": false with the message in `genotype.json`'s "metadata"). A SeqNN
genotype of only skip_connect/none is a `CollapseWarning`.

With the `skip_cap` collapse remedy the genotype is P-DARTS' capped parse
(`chosen_genotype`); otherwise the plain DARTS parse of the α (paper eq. 3).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from emodarts_core.config import NetworkConfig, SearchConfig
from emodarts_core.darts.collapse import capped_genotype
from emodarts_core.darts.diagnostics import epoch_diagnostics, search_verdict
from emodarts_core.space import genotypes
from emodarts_core.space.genotypes import Genotype
from emodarts_core.space.search_space import CNN_PRIMITIVES, seq_primitives

ALPHA_HISTORY = "alpha_history.json"
GENOTYPE = "genotype.json"
GENOTYPE_TEXT = "genotype.txt"  # the same genotype in pt.darts' Genotype(...) form
PARAMETER_FREE_OPS = ("none", "skip_connect", "max_pool_3x3", "avg_pool_3x3")
SEQ_COLLAPSE_OPS = ("none", "skip_connect")


class CollapseWarning(UserWarning):
    """The SeqNN genotype chose only skip_connect/none: the search collapsed (paper section 6.2)."""


class SearchBudgetWarning(UserWarning):
    """The α barely left their initial values, or the genotype was still changing at the
    end: the genotype reflects the initialisation rather than the data."""


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


def chosen_genotype(model, net_cfg: NetworkConfig, search_cfg: SearchConfig,
                    probs: dict | None = None) -> tuple[Genotype, dict | None]:
    """The genotype the search's α choose now, and the remedy's record for it (None without one).

    With the skip_cap remedy the normal and SeqNN cells hold at most `skip_cap`
    skip_connects (P-DARTS); otherwise it is the plain DARTS parse of the alphas.
    """
    if search_cfg.collapse_remedy != "skip_cap":
        return model.genotype(), None
    probs = dict(model.alpha_probs() if probs is None else probs)
    for kind in ("normal", "reduce"):  # PC-DARTS edge normalisation weighs the edges as in model.genotype()
        probs[kind] = model.edge_weighted_probs(kind, probs[kind])
    genotype, state = capped_genotype(probs, primitives_of(net_cfg), net_cfg, search_cfg.skip_cap)
    stop = search_cfg.skip_stop is not None and any(n >= search_cfg.skip_stop
                                                    for n in state["uncapped_skips"].values())
    return genotype, {"name": "skip_cap", "cap": search_cfg.skip_cap, **state, "stop": stop}


def stored_genotype(rd) -> Genotype:
    """The genotype a finished search left in the run directory `rd`."""
    return genotypes.load(rd.file(GENOTYPE))


def alpha_file(primitives: dict, initial: dict, alpha_history: list[dict], verdict: dict | None = None) -> dict:
    """The content of alpha_history.json: op names, the initial α's softmax and genotype,
    each epoch's entry and, once the search has ended, its verdict."""
    out = {"primitives": primitives, "parameter_free_ops": list(PARAMETER_FREE_OPS), "initial": initial,
           "epochs": alpha_history}
    if verdict is not None:
        out["verdict"] = verdict
    return out


class AlphaRecord:
    """The α history of one search: the initial α of `model`, then one entry per epoch."""

    def __init__(self, model, net_cfg: NetworkConfig, search_cfg: SearchConfig):
        self.model, self.net_cfg, self.search_cfg = model, net_cfg, search_cfg
        self.primitives = {k: list(v) for k, v in primitives_of(net_cfg).items()}
        probs = model.alpha_probs()
        self.initial_genotype, _ = chosen_genotype(model, net_cfg, search_cfg, probs)
        self.initial = {"probs": {k: v.tolist() for k, v in probs.items()},
                        "genotype": self.initial_genotype.to_dict()}
        self.entries: list[dict] = []

    def epoch(self, epoch: int, record: dict, remedy: dict | None, seconds: float) -> dict:
        """Add epoch `epoch`'s (0-based) α entry and return `record` (the epoch's losses and
        scores) completed with the α's: parameter-free share, collapse, diagnostics, the
        epoch's `seconds`, and the remedy's state (`remedy`, or the skip cap's record when
        the genotype was capped)."""
        probs = self.model.alpha_probs()
        genotype, capped = chosen_genotype(self.model, self.net_cfg, self.search_cfg, probs)
        remedy = remedy if remedy is not None else capped
        share = parameter_free_share(probs, self.net_cfg)
        previous = self.entries[-1]["genotype"] if self.entries else self.initial_genotype
        diagnostics = epoch_diagnostics(probs, self.primitives, genotype, previous, self.initial_genotype)
        record.update({"param_free": share, "seq_collapsed": seq_collapsed(genotype), **diagnostics,
                       "seconds": seconds})
        extra = {} if remedy is None else {"remedy": remedy}
        record.update(extra)
        self.entries.append({"epoch": epoch + 1, "probs": {k: v.tolist() for k, v in probs.items()},
                             "param_free": share, "genotype": genotype.to_dict(), **diagnostics, **extra})
        return record

    def write(self, rd, verdict: dict | None = None) -> None:
        """Write alpha_history.json (atomically) into the run directory `rd`."""
        rd.atomic_write_json(ALPHA_HISTORY, alpha_file(self.primitives, self.initial, self.entries, verdict))

    def conclude(self, rd, history: list[dict], budget) -> tuple[Genotype, dict]:
        """The search's genotype and verdict, written to alpha_history.json, genotype.json and
        genotype.txt; warns when the α did not move (`SearchBudgetWarning`) or the SeqNN cell
        collapsed (`CollapseWarning`)."""
        genotype, _ = chosen_genotype(self.model, self.net_cfg, self.search_cfg)
        taken = history[-1].get("alpha_updates", 0) if history else 0
        verdict = search_verdict(history, [e["genotype"] for e in self.entries], alpha_lr=budget.alpha_lr,
                                 alpha_steps=taken)
        verdict["alpha_frozen"] = budget.frozen
        if budget.frozen:
            verdict["message"] = ("α frozen at their initial values (the prior control): the genotype is the "
                                  "initialisation's and the parse rule's by construction.")
        self.write(rd, verdict)
        rd.atomic_write_text(GENOTYPE, genotypes.to_json(genotype, metadata=verdict) + "\n")
        rd.atomic_write_text(GENOTYPE_TEXT, genotypes.to_text(genotype) + "\n")
        if verdict["message"] is not None and not budget.frozen:
            warnings.warn(f"search in {rd.path}: {verdict['message']}", SearchBudgetWarning, stacklevel=3)
        if seq_collapsed(genotype):
            _warn_collapse(genotype, rd.path)
        return genotype, verdict


def _warn_collapse(genotype: Genotype, run_dir: Path) -> None:
    warnings.warn(f"the SeqNN genotype of {run_dir} is all skip_connect/none ({genotype.seq}): the search "
                  "collapsed (paper section 6.2). Use at most 3 SeqNN cells/nodes, fewer epochs, or a "
                  "collapse remedy (SearchConfig.collapse_remedy='darts_minus' or 'skip_cap'), and check "
                  "the parameter-free share in alpha_history.json.",
                  CollapseWarning, stacklevel=4)


__all__ = ["ALPHA_HISTORY", "GENOTYPE", "GENOTYPE_TEXT", "PARAMETER_FREE_OPS", "AlphaRecord", "CollapseWarning",
           "SearchBudgetWarning", "alpha_file", "chosen_genotype", "parameter_free_share", "primitives_of",
           "seq_collapsed", "stored_genotype"]
