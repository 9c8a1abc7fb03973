"""The cell-drawing engine: a found cell as a labelled DAG, drawn like the paper's Figure 6.

The two cell inputs c_{k-2} and c_{k-1} are on the left, the intermediate nodes 0..n-1 in
the middle, and the output c_{k} (their concatenation; SeqNN cells then map it back to
the sequence width) on the right; each kept edge is labelled with its operation and
coloured by its family (pooling, convolution, identity, LSTM, RNN, attention). Labels
are placed where they overlap neither a node nor another label.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .style import CELL_TITLES, op_colour, save_figure


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
