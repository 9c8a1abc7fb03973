"""The macro structure shared by the search supernet and the derived network.

stem -> `cnn_cells` cells (reductions at C/3 and 2C/3, channels doubling there) -> the map
[B, C, F, T] read as [B, T, C*F] -> Linear + LayerNorm to seq_dim -> `seq_cells` SeqNN
cells -> dropout -> Linear to the classes (CNN-only when seq_cells == 0). Only the cells
differ between the two networks, so each passes its own cell factories.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from emodarts_core.config import NetworkConfig, reduction_positions

#: (C_pp, C_p, C, reduction, reduction_prev) -> (cell, number of nodes its output concatenates)
MakeCell = Callable[[int, int, int, bool, bool], tuple[nn.Module, int]]


def build_macro(net: nn.Module, cfg: NetworkConfig, make_cell: MakeCell, make_seq_cell: Callable[[], nn.Module]) -> None:
    """Give `net` its `stem`, `cells`, `adapter`, `seq_cells`, `dropout` and `classifier`."""
    C = cfg.init_channels
    C_stem = cfg.stem_multiplier * C
    net.stem = nn.Sequential(
        nn.Conv2d(cfg.in_channels, C_stem, 3, stride=cfg.stem_stride, padding=1, bias=False),
        nn.BatchNorm2d(C_stem),
    )
    reductions = set(reduction_positions(cfg.cnn_cells))
    C_pp, C_p, C_cur = C_stem, C_stem, C
    reduction_prev = False
    net.cells = nn.ModuleList()
    for i in range(cfg.cnn_cells):
        reduction = i in reductions
        if reduction:
            C_cur *= 2
        cell, multiplier = make_cell(C_pp, C_p, C_cur, reduction, reduction_prev)
        net.cells.append(cell)
        reduction_prev = reduction
        C_pp, C_p = C_p, multiplier * C_cur

    F_out = cfg.input_size[0] // (cfg.stem_stride * 2 ** len(reductions))
    if cfg.seq_cells:
        net.adapter = nn.Sequential(nn.Linear(C_p * F_out, cfg.seq_dim), nn.LayerNorm(cfg.seq_dim))
        net.seq_cells = nn.ModuleList(make_seq_cell() for _ in range(cfg.seq_cells))
        head_in = cfg.seq_dim
    else:
        net.adapter, net.seq_cells = None, nn.ModuleList()
        head_in = C_p
    net.dropout = nn.Dropout(cfg.dropout)
    net.classifier = nn.Linear(head_in, cfg.n_classes)
