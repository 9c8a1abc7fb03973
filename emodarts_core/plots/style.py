"""What every figure shares: a colour per operation family, the cells' titles, and
`save_figure`, which writes a figure where a notebook asks (PNG, parent folders created)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from data_prep.store import write_atomic

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
    """Write `fig` to `path` (PNG unless the suffix says otherwise) when a path is given.

    The figure goes through the suite's one safe writer (`data_prep.store.write_atomic`):
    a temporary file renamed over `path`, so a reader never sees half a figure, and a
    symbolic link planted at `path` in a shared results folder is replaced, never written
    through to the file it points at.
    """
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = path.suffix[1:].lower() or "png"
        write_atomic(path, lambda fh: fig.savefig(fh, format=fmt, dpi=120, bbox_inches="tight"), binary=True,
                     suffix=path.suffix)
    return fig
