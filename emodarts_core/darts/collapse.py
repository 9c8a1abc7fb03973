"""Remedies for the skip-connection collapse of DARTS (paper section 6.2), as search options.

The paper reports that its SeqNN search collapsed to all `skip_connect` with more than 3
SeqNN cells or nodes. `SearchConfig.collapse_remedy` picks one of:

- ``"none"`` (default): the paper's plain DARTS.
- ``"darts_minus"``: DARTS- (Chu et al., "DARTS-: Robustly Stepping out of Performance
  Collapse Without Indicators", ICLR 2021). Every edge whose input and output have the
  same shape gets an auxiliary skip connection outside the softmax,
  ``o(x) = beta * x + sum_o softmax(alpha)_o * o(x)``, with ``beta`` decaying linearly over
  the search from ``darts_minus_beta`` (1.0 in the paper) to 0 at the last epoch. The
  auxiliary path gives the residual gradient that otherwise only `skip_connect` provides,
  so `skip_connect`'s alpha no longer wins by default. Here it covers the stride-1 edges of
  the CNN cells (as in the paper's normal cells; stride-2 edges have no identity) and every
  edge of the SeqNN cells, so each SeqNN node gets ``beta * (sum of its input states)``.
  The genotype is parsed from the alphas as usual; the derived network has no auxiliary skip.
- ``"skip_cap"``: the P-DARTS cap (Chen et al., "Progressive Differentiable Architecture
  Search", ICCV 2019) with the DARTS+ early stop (Liang et al., "DARTS+: Improved
  Differentiable Architecture Search with Early Stopping", 2019). Parsing keeps at most
  ``skip_cap`` `skip_connect` edges in the normal and the SeqNN cell: while there are more,
  the chosen `skip_connect` with the smallest weight has its weight set to 0 and the cell
  is parsed again (so that edge takes its next-best op, or another edge wins). With
  ``skip_stop`` set, the search stops after the first epoch whose uncapped normal or SeqNN
  cell holds ``skip_stop`` or more `skip_connect` edges (DARTS+ uses 2 for the normal cell).
- ``"beta_decay"``: the Beta-Decay regularisation of β-DARTS (Ye et al., "β-DARTS:
  Beta-Decay Regularization for Differentiable Architecture Search", CVPR 2022). The
  alpha loss gains ``lambda_t * sum_cells mean_edges logsumexp(alpha_edge)``: the smooth
  maximum of each edge's alphas is pushed down, which keeps the softmax from saturating
  on the op whose gradient is largest early (`skip_connect`) and decays the alphas the way
  weight decay decays weights. ``lambda_t`` rises linearly from 0 at the first epoch to
  ``beta_decay_weight`` at the last.

The state of the remedy (beta, or the uncapped skip counts, the demoted edges and the stop)
is recorded per epoch in metrics.jsonl and alpha_history.json under ``"remedy"``.
"""

from __future__ import annotations

import numpy as np
import torch

from emodarts_core.space.cells import MixedOp, SeqMixedOp
from emodarts_core.config import COLLAPSE_REMEDIES as REMEDIES  # one list, validated by SearchConfig
from emodarts_core.space.genotypes import Edge, Genotype, parse

CAPPED_CELLS = ("normal", "seq")  # P-DARTS caps the normal cell; the SeqNN cell is where ours collapses


# -- β-DARTS ------------------------------------------------------------------------------
def beta_decay_loss(alphas) -> torch.Tensor:
    """The Beta-Decay regulariser: the sum over the alpha tensors (one per cell type) of the
    mean over their edges (rows) of logsumexp over the ops."""
    return sum(torch.logsumexp(a, dim=-1).mean() for a in alphas)


def beta_decay_weight(epoch: int, epochs: int, final: float) -> float:
    """lambda for 0-based `epoch` of `epochs`: 0 at the first epoch, linearly up to `final` at the last."""
    if epochs <= 1:
        return float(final)
    return float(final) * min(1.0, epoch / (epochs - 1))


# -- DARTS- -------------------------------------------------------------------------------
def darts_minus_beta(epoch: int, epochs: int, beta0: float = 1.0) -> float:
    """beta for 0-based `epoch` of `epochs`: beta0 at the first epoch, linearly down to 0 at the last."""
    if epochs <= 1:
        return float(beta0)
    return float(beta0) * max(0.0, 1.0 - epoch / (epochs - 1))


class AuxiliarySkip:
    """DARTS-'s auxiliary skip on every identity-compatible mixed op of a search network.

    Forward hooks add ``beta * x`` to the output of each `MixedOp` / `SeqMixedOp` whose
    output has the shape of its input `x`. With partial channels the mixed op reads the
    edge's channel sample, so the skip joins the sampled channels (the others already
    bypass the ops unchanged). The hooks also run inside
    `torch.func.functional_call` (the architect) and in checkpointed recomputation, so
    every forward pass of the search sees the same beta. With ``beta == 0`` the hooks
    return nothing and the network computes exactly what it computes without them.
    """

    def __init__(self, model: torch.nn.Module, beta: float = 1.0):
        self.beta = float(beta)
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules()
                        if isinstance(m, (MixedOp, SeqMixedOp))]

    def _hook(self, module, inputs, output):
        x = inputs[0]
        if self.beta == 0.0 or output.shape != x.shape:
            return None
        return output + self.beta * x

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


# -- P-DARTS cap ----------------------------------------------------------------------------
def count_skips(edges: list[Edge]) -> int:
    return sum(op == "skip_connect" for op, _ in edges)


def edge_rows(nodes: int) -> list[tuple[int, int]]:
    """(node, input) of each alpha row of a cell with `nodes` nodes, in row order."""
    return [(node, j) for node in range(nodes) for j in range(2 + node)]


def capped_parse(probs, primitives: tuple[str, ...], nodes: int, cap: int
                 ) -> tuple[list[Edge], list[int], list[dict]]:
    """Parse a cell keeping at most `cap` skip_connect edges (P-DARTS).

    Returns (edges, concat, demoted): each entry of `demoted` names a chosen skip_connect
    (node, input index, its weight) whose weight was set to 0 before parsing again.
    """
    probs = np.array(probs, dtype=np.float64)
    if "skip_connect" not in primitives:
        edges, concat = parse(probs, primitives, nodes)
        return edges, concat, []
    skip = primitives.index("skip_connect")
    rows = edge_rows(nodes)
    row_of = {r: i for i, r in enumerate(rows)}
    demoted = []
    while True:
        edges, concat = parse(probs, primitives, nodes)
        chosen = [row_of[(k // 2, src)] for k, (op, src) in enumerate(edges) if op == "skip_connect"]
        if len(chosen) <= cap:
            return edges, concat, demoted
        weakest = min(chosen, key=lambda i: (probs[i, skip], i))
        demoted.append({"node": rows[weakest][0], "input": rows[weakest][1],
                        "weight": float(probs[weakest, skip])})
        probs[weakest, skip] = 0.0


def capped_genotype(probs: dict, primitives: dict, net_cfg, cap: int) -> tuple[Genotype, dict]:
    """The genotype with the normal and SeqNN cells capped at `cap` skip_connects.

    Also returns the remedy's record: uncapped skip counts and demoted edges per cell.
    """
    cells, uncapped, demoted = {}, {}, {}
    for kind in ("normal", "reduce", "seq"):
        if kind not in probs:
            cells[kind], cells[kind + "_concat"] = [], []
            continue
        nodes = net_cfg.seq_nodes if kind == "seq" else net_cfg.nodes
        plain, _ = parse(probs[kind], primitives[kind], nodes)
        if kind in CAPPED_CELLS:
            uncapped[kind] = count_skips(plain)
            cells[kind], cells[kind + "_concat"], demoted[kind] = capped_parse(
                probs[kind], primitives[kind], nodes, cap)
        else:
            cells[kind], cells[kind + "_concat"] = parse(probs[kind], primitives[kind], nodes)
    return Genotype(**cells), {"uncapped_skips": uncapped, "demoted": demoted}


__all__ = ["REMEDIES", "CAPPED_CELLS", "darts_minus_beta", "AuxiliarySkip", "count_skips", "capped_parse",
           "capped_genotype"]


# --- a configuration that collapses (shown in notebook 03 and tools/collapse_demo.py) -----

#: The smoke preset at a 16x16 input with a deep SeqNN part (3 cells of 4 nodes: the paper's
#: "more than 3 cells or nodes") in the rnn_only scope.
DEMO_NETWORK = dict(input_size=(16, 16), seq_cells=3, seq_nodes=4, scope="rnn_only")
#: 10 epochs with a high alpha learning rate: plain DARTS ends with every SeqNN edge a skip.
DEMO_SEARCH = dict(epochs=10, batch_size=4, alpha_lr=0.1, device="cpu", seed=0, progress=False)


def demo_fold():
    """A tiny learnable fold (16 search utterances) on which `DEMO_*` collapses without a remedy."""
    from data_prep.toy import toy_fold

    return toy_fold(size=DEMO_NETWORK["input_size"])
