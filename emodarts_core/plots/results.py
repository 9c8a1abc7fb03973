"""Results: a confusion matrix, UA against its spread (paper Figure 7), UA bars (paper
Figure 5), the distribution of random architectures' UA against the searched one, and
each model's UA fold by fold (seaborn's box and strip plots)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .style import op_colour, save_figure


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: str | Path | None = None,
                   title: str = "") -> plt.Figure:
    """Confusion matrix: colour = recall (row-normalised), text = counts; rows are true labels."""
    counts = np.asarray(confusion, dtype=float)
    recall = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    image = ax.imshow(recall, cmap="Blues", vmin=0, vmax=1)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            ax.text(j, i, f"{int(counts[i, j])}\n{recall[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if recall[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), list(classes), rotation=30)
    ax.set_yticks(range(len(classes)), list(classes))
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix (test speakers)")
    fig.colorbar(image, ax=ax, fraction=0.046, label="recall")
    fig.tight_layout()
    return save_figure(fig, path)


def _marker_sizes(params: pd.Series) -> np.ndarray:
    values = pd.to_numeric(params, errors="coerce").astype(float).to_numpy()
    sizes = 30 + 400 * np.sqrt(np.nan_to_num(values, nan=0.0) / max(np.nanmax(values) if np.isfinite(values).any() else 1, 1))
    return np.where(np.isfinite(values), sizes, 30)


def plot_ua_scatter(frame: pd.DataFrame, panel: str = "dataset", label: str = "scope",
                    path: str | Path | None = None, title: str = "") -> plt.Figure:
    """Paper Figure 7: mean UA (y) against std of UA (x); marker area grows with parameters.

    `frame` needs `ua_mean`, `ua_std`, `params`, a `panel` column (one subplot per value,
    e.g. the dataset, or "paper: IEMOCAP" vs "ours: EmoDB") and a `label` column naming
    each point. Rows with a missing UA are listed in the panel as gaps, not plotted.
    """
    panels = list(dict.fromkeys(frame[panel]))
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.8 * max(len(panels), 1), 4.2), squeeze=False)
    for ax, key in zip(axes[0], panels):
        part = frame[frame[panel] == key]
        present = part[part["ua_mean"].notna()]
        ax.scatter(present["ua_std"].fillna(0.0), present["ua_mean"], s=_marker_sizes(present["params"]),
                   c=[op_colour(str(s)) for s in present[label]], alpha=0.7, edgecolors="k")
        for _, row in present.iterrows():
            ax.annotate(str(row[label]), (row["ua_std"] if pd.notna(row["ua_std"]) else 0.0, row["ua_mean"]),
                        textcoords="offset points", xytext=(6, 6), fontsize=8)
        missing = part.loc[part["ua_mean"].isna(), label].astype(str).tolist()
        if missing:
            ax.text(0.02, 0.02, "no run yet: " + ", ".join(missing), transform=ax.transAxes, fontsize=7,
                    color="#aa0000", va="bottom")
        ax.set(xlabel="std of UA [%]", ylabel="mean UA [%]", title=str(key))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_ua_bars(frame: pd.DataFrame, group: str = "dataset", label: str = "model",
                 path: str | Path | None = None, title: str = "") -> plt.Figure:
    """Paper Figure 5: mean UA with std error bars, bars grouped by `group`, one per `label`.

    A missing value leaves an empty slot marked "n/a" instead of failing.
    """
    groups = list(dict.fromkeys(frame[group]))
    labels = list(dict.fromkeys(frame[label]))
    width = 0.8 / max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 * len(groups) * max(len(labels), 1) / 2 + 2), 4.0))
    for j, name in enumerate(labels):
        for i, key in enumerate(groups):
            row = frame[(frame[group] == key) & (frame[label] == name)]
            x = i + (j - (len(labels) - 1) / 2) * width
            mean = float(row["ua_mean"].iloc[0]) if len(row) and pd.notna(row["ua_mean"].iloc[0]) else np.nan
            if np.isnan(mean):
                ax.text(x, 1, "n/a", ha="center", fontsize=7, rotation=90, color="#aa0000")
                continue
            std = row["ua_std"].iloc[0]
            ax.bar(x, mean, width, yerr=None if pd.isna(std) else float(std), capsize=3,
                   color=f"C{j}", label=name if i == 0 or name not in ax.get_legend_handles_labels()[1] else None)
            ax.text(x, mean + 1, f"{mean:.1f}", ha="center", fontsize=7)
    ax.set_xticks(range(len(groups)), [str(g) for g in groups])
    ax.set(ylabel="UA [%]", ylim=(0, 100), title=title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_random_distribution(study: pd.DataFrame, protocol: str, dataset: str | None = None,
                             searched: Sequence[str] = ("emodarts",), random: str = "random",
                             controls: Sequence[str] = ("random_search",), baselines: Sequence[str] | None = None,
                             ax: plt.Axes | None = None, path: str | Path | None = None,
                             title: str | None = None) -> plt.Figure:
    """Does the search beat its own search space? Random architectures' test UA vs the searched model.

    The sanity check of Li & Talwalkar (2019, "Random search and reproducibility for NAS")
    and Yang et al. (ICLR 2020, "NAS evaluation is frustratingly hard"): the histogram shows
    the test UA (%) of every random architecture of the space (all folds, seeds and
    architectures of model `random`, from `results.collect_study`) for one `protocol`
    (and `dataset`, default: all rows). On top of it:

    * each `searched` model (default emoDARTS): one marker per (fold, seed) run just above the
      axis, a solid vertical line at its mean and a shaded band of mean ± std;
    * each `controls` model (default the random-search control): a dash-dot line at its mean;
    * each baseline (default every other model, restricted scopes included): a dashed line at
      its mean;
    * the random architectures' own mean: a dotted grey line.

    Every artist carries a `gid` naming what it shows (`"random:hist"`, `"runs:emodarts"`,
    `"mean:emodarts"`, `"band:emodarts"`, `"mean:cnn"`, `"mean:random"`), so tests can
    read the figure's data. Models without a finished run are listed as "no run yet".
    Fold difficulty varies a lot between speaker-independent folds, so this pooled picture
    is descriptive; the paired tests of `results.compare_study` are the inference.
    """
    rows = study[(study["protocol"] == protocol) & study["ua"].notna()]
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    models = list(dict.fromkeys(sorted(study.loc[study["protocol"] == protocol, "model"])))
    if baselines is None:
        baselines = [m for m in models if m not in (*searched, random, *controls)]
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4.0))
    else:
        fig = ax.figure
    rand = rows.loc[rows["model"] == random, "ua"].to_numpy(float)
    missing = []
    if rand.size:
        bins = min(max(int(np.sqrt(rand.size)) + 2, 5), 30)
        _, _, patches = ax.hist(rand, bins=bins, color="#c7c7c7", edgecolor="#7f7f7f",
                                label=f"random architectures (n={rand.size})")
        for patch in patches:
            patch.set_gid("random:hist")
        ax.axvline(rand.mean(), color="#7f7f7f", ls=":", lw=1.5, gid="mean:random",
                   label=f"random mean {rand.mean():.1f}")
    else:
        missing.append(random)
    top = ax.get_ylim()[1] if rand.size else 1.0
    for i, model in enumerate(searched):
        ua = rows.loc[rows["model"] == model, "ua"].to_numpy(float)
        if not ua.size:
            missing.append(model)
            continue
        colour = "#d62728" if i == 0 else f"C{i + 3}"
        mean, std = float(ua.mean()), float(ua.std())
        ax.axvspan(mean - std, mean + std, color=colour, alpha=0.12, gid=f"band:{model}")
        ax.plot(ua, np.full(ua.size, 0.04 * top * (i + 1)), "o", color=colour, ms=5, alpha=0.8,
                gid=f"runs:{model}", label=f"{model} runs (n={ua.size})")
        beats = f", above {np.mean(rand < mean):.0%} of random" if rand.size else ""
        ax.axvline(mean, color=colour, lw=2, gid=f"mean:{model}", label=f"{model} mean {mean:.1f}{beats}")
    for j, model in enumerate(controls):
        ua = rows.loc[rows["model"] == model, "ua"].to_numpy(float)
        if not ua.size:
            missing.append(model)
            continue
        ax.axvline(ua.mean(), color=f"C{j}", ls="-.", lw=1.5, gid=f"mean:{model}",
                   label=f"{model} mean {ua.mean():.1f}")
    for k, model in enumerate(baselines):
        ua = rows.loc[rows["model"] == model, "ua"].to_numpy(float)
        if not ua.size:
            missing.append(model)
            continue
        ax.axvline(ua.mean(), color=op_colour(model) if op_colour(model) != "#000000" else f"C{k + 4}",
                   ls="--", lw=1.3, gid=f"mean:{model}", label=f"{model} mean {ua.mean():.1f}")
    if missing:
        ax.text(0.01, 0.98, "no run yet: " + ", ".join(missing), transform=ax.transAxes, fontsize=7,
                color="#aa0000", va="top")
    ax.set(xlabel="test UA [%]", ylabel="random architectures (count)",
           title=title if title is not None else f"random architectures vs search, protocol {protocol}")
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_per_fold(study: pd.DataFrame, protocol: str, models: Sequence[str] | None = None,
                  ax: plt.Axes | None = None, path: str | Path | None = None, title: str | None = None) -> plt.Figure:
    """Each model's test UA (%) per (fold, seed) cell under one `protocol`: a box over its
    cells, and one point per cell coloured by fold, so that a model's spread is seen to
    come from folds (the test speakers) more than from seeds.

    `study` is `results.collect_study`'s frame; a cell's value is the mean over its runs (the
    random architectures of a cell averaged first, as the study's tables do). `models` sets
    the order (default: as they first appear, emoDARTS first). Drawn with seaborn's
    `boxplot` and `stripplot` (the `notebooks` extra installs seaborn); models without a
    finished run are listed as "no run yet".
    """
    import seaborn as sns

    rows = study[(study["protocol"] == protocol) & study["ua"].notna() & study["fold"].notna()]
    cells = rows.groupby(["model", "fold", "seed"], dropna=False)["ua"].mean().reset_index()
    cells["fold"] = [f"fold {int(f)}" for f in cells["fold"]]
    seen = list(dict.fromkeys(study.loc[study["protocol"] == protocol, "model"]))
    order = list(models) if models is not None else sorted(seen, key=lambda m: m != "emodarts")
    drawn = [m for m in order if m in set(cells["model"])]
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(drawn) + 2.5), 4.2))
    else:
        fig = ax.figure
    if drawn:
        folds = sorted(set(cells["fold"]), key=lambda f: int(f.split()[1]))
        sns.boxplot(data=cells, x="model", y="ua", order=drawn, color="#f0f0f0", showfliers=False, width=0.6, ax=ax)
        sns.stripplot(data=cells, x="model", y="ua", order=drawn, hue="fold", hue_order=folds, palette="deep",
                      dodge=False, jitter=0.18, size=5, alpha=0.85, ax=ax)
        ax.legend(fontsize=7, title="fold", title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    missing = [m for m in order if m not in drawn]
    if missing:
        ax.text(0.01, 0.98, "no run yet: " + ", ".join(missing), transform=ax.transAxes, fontsize=7,
                color="#aa0000", va="top")
    ax.set(xlabel="", ylabel="test UA [%] per (fold, seed) cell",
           title=title if title is not None else f"UA per fold and seed, protocol {protocol}")
    ax.tick_params(axis="x", labelrotation=30)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
