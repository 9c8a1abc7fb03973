"""One-hot sub-networks of a trained supernet, scored the way the one-shot literature
scores them: the machinery that ranking (`emodarts_core.study.ranking`) and selection by
perturbation (`emodarts_core.darts.perturbation`) share.

**Choosing inside the supernet.** The supernet weighs each edge's candidates by
softmax(α) (DARTS eq. 2). A choice of ops is applied by replacing α with logits that
are 0 for the chosen op and -inf for every other, so that the softmax is exactly one-hot:
the supernet then computes the sub-network with the supernet's own weights (weight
sharing; Bender et al. 2018, Sciuto et al. ICLR 2020). A node's inputs are chosen the same
way: an edge that is not one of the node's two inputs gets the one-hot of `none`, whose
output is zero, so it adds nothing to the node. No module of the network is changed;
`alphas_set` puts the α back however the block ends. PC-DARTS supernets (partial channels)
weigh edges by β as well and are refused.

**BatchNorm.** The search's BatchNorms are affine-free and keep running statistics of
the *mixed* edges; a one-hot sub-network sees other activations, so three modes are
offered (`BN_MODES`), and every score says which it used:

- ``"running"``: eval mode with the supernet's running statistics (what a plain
  `model.eval()` does; the statistics belong to the mixture, not to the sub-network);
- ``"batch"``: every BatchNorm normalises each evaluation batch by its own statistics,
  as the one-shot literature evaluates (darts-pt's `infer(..., _eval=False)`); the
  running statistics are left as they were, and a sample's output then depends on its
  batch, so scores depend on the evaluation batch size;
- ``"recalibrated"``: the standard remedy (Guo et al. 2020, "Single Path One-Shot";
  Bender et al. 2018): the running statistics are reset and re-estimated for the
  sub-network as a cumulative average over `recal_batches` training batches (no weight
  changes), then evaluation runs in eval mode. The supernet's own statistics are restored
  afterwards.

Dropout is off in every mode. Scoring reads only the data it is given: the callers pass
the search split's halves (`search_halves`), which hold training speakers only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
import torch.nn as nn

from emodarts_core.config import NetworkConfig, SearchConfig
from emodarts_core.networks import search_network
from emodarts_core.space.genotypes import Genotype, check_compatible, validate
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.space.search_space import CNN_PRIMITIVES, seq_primitives
from emodarts_core.training.data import make_loader, stratified_halves, to_dataset, to_device
from emodarts_core.training.device import Precision
from emodarts_core.training.loop import evaluate_as_set
from emodarts_core.training.normalise import fit_normaliser, normalised

BN_MODES = ("running", "batch", "recalibrated")
#: The α of each cell kind, as `SearchNetwork` names them.
ALPHA_NAMES = {"normal": "alpha_normal", "reduce": "alpha_reduce", "seq": "alpha_seq"}


def cell_primitives(model: SearchNetwork) -> dict[str, tuple[str, ...]]:
    """The op names of each cell kind's α columns."""
    prims = {"normal": CNN_PRIMITIVES, "reduce": CNN_PRIMITIVES}
    if model.cfg.seq_cells:
        prims["seq"] = seq_primitives(model.cfg.scope)
    return prims


def node_rows(nodes: int) -> list[range]:
    """The α rows of each node's incoming edges: node j reads states 0 .. j + 1."""
    out, start = [], 0
    for j in range(nodes):
        out.append(range(start, start + 2 + j))
        start += 2 + j
    return out


def one_hot_logits(model: SearchNetwork, genotype: Genotype) -> dict[str, torch.Tensor]:
    """α logits (by α name) under which the supernet computes `genotype`'s sub-network:
    0 at each kept edge's op and -inf elsewhere; `none` alone on the edges no node keeps."""
    if model.cfg.partial_channels > 1:
        raise ValueError("one-hot sub-networks of a PC-DARTS supernet (partial_channels > 1) would still be "
                         "weighed by β; score an exact-DARTS supernet (partial_channels = 1)")
    genotype = validate(genotype)
    check_compatible(genotype, model.cfg)
    prims = cell_primitives(model)
    out = {}
    for kind, name in ALPHA_NAMES.items():
        if kind not in prims:
            continue
        alpha = getattr(model, name)
        logits = torch.full_like(alpha, float("-inf"), device="cpu").detach()
        logits[:, prims[kind].index("none")] = 0.0
        nodes = model.cfg.seq_nodes if kind == "seq" else model.cfg.nodes
        rows = node_rows(nodes)
        for n, (op, src) in enumerate(getattr(genotype, kind)):
            row = rows[n // 2][src]
            logits[row] = float("-inf")
            logits[row, prims[kind].index(op)] = 0.0
        out[name] = logits
    return out


@contextlib.contextmanager
def alphas_set(model: SearchNetwork, logits: dict[str, torch.Tensor]) -> Iterator[SearchNetwork]:
    """Within the block the supernet's α hold `logits` (by α name); restored afterwards."""
    saved = {name: getattr(model, name).detach().clone() for name in logits}
    try:
        with torch.no_grad():
            for name, value in logits.items():
                getattr(model, name).copy_(value.to(getattr(model, name).device))
        yield model
    finally:
        with torch.no_grad():
            for name, value in saved.items():
                getattr(model, name).copy_(value)


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def bn_mode(model: nn.Module, mode: str, recal_batches: Iterable | None = None,
            device: torch.device | None = None) -> Iterator[nn.Module]:
    """Within the block `model` is in eval mode with its BatchNorms in `mode` (`BN_MODES`);
    its training flag, BatchNorm statistics and momenta are restored afterwards.

    ``"recalibrated"`` needs `recal_batches` (batches of training data, (x, y)), which are
    run forward once, without gradients, to re-estimate the statistics."""
    if mode not in BN_MODES:
        raise ValueError(f"unknown BatchNorm mode {mode!r}; valid modes: {', '.join(BN_MODES)}")
    if mode == "recalibrated" and recal_batches is None:
        raise ValueError("BatchNorm recalibration needs training batches (recal_batches)")
    norms = batch_norms(model)
    was_training = model.training
    saved = [(bn.momentum, {k: v.clone() for k, v in bn.state_dict().items()}) for bn in norms]
    try:
        model.eval()
        if mode == "batch":
            for bn in norms:  # batch statistics, running ones unchanged (momentum 0)
                bn.train()
                bn.momentum = 0.0
        elif mode == "recalibrated":
            for bn in norms:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative average over the recalibration batches
                bn.train()
            with torch.no_grad():
                for batch in recal_batches:
                    x, _ = to_device(batch, device) if device is not None else batch
                    model(x)
            for bn in norms:
                bn.eval()
        yield model
    finally:
        for bn, (momentum, state) in zip(norms, saved):
            bn.momentum = momentum
            bn.load_state_dict(state)
        model.train(was_training)


def score(model: nn.Module, loader, device: torch.device) -> dict:
    """WA ('acc'), UA and loss of `model` on `loader`, in whatever mode it is in now
    (training.loop.evaluate_as_set, in float32 and without gradients)."""
    with torch.no_grad():
        ev = evaluate_as_set(model, loader, device, Precision(device, amp=False))
    return {"acc": ev["acc"], "ua": ev["ua"], "loss": ev["loss"]}


def score_genotype(model: SearchNetwork, genotype: Genotype, val_loader, device: torch.device, mode: str,
                   recal_loader=None, recal_batches: int = 10) -> dict:
    """The one-shot score of `genotype` inside `model`: its one-hot sub-network on
    `val_loader` with BatchNorm in `mode` (recalibrated on the first `recal_batches` of
    `recal_loader`)."""
    batches = None
    if mode == "recalibrated":
        if recal_loader is None:
            raise ValueError("BatchNorm recalibration needs a loader of training batches (recal_loader)")
        batches = [b for _, b in zip(range(recal_batches), recal_loader)]
    with alphas_set(model, one_hot_logits(model, genotype)), bn_mode(model, mode, batches, device):
        return score(model, val_loader, device)


def search_halves(fold_data, search_cfg: SearchConfig):
    """The weight-training and α-validation halves of the fold's `search` split (training
    speakers only), normalised and split exactly as `run_search` splits them for
    `search_cfg` (its normalisation and seed), as torch datasets."""
    normaliser = fit_normaliser(search_cfg.normalise, fold_data.search)
    split = normalised(fold_data.search, normaliser)
    train_idx, val_idx = stratified_halves(split.y, search_cfg.seed)
    return to_dataset(split.X, split.y, train_idx), to_dataset(split.X, split.y, val_idx)


def loaders(train_set, val_set, batch_size: int, eval_batch_size: int, seed: int, device: torch.device):
    """A shuffled, seeded training loader (recalibration, fine-tuning) and an ordered
    evaluation loader of the α-validation half."""
    train = make_loader(train_set, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed),
                        device=device, num_workers=0)
    val = make_loader(val_set, eval_batch_size, shuffle=False, device=device, num_workers=0)
    return train, val


def load_supernet(net_cfg: NetworkConfig, state_dict: dict, device: torch.device) -> SearchNetwork:
    """A supernet of `net_cfg` (in the form the fast-path switch chooses) holding `state_dict`."""
    model = search_network(net_cfg).to(device)
    model.load_state_dict(state_dict)
    return model


__all__ = ["ALPHA_NAMES", "BN_MODES", "alphas_set", "batch_norms", "bn_mode", "cell_primitives", "load_supernet",
           "loaders", "node_rows", "one_hot_logits", "predict", "score", "score_genotype", "search_halves"]
