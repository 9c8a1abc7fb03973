"""The waveform and the MFCC image a network sees (notebook 01)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .style import save_figure


def plot_utterance(mfcc: np.ndarray, waveform: np.ndarray | None = None, sample_rate: int | None = None,
                   title: str = "", path: str | Path | None = None) -> plt.Figure:
    """The waveform (when given) above the 128x128 MFCC image the network sees."""
    rows = 2 if waveform is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(8, 2.2 + 2.6 * rows), squeeze=False)
    axes = axes[:, 0]
    if waveform is not None:
        t = np.arange(len(waveform)) / float(sample_rate or 1)
        axes[0].plot(t, waveform, lw=0.6)
        axes[0].set(xlabel="time [s]" if sample_rate else "sample", ylabel="amplitude", title="waveform")
    image = axes[-1].imshow(np.asarray(mfcc), origin="lower", aspect="auto", cmap="magma")
    axes[-1].set(xlabel="frame (max-pooled by 4 in time)", ylabel="MFCC coefficient",
                 title=f"MFCC {mfcc.shape[0]}x{mfcc.shape[1]}")
    fig.colorbar(image, ax=axes[-1], fraction=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
