"""The joint CNN -> SeqNN search supernet (paper Figure 2).

stem -> `cnn_cells` DARTS cells (reductions at C/3 and 2C/3, channels doubling) -> the
feature map [B, C, F, T] read as a sequence [B, T, C*F] -> Linear + LayerNorm to seq_dim
-> `seq_cells` SeqNN cells, each reading the two previous outputs -> mean over time ->
dropout -> Linear to the classes.  With `seq_cells == 0` it is the CNN-only network of
paper Table 3: global average pooling -> Linear.

Architecture weights (alphas) are parameters named `alpha_normal`, `alpha_reduce` and
`alpha_seq`, shared by all cells of a kind and kept apart from the network weights:
`weights()` yields every other parameter.  `alpha_seq` exists only when `seq_cells > 0`,
so `alphas()` then has two entries.  Nothing here picks a device.

With `partial_channels` K > 1 (PC-DARTS, a different algorithm from exact DARTS) each CNN
edge mixes only 1/K of its channels, and two more architecture parameters `beta_normal`
and `beta_reduce` (one per edge, softmax over each node's incoming edges) weight the edges
in each node's sum and in genotype parsing (edge normalisation).  They are returned by
`alphas()` after the alphas; `alpha_probs()` keeps only the op softmaxes.  K = 1 builds
exactly the exact-DARTS supernet (same parameters, same outputs).

This is the network in plain PyTorch (its cells: `space/cells.py`, paper eq. 2 term by
term). `emodarts_core.fast.networks.FastSearchNetwork` is the same network in its fast form, with
the same parameters under the same names; `emodarts_core.networks.search_network` builds
the form that the fast-path switch chooses.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.config import NetworkConfig
from emodarts_core.space.cells import MixedOp, SearchCell, SeqMixedOp, SeqSearchCell, n_edges
from emodarts_core.space.genotypes import Genotype, parse
from emodarts_core.space.macro import build_macro
from emodarts_core.space.search_space import CNN_PRIMITIVES, seq_primitives


class SearchNetwork(nn.Module):
    """The DARTS supernet over the emoDARTS search space for `net_cfg`.

    `net_cfg` must be valid: `preset` and `from_dict` return validated configurations,
    and a run validates its own once, at its boundary (`training.run.validated`);
    `NetworkConfig.validate()` checks one built by hand.
    """

    def __init__(self, net_cfg: NetworkConfig):
        super().__init__()
        cfg = net_cfg
        self.cfg = cfg
        self.seq_prims = seq_primitives(cfg.scope)

        build_macro(
            self, cfg,
            lambda C_pp, C_p, C, reduction, reduction_prev: (
                SearchCell(cfg.nodes, C_pp, C_p, C, reduction, reduction_prev, CNN_PRIMITIVES, cfg.partial_channels),
                cfg.nodes),
            lambda: SeqSearchCell(cfg.seq_nodes, cfg.seq_dim, self.seq_prims, cfg.seq_attention))

        k = len(CNN_PRIMITIVES)
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(n_edges(cfg.nodes), k))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(n_edges(cfg.nodes), k))
        if cfg.seq_cells:
            self.alpha_seq = nn.Parameter(1e-3 * torch.randn(n_edges(cfg.seq_nodes), len(self.seq_prims)))
        if cfg.partial_channels > 1:  # after the alphas: K = 1 draws the same random numbers
            self.beta_normal = nn.Parameter(1e-3 * torch.randn(n_edges(cfg.nodes)))
            self.beta_reduce = nn.Parameter(1e-3 * torch.randn(n_edges(cfg.nodes)))

    # --- architecture parameters -------------------------------------------------------
    def alphas(self) -> list[nn.Parameter]:
        """[alpha_normal, alpha_reduce, alpha_seq] (no alpha_seq when seq_cells == 0),
        then [beta_normal, beta_reduce] with partial channels."""
        return [p for n, p in self.named_alphas()]

    def named_alphas(self):
        """(name, parameter) of every architecture parameter (alphas, and betas with PC-DARTS)."""
        return [(n, p) for n, p in self.named_parameters() if n.startswith(("alpha_", "beta_"))]

    def named_weights(self):
        """(name, parameter) of every network weight, architecture parameters excluded."""
        return [(n, p) for n, p in self.named_parameters() if not n.startswith(("alpha_", "beta_"))]

    def weights(self):
        """Iterator over every network weight, alphas excluded."""
        return (p for _, p in self.named_weights())

    def alpha_probs(self) -> dict:
        """Softmax of each alpha as numpy arrays: keys `normal`, `reduce` (and `seq`)."""
        return {n[len("alpha_"):]: F.softmax(p.detach(), dim=-1).cpu().numpy()
                for n, p in self.named_alphas() if n.startswith("alpha_")}

    def edge_weights(self, kind: str) -> torch.Tensor | None:
        """PC-DARTS edge normalisation of `kind` ("normal"/"reduce"): softmax of beta over each
        node's incoming edges, one weight per edge; None for exact DARTS (K = 1)."""
        if self.cfg.partial_channels == 1:
            return None
        beta = getattr(self, f"beta_{kind}")
        parts, start = [], 0
        for i in range(self.cfg.nodes):
            parts.append(F.softmax(beta[start:start + 2 + i], dim=-1))
            start += 2 + i
        return torch.cat(parts)

    def edge_weighted_probs(self, kind: str, probs):
        """`probs` (a cell type's α softmax, one row per edge) as the genotype parse reads
        them: each row times its edge's weight with PC-DARTS edge normalisation, else as is."""
        edge = self.edge_weights(kind)
        return probs if edge is None else probs * edge.detach().cpu().numpy()[:, None]

    def genotype(self) -> Genotype:
        """The discrete architecture the current alphas select (top-2 edges per node, no `none`)."""
        probs = self.alpha_probs()
        normal, normal_concat = parse(self.edge_weighted_probs("normal", probs["normal"]), CNN_PRIMITIVES, self.cfg.nodes)
        reduce, reduce_concat = parse(self.edge_weighted_probs("reduce", probs["reduce"]), CNN_PRIMITIVES, self.cfg.nodes)
        seq, seq_concat = parse(probs["seq"], self.seq_prims, self.cfg.seq_nodes) if "seq" in probs else ([], [])
        return Genotype(normal, normal_concat, reduce, reduce_concat, seq, seq_concat)

    # --- forward -----------------------------------------------------------------------
    def mixed_ops(self) -> dict[str, nn.Module]:
        """Every edge's mixed op (CNN and SeqNN cells) by module name, e.g. "cells.0.edges.3"."""
        return {name: m for name, m in self.named_modules() if isinstance(m, (MixedOp, SeqMixedOp))}

    def set_checkpointing(self, on: bool | Iterable[str]) -> None:
        """Recompute mixed ops' activations in backward instead of storing them.

        `on`: True for every edge, False for none, or the names of the edges to checkpoint
        (`mixed_ops()`; `darts.memory.plan_checkpointing` chooses the cheapest set that
        fits a memory budget). A checkpointed edge keeps only its inputs and output, and
        runs its forward twice; outputs and gradients are unchanged. With every edge on,
        the peak falls to about one edge's activations (the bulk of a cell's memory is
        inside its mixed ops) for roughly one more forward pass of time. Both the CNN and
        the SeqNN cells' edges can be checkpointed: the recurrent candidates' saved states
        are about half of what the step keeps once the CNN edges are checkpointed.
        """
        edges = self.mixed_ops()
        if isinstance(on, bool):
            chosen = set(edges) if on else set()
        else:
            chosen = set(on)
            unknown = sorted(chosen - set(edges))
            if unknown:
                raise ValueError(f"no mixed op named {', '.join(unknown)} in this network; "
                                 f"its edges are named like {next(iter(edges), 'cells.0.edges.0')!r}")
        for name, edge in edges.items():
            edge.checkpoint = name in chosen

    def checkpointed_edges(self) -> tuple[str, ...]:
        """Names of the mixed ops that are checkpointed, in module order."""
        return tuple(name for name, m in self.mixed_ops().items() if m.checkpoint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_classes] of spectrogram-like inputs [B, in_channels, F, T]."""
        w_normal = F.softmax(self.alpha_normal, dim=-1)
        w_reduce = F.softmax(self.alpha_reduce, dim=-1)
        e_normal, e_reduce = self.edge_weights("normal"), self.edge_weights("reduce")
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            if cell.reduction:
                s0, s1 = s1, cell(s0, s1, w_reduce, e_reduce)
            else:
                s0, s1 = s1, cell(s0, s1, w_normal, e_normal)
        if not self.seq_cells:
            return self.classifier(self.dropout(s1.mean(dim=(2, 3))))
        B, C, Fq, T = s1.shape
        y = self.adapter(s1.permute(0, 3, 1, 2).reshape(B, T, C * Fq))
        w_seq = F.softmax(self.alpha_seq, dim=-1)
        y0 = y1 = y
        for cell in self.seq_cells:
            y0, y1 = y1, cell(y0, y1, w_seq)
        return self.classifier(self.dropout(y1.mean(dim=1)))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(x), y)


__all__ = ["SearchNetwork"]
