"""What a search shows: the architecture weights softmax(alpha) per edge and op, how they
move during the search, and the share of parameter-free ops when a search collapses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .style import CELL_TITLES, op_colour, save_figure


def plot_alpha_heatmap(probs: Mapping[str, np.ndarray], primitives: Mapping[str, Sequence[str]],
                       path: str | Path | None = None, title: str = "") -> plt.Figure:
    """Softmax(alpha) per edge (rows) and candidate op (columns), one panel per cell type.

    The colour scale is centred on the uniform weight 1/K (white) and spans the largest
    deviation from it, so that alphas within 1 % of uniform (early in a search, or with a
    small alpha learning rate) still show which ops gain (red) and which lose (blue)."""
    names = [n for n in ("normal", "reduce", "seq") if n in probs and np.size(probs[n])]
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        matrix = np.asarray(probs[name])
        uniform = 1.0 / matrix.shape[1]
        spread = max(float(np.abs(matrix - uniform).max()), 1e-9)
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=uniform - spread, vmax=uniform + spread, aspect="auto")
        ax.set_xticks(range(matrix.shape[1]), list(primitives[name]), rotation=70, fontsize=7)
        ax.set_yticks(range(matrix.shape[0]), [f"edge {i}" for i in range(matrix.shape[0])], fontsize=7)
        ax.set_title(CELL_TITLES.get(name, name))
        bar = fig.colorbar(image, ax=ax, fraction=0.046)
        bar.set_label(f"softmax(alpha); white = uniform 1/{matrix.shape[1]}", fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_alpha_trajectories(alpha_history: Sequence[Mapping[str, np.ndarray]],
                            primitives: Mapping[str, Sequence[str]], path: str | Path | None = None,
                            title: str = "") -> plt.Figure:
    """How the architecture weights move during search.

    `alpha_history` holds one entry per epoch, each a mapping cell type -> softmax
    probabilities `[edges, ops]`. Each panel shows, for one cell type, every candidate
    op's probability averaged over the edges, so the op DARTS is converging to rises.
    """
    names = [n for n in ("normal", "reduce", "seq") if alpha_history and n in alpha_history[0]
             and np.size(alpha_history[0][n])]
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.6), squeeze=False)
    epochs = np.arange(1, len(alpha_history) + 1)
    for ax, name in zip(axes[0], names):
        series = np.stack([np.asarray(entry[name]).mean(axis=0) for entry in alpha_history])
        for j, op in enumerate(primitives[name]):
            ax.plot(epochs, series[:, j], label=op, color=op_colour(op),
                    ls="--" if op in ("none", "skip_connect") else "-", marker="." if len(epochs) < 30 else None)
        ax.set(xlabel="epoch", ylabel="mean softmax(alpha) over edges", title=CELL_TITLES.get(name, name))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


#: Line style, marker and marker size per curve, so that curves lying on one another
#: (two remedies that both keep the SeqNN at the same share) stay distinguishable.
_DISTINCT_STYLES = (("-", "o", 9), ("--", "s", 7), (":", "^", 5), ("-.", "D", 4))


def plot_collapse(histories: Mapping[str, Sequence[Mapping]], cell: str = "seq", path: str | Path | None = None,
                  title: str = "collapse and its remedies") -> plt.Figure:
    """The alpha share on parameter-free ops (`param_free[cell]` of each epoch record) per
    search, e.g. one search per collapse remedy (paper section 6.2). Each curve has its
    own line style and open marker of its own size, so identical curves show through."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, (name, history) in enumerate(histories.items()):
        style, marker, size = _DISTINCT_STYLES[k % len(_DISTINCT_STYLES)]
        ax.plot([h["epoch"] for h in history], [h["param_free"][cell] for h in history], ls=style, marker=marker,
                markersize=size, fillstyle="none", lw=1.6, label=name, zorder=3 + k)
    ax.set(xlabel="epoch", ylabel=f"alpha share on parameter-free ops ({CELL_TITLES.get(cell, cell)})", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
