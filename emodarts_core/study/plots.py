"""Figures for the notebooks: features, training curves, alphas, found cells, results.

Every function returns a matplotlib `Figure` and, when `path` is given, also writes it
there (PNG, parent folders created), so a notebook can show a plot and leave the same
file in its run directory. Nothing here needs a display, graphviz or a GPU.

Cells are drawn like the paper's Figure 6: the two cell inputs c_{k-2} and c_{k-1} on
the left, the intermediate nodes 0..n-1, and the output c_{k} (their concatenation; SeqNN cells then
map it back to the sequence width) on the right; each kept edge is labelled with its operation and coloured by
its family (pooling, convolution, identity, LSTM, RNN, attention).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

CELL_TITLES = {"normal": "CNN normal cell", "reduce": "CNN reduction cell", "seq": "SeqNN cell"}

# Checked in order: the first family whose key occurs in the op name gives the colour.
_FAMILY_COLOURS = (
    ("pool", "#1f77b4"), ("sep_conv", "#d62728"), ("dil_conv", "#ff7f0e"), ("conv_7x1", "#8c564b"),
    ("skip", "#7f7f7f"), ("lstm_att", "#9467bd"), ("lstm", "#2ca02c"), ("rnn_att", "#e377c2"),
    ("rnn", "#17becf"), ("cnn", "#bcbd22"),
)


def op_colour(op: str) -> str:
    """A colour for an operation (or model) name, shared by all plots: one per op family."""
    for key, colour in _FAMILY_COLOURS:
        if key in op:
            return colour
    return "#000000"


def save_figure(fig: plt.Figure, path: str | Path | None) -> plt.Figure:
    """Write `fig` to `path` (PNG unless the suffix says otherwise) when a path is given."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


# --------------------------------------------------------------------------- features

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


# --------------------------------------------------------------------------- training

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


# --------------------------------------------------------------------------- alphas

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


# --------------------------------------------------------------------------- genotypes

def _field(genotype, name):
    return genotype[name] if isinstance(genotype, Mapping) else getattr(genotype, name)


def cell_edges(genotype, cell: str) -> tuple[list[tuple[str, int, int]], int]:
    """The kept edges of one cell as `(op, source, target)` plus the number of nodes.

    Sources 0 and 1 are the cell inputs c_{k-2} and c_{k-1}, source s >= 2 is node s-2;
    targets are intermediate node indices. Edges are grouped evenly by node, in order,
    as `genotypes.parse` writes them.
    """
    edges = [(str(op), int(src)) for op, src in _field(genotype, cell)]
    concat = list(_field(genotype, f"{cell}_concat"))
    steps = max(len(concat), 1)
    if concat:
        steps = max(max(concat) - 1, steps)
    per_node = max(len(edges) // steps, 1)
    return [(op, src, i // per_node) for i, (op, src) in enumerate(edges)], steps


def _node_positions(steps: int) -> dict[str, tuple[float, float]]:
    pos = {"c_{k-2}": (0.0, 1.2), "c_{k-1}": (0.0, -1.2)}
    for i in range(steps):
        pos[str(i)] = (2.0 * (i + 1), 0.55 if i % 2 else -0.55)
    pos["c_{k}"] = (2.0 * (steps + 1), 0.0)
    return pos


def _source_name(src: int) -> str:
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(src, str(src - 2))


def _curved_arrow(ax: plt.Axes, start, end, bow: float, colour: str, style: str) -> np.ndarray:
    """A quadratic Bezier arrow in data coordinates bowed `bow` upward; returns its points."""
    (x1, y1), (x2, y2) = start, end
    control = np.array([(x1 + x2) / 2, (y1 + y2) / 2 + 2 * bow])
    t = np.linspace(0.0, 1.0, 200)[:, None]
    curve = (1 - t) ** 2 * np.array([x1, y1]) + 2 * (1 - t) * t * control + t ** 2 * np.array([x2, y2])
    gap = 0.28  # keep clear of the node boxes at both ends
    curve = curve[(np.hypot(*(curve - [x1, y1]).T) > gap) & (np.hypot(*(curve - [x2, y2]).T) > gap)]
    ax.plot(curve[:, 0], curve[:, 1], color=colour, ls=style, lw=1.4)
    ax.annotate("", xy=curve[-1], xytext=curve[-3], arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.4))
    return curve


#: Where along its edge a label may sit (fractions of the curve), tried in this order.
_LABEL_SPOTS = (0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78, 0.15, 0.85)


def _overlap_area(box, others) -> float:
    return sum(max(0.0, min(box.x1, o.x1) - max(box.x0, o.x0)) * max(0.0, min(box.y1, o.y1) - max(box.y0, o.y0))
               for o in others)


def _place_label(ax: plt.Axes, curve: np.ndarray, text: str, colour: str, placed: list):
    """Put an edge's op name on its curve where its box overlaps nothing already
    `placed` (node boxes, other labels: renderer extents plus a small margin): the middle first, then other spots
    along the curve, then the same spots nudged up or down; failing all, the spot with the
    least overlap. Returns the text artist."""
    renderer = ax.figure.canvas.get_renderer()
    label = ax.text(0, 0, text, fontsize=7, ha="center", va="center", color=colour, zorder=4,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
    others = [other.get_window_extent(renderer).padded(2) for other in placed]
    best = None
    for nudge in (0.0, 0.3, -0.3, 0.6, -0.6):
        for spot in _LABEL_SPOTS:
            xy = curve[int(spot * (len(curve) - 1))] + np.array([0.0, nudge])
            label.set_position(xy)
            area = _overlap_area(label.get_window_extent(renderer).padded(2), others)
            if best is None or area < best[0]:
                best = (area, xy)
            if area == 0.0:
                break
        if best[0] == 0.0:
            break
    label.set_position(best[1])
    placed.append(label)
    return label


def draw_cell(genotype, cell: str, ax: plt.Axes | None = None, title: str | None = None) -> plt.Axes:
    """Draw one found cell (`normal`, `reduce` or `seq`) of a genotype as a labelled DAG."""
    edges, steps = cell_edges(genotype, cell)
    concat = [int(c) for c in _field(genotype, f"{cell}_concat")]
    if ax is None:
        _, ax = plt.subplots(figsize=(2.0 * (steps + 2), 3.4))
    pos = _node_positions(steps)
    ax.set_xlim(-0.8, 2.0 * (steps + 1) + 0.8)  # fixed first: label placement measures in display space
    ax.set_ylim(-2.6, 2.6)
    labels: list = []  # what an edge label must not cover: the nodes, then the labels placed so far
    for name, (x, y) in pos.items():
        is_io = name.startswith("c_")
        labels.append(ax.text(x, y, f"${name}$" if is_io else name, ha="center", va="center", fontsize=9, zorder=3,
                              bbox=dict(boxstyle="round,pad=0.4", fc="#cfe8cf" if is_io else "#fff2b3",
                                        ec="#555555")))
    for op, src, dst in edges:
        (x1, y1), (x2, y2) = pos[_source_name(src)], pos[str(dst)]
        # Long edges bow away from the centre line so they do not run through the nodes between.
        skipped = max((x2 - x1) / 2.0 - 1, 0)
        bow = np.sign(y1 + y2 or 1.0) * min(0.15 + 0.35 * skipped, 1.2)
        curve = _curved_arrow(ax, (x1, y1), (x2, y2), bow, op_colour(op), "-")
        _place_label(ax, curve, op, op_colour(op), labels)
    for node in concat:
        _curved_arrow(ax, pos[_source_name(node)], pos["c_{k}"], 0.0, "#bbbbbb", ":")
    ax.axis("off")
    ax.set_title(title if title is not None else CELL_TITLES.get(cell, cell))
    return ax


def plot_genotype(genotype, path: str | Path | None = None, title: str = "") -> plt.Figure:
    """Normal, reduction and SeqNN cells one above the other (paper Figure 6); empty cells skipped."""
    cells = [c for c in ("normal", "reduce", "seq") if len(_field(genotype, c))]
    width = 2.0 * (max(cell_edges(genotype, c)[1] for c in cells) + 2)
    fig, axes = plt.subplots(len(cells), 1, figsize=(width, 3.2 * len(cells)), squeeze=False)
    for ax, cell in zip(axes[:, 0], cells):
        draw_cell(genotype, cell, ax=ax)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- results

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


__all__ = ["CELL_TITLES", "op_colour", "save_figure", "plot_utterance", "plot_training_curves",
           "plot_alpha_heatmap", "plot_alpha_trajectories", "cell_edges", "draw_cell", "plot_genotype",
           "plot_confusion", "plot_ua_scatter", "plot_ua_bars", "plot_random_distribution"]
