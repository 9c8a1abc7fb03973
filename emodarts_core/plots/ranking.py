"""How well a supernet ranks architectures, and what reporting the best test epoch adds:
the figures of notebook 06 ("Does the search help?").

- `plot_ranking`: one panel per fold, each architecture's one-shot UA inside the supernet
  against its stand-alone UA, Kendall's τ in the title (Sciuto et al., ICLR 2020);
- `plot_optimism`: per model, the honest UA of each `full` retraining against the best
  test UA over its epochs, the gap being a measured bias, not a result.

The tables come from `emodarts_core.study.ranking` and `emodarts_core.study.optimism`;
this module draws what it is given (pandas frames) and imports nothing else of the library.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from .style import save_figure


def plot_ranking(scores: pd.DataFrame, x: str = "one_shot_ua", y: str = "test_ua_full", hue: str | None = "supernet",
                 path: str | Path | None = None) -> plt.Figure:
    """One panel per fold: `x` (one-shot UA, a fraction) against `y` (stand-alone UA, %),
    one point per (architecture, supernet), τ per supernet in the panel's title.

    `scores` needs the columns fold, `x`, `y` and, if given, `hue`."""
    import seaborn as sns  # the `notebooks` extra installs it, as for `results.plot_per_fold`

    if scores.empty:
        raise ValueError("no scores to plot: score the architectures first (emodarts_core.study.ranking)")
    folds = sorted(scores["fold"].unique())
    fig, axes = plt.subplots(1, len(folds), figsize=(3.4 * len(folds), 3.2), squeeze=False, sharey=True)
    for ax, fold in zip(axes[0], folds):
        part = scores[scores["fold"] == fold]
        sns.scatterplot(data=part, x=x, y=y, hue=hue, ax=ax, s=28, legend=ax is axes[0][0])
        groups = part.groupby(hue) if hue else [("", part)]
        taus = []
        for name, g in groups:
            tau = g[x].corr(g[y], method="kendall") if g[x].nunique() > 1 and g[y].nunique() > 1 else float("nan")
            taus.append(f"{name} τ={tau:+.2f}" if name else f"τ={tau:+.2f}")
        ax.set_title(f"fold {fold}\n" + ", ".join(taus), fontsize=8)
        ax.set_xlabel("one-shot UA (supernet)")
        ax.set_ylabel("stand-alone UA %")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_optimism(gaps: pd.DataFrame, path: str | Path | None = None) -> plt.Figure:
    """Per `full` retraining (`study.optimism.run_gaps`): honest UA against the best
    test-epoch UA, coloured by model; the diagonal is no optimism."""
    import seaborn as sns

    if gaps.empty:
        raise ValueError("no traced retrainings: full retrainings write test_trace.jsonl (training.optimism_trace)")
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    sns.scatterplot(data=gaps, x="honest_ua", y="best_epoch_ua", hue="model", ax=ax, s=28)
    low = min(gaps["honest_ua"].min(), gaps["best_epoch_ua"].min())
    high = max(gaps["honest_ua"].max(), gaps["best_epoch_ua"].max())
    ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("honest UA % (last epoch)")
    ax.set_ylabel("best test-epoch UA %")
    ax.set_title("a measured bias, not a result", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["plot_optimism", "plot_ranking"]
