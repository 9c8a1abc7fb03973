"""Training curves: losses and accuracies per epoch of a search or a retraining."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .style import save_figure


def _as_frame(history) -> pd.DataFrame:
    frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
    if "epoch" not in frame.columns:
        frame = frame.assign(epoch=np.arange(1, len(frame) + 1))
    return frame


def plot_training_curves(history, path: str | Path | None = None, title: str = "") -> plt.Figure:
    """Losses (left) and accuracies (right) per epoch from a history of per-epoch dicts.

    Columns are picked by name: anything containing `loss` goes left, anything containing
    `acc`, `ua` or `wa` (as a word part) goes right; other columns are ignored.
    """
    frame = _as_frame(history)
    numeric = [c for c in frame.columns if c != "epoch" and pd.api.types.is_numeric_dtype(frame[c])]
    losses = [c for c in numeric if "loss" in c]
    accs = [c for c in numeric if c not in losses and any(p in c.split("_") or c.endswith(p) for p in ("acc", "ua", "wa"))]
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.6))
    for column in losses:
        ax_l.plot(frame["epoch"], frame[column], marker=".", label=column)
    for column in accs:
        ax_a.plot(frame["epoch"], frame[column], marker=".", label=column)
    ax_l.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_a.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax, cols in ((ax_l, losses), (ax_a, accs)):
        if cols:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
