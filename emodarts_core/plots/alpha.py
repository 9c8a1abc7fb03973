"""Did the architecture weights move? Figures of a search's `alpha_history.json`.

Every edge starts at the uniform weight 1/K over its K candidate ops (DARTS eq. 2 with α
near 0). These figures show how far a search took the α from there, per cell type:

- `plot_alpha_moves`: each op's softmax weight, averaged over the cell's edges, from the
  initial α (epoch 0) to the last epoch, with the uniform level 1/K marked; and the top
  op's weight of each edge, whose distance from 1/K is what the parse (eq. 3) rests on;
- `plot_alpha_diagnostics`: the lift (top op's weight over uniform; 1 is uniform), the
  normalised entropy (1 is uniform) and the agreement of each epoch's genotype with the
  previous one, against the α steps taken, with the threshold below which a search says
  that its α barely moved.

They read the records that `emodarts_core.darts.search` writes (the measures are defined
in `emodarts_core.darts.diagnostics`) and import nothing else of the library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .style import CELL_TITLES, op_colour, save_figure

#: The mean lift below which a search reports that its α barely moved (diagnostics.MIN_LIFT).
MIN_LIFT = 1.2
_CELLS = ("normal", "reduce", "seq")


def _steps(entries: Sequence[Mapping]) -> tuple[np.ndarray, str]:
    """x values of the epochs: the α steps taken by the end of each, else the epoch."""
    if entries and all("alpha_updates" in e for e in entries):
        return np.array([e["alpha_updates"] for e in entries]), "α steps taken"
    return np.array([e["epoch"] for e in entries]), "epoch"


def plot_alpha_moves(alpha_file: Mapping, path: str | Path | None = None, title: str = "") -> plt.Figure:
    """softmax(α) from the initial α (epoch 0) to the last epoch, uniform level marked.

    Top row, per cell type: each op's weight averaged over the edges. Bottom row: every
    edge's top weight (grey) and their mean (black). Both have 1/K as a dashed line; a
    search whose curves hug it has not moved its α.
    """
    epochs = list(alpha_file["epochs"])
    initial = alpha_file.get("initial")
    entries = ([{"epoch": 0, "probs": initial["probs"]}] if initial else []) + epochs
    prims = alpha_file["primitives"]
    names = [n for n in _CELLS if n in prims and entries and np.size(entries[0]["probs"].get(n, []))]
    x = np.array([e["epoch"] for e in entries])
    fig, axes = plt.subplots(2, len(names), figsize=(4.6 * len(names), 6.4), squeeze=False, sharex=True)
    for col, name in enumerate(names):
        stack = np.stack([np.asarray(e["probs"][name], dtype=float) for e in entries])  # [epochs, edges, ops]
        uniform = 1.0 / stack.shape[2]
        top, bottom = axes[0, col], axes[1, col]
        for j, op in enumerate(prims[name]):
            top.plot(x, stack[:, :, j].mean(axis=1), label=op, color=op_colour(op),
                     ls="--" if op in ("none", "skip_connect") else "-", marker="." if len(x) < 30 else None)
        best = stack.max(axis=2)
        bottom.plot(x, best, color="0.7", lw=0.8)
        bottom.plot(x, best.mean(axis=1), color="black", lw=2, label="mean over edges")
        for ax in (top, bottom):
            ax.axhline(uniform, color="black", ls=":", lw=1.2)
            ax.grid(alpha=0.3)
        top.text(x[0], uniform, f" uniform 1/{stack.shape[2]}", va="bottom", fontsize=7)
        top.set(ylabel="mean softmax(α) over edges", title=CELL_TITLES.get(name, name))
        top.legend(fontsize=6, ncol=2)
        bottom.set(xlabel="epoch (0 = initial α)", ylabel="top op's weight per edge")
        bottom.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_alpha_diagnostics(records: Sequence[Mapping], path: str | Path | None = None,
                           title: str = "") -> plt.Figure:
    """Lift, normalised entropy and genotype agreement per cell type over a search.

    `records` are the epoch records (`metrics.jsonl`, or `alpha_history.json`'s epochs),
    each with "lift", "entropy" and "agreement_previous" per cell type.
    """
    entries = [r for r in records if r.get("lift")]
    x, xlabel = _steps(entries)
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.6))
    panels = (("lift", "lift: top op's weight / uniform", 1.0),
              ("entropy", "normalised entropy of softmax(α)", 1.0),
              ("agreement_previous", "genotype edges kept from the epoch before", None))
    for ax, (key, label, uniform) in zip(axes, panels):
        for name in _CELLS:
            values = [(r.get(key) or {}).get(name) for r in entries]
            if any(v is not None for v in values):
                ax.plot(x, [np.nan if v is None else v for v in values], marker="." if len(x) < 30 else None,
                        label=CELL_TITLES.get(name, name))
        if uniform is not None:
            ax.axhline(uniform, color="black", ls=":", lw=1.2, label="uniform")
        if key == "lift":
            ax.axhline(MIN_LIFT, color="tab:red", ls="--", lw=1, label=f"{MIN_LIFT}: α barely moved below")
        ax.set(xlabel=xlabel, ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["MIN_LIFT", "plot_alpha_moves", "plot_alpha_diagnostics"]
