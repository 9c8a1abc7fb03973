"""Selection by perturbation (Wang et al., "Rethinking architecture selection in
differentiable NAS", ICLR 2021; "darts-pt"): choose each edge's op by how much removing it
lowers the trained supernet's validation accuracy, not by the size of its α.

The procedure (settings in `PerturbationConfig`, documented in docs/SELECTION.md):

1. **Ops, edge by edge.** At each op decision, one undecided edge of every cell kind
   (normal, reduce, SeqNN) is drawn at random (seeded). Each of its candidates other than
   `none` is masked in turn (its weight set to zero, the other weights unchanged, as
   darts-pt masks) and the supernet is scored on the α-validation half; the op whose
   removal leaves the *lowest* accuracy is the one the supernet relies on most, and the
   edge becomes one-hot on it.
2. **Node inputs.** Then, node by node (nodes with more than two candidate inputs, in a
   seeded order), the incoming edge whose removal lowers the accuracy *least* is dropped,
   until two remain: the node's inputs are chosen by the same measure.
3. **Fine-tuning between decisions.** After every decision but the last, the supernet's
   weights are trained for `tune_epochs` epochs on the weight-training half (SGD with the
   search's momentum and weight decay, learning rate `lr_factor` × the search's, cosine
   to the search's minimum over all the tuning), with the decided edges one-hot and the
   others at their softmax(α), so that the supernet recovers from each discretisation.
   The α stay fixed: for the prior's supernet this is darts-pt's "fixed α" variant; for
   the searched one it differs from darts-pt, which keeps training the undecided α.

Masking is exact without touching the network: the weights are applied as α logits
log(w) (`darts.subnet.alphas_set`), and a masked op's weight moves to `none`, whose
output is zero, so the other ops keep their weights. Scores use BatchNorm batch
statistics (`darts.subnet`, mode ``"batch"``), as darts-pt evaluates. Only the search
split's halves are read: training speakers only.

`select_by_perturbation` writes `selection.json` (every decision with its candidates'
scores), `genotype.json`, and a checkpoint after each decision, from which `resume=True` continues; the
edge draws and the tuning batches are seeded per decision, so a resumed selection equals
an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from emodarts_core.config import ConfigError, NetworkConfig, SearchConfig
from emodarts_core.darts import subnet
from emodarts_core.space.genotypes import Genotype, from_dict, to_json, validate
from emodarts_core.training.device import resolve_device
from emodarts_core.training.rundir import RunDir

SELECTION = "selection.json"
GENOTYPE = "genotype.json"  # also what makes the folder a run directory for a results pack
STATE = "selection_state.pt"
CRITERIA = ("acc", "ua")


@dataclass(frozen=True)
class PerturbationConfig:
    """Settings of selection by perturbation (docs/SELECTION.md)."""

    tune_epochs: int = 2  # fine-tuning epochs between two decisions (darts-pt's projection interval)
    lr_factor: float = 0.1  # fine-tuning learning rate over the search's (darts-pt: a tenth)
    criterion: str = "acc"  # what masking is judged by on the α-validation half: accuracy (darts-pt) or UA
    bn_mode: str = "batch"  # BatchNorm while scoring (darts.subnet.BN_MODES); darts-pt: batch statistics
    seed: int = 0  # the order of edges and nodes, and the tuning batches

    def validate(self) -> "PerturbationConfig":
        if not isinstance(self.tune_epochs, int) or isinstance(self.tune_epochs, bool) or self.tune_epochs < 0:
            raise ConfigError(f"perturbation.tune_epochs must be an integer >= 0, got {self.tune_epochs!r}")
        if not (isinstance(self.lr_factor, (int, float)) and 0 < self.lr_factor <= 1):
            raise ConfigError(f"perturbation.lr_factor must be in (0, 1], got {self.lr_factor!r}")
        if self.criterion not in CRITERIA:
            raise ConfigError(f"unknown perturbation.criterion {self.criterion!r}; valid: {', '.join(CRITERIA)}")
        if self.bn_mode not in ("batch", "running"):
            raise ConfigError(f"perturbation.bn_mode must be 'batch' or 'running', got {self.bn_mode!r}")
        return self


class Projection:
    """The supernet's current op weights per cell kind: undecided edges at softmax(α),
    decided ones one-hot, removed ones all on `none` (zero output)."""

    def __init__(self, model, weights: dict[str, np.ndarray] | None = None):
        self.prims = subnet.cell_primitives(model)
        self.nodes = {k: (model.cfg.seq_nodes if k == "seq" else model.cfg.nodes) for k in self.prims}
        if weights is None:
            weights = {k: F.softmax(getattr(model, subnet.ALPHA_NAMES[k]).detach().double(), -1).cpu().numpy()
                       for k in self.prims}
        self.weights = {k: np.array(v, dtype=np.float64) for k, v in weights.items()}
        self.none = {k: p.index("none") for k, p in self.prims.items()}

    def logits(self, weights: dict[str, np.ndarray] | None = None) -> dict[str, torch.Tensor]:
        with np.errstate(divide="ignore"):
            return {subnet.ALPHA_NAMES[k]: torch.from_numpy(np.log(w)).float()
                    for k, w in (weights or self.weights).items()}

    def masked(self, kind: str, row: int, op: int | None = None) -> dict[str, np.ndarray]:
        """The weights with op `op` of edge `row` removed (all of the edge when None); its
        weight goes to `none`, so every other op keeps its weight."""
        out = {k: w.copy() for k, w in self.weights.items()}
        w = out[kind][row]
        if op is None:
            w[:] = 0.0
            w[self.none[kind]] = 1.0
        else:
            w[self.none[kind]] += w[op]
            w[op] = 0.0
        return out

    def choose_op(self, kind: str, row: int, op: int) -> None:
        self.weights[kind][row] = np.eye(len(self.prims[kind]))[op]

    def remove_edge(self, kind: str, row: int) -> None:
        self.weights[kind] = self.masked(kind, row)[kind]

    def genotype(self, decided_ops: dict, kept_inputs: dict) -> Genotype:
        cells = {}
        for kind in ("normal", "reduce", "seq"):
            if kind not in self.prims:
                cells[kind], cells[kind + "_concat"] = [], []
                continue
            edges = []
            for j, rows in enumerate(subnet.node_rows(self.nodes[kind])):
                kept = kept_inputs[kind].get(j, list(rows))
                edges += [(self.prims[kind][decided_ops[kind][r]], r - rows.start) for r in sorted(kept)]
            cells[kind], cells[kind + "_concat"] = edges, list(range(2, 2 + self.nodes[kind]))
        return validate(Genotype(**cells))


def _score(model, projection: Projection, weights, val_loader, device, cfg: PerturbationConfig) -> float:
    with subnet.alphas_set(model, projection.logits(weights)), subnet.bn_mode(model, cfg.bn_mode):
        return subnet.score(model, val_loader, device)[cfg.criterion]


def _op_decision(model, projection, kind, row, val_loader, device, cfg) -> dict:
    scores = {}
    for op, name in enumerate(projection.prims[kind]):
        if name != "none":
            scores[name] = _score(model, projection, projection.masked(kind, row, op), val_loader, device, cfg)
    chosen = min(scores, key=lambda n: (scores[n], -projection.weights[kind][row][projection.prims[kind].index(n)]))
    projection.choose_op(kind, row, projection.prims[kind].index(chosen))
    return {"step": "op", "kind": kind, "edge": row, "masked_score": scores, "chosen": chosen}


def _input_decision(model, projection, kind, node, val_loader, device, cfg) -> dict:
    rows = list(subnet.node_rows(projection.nodes[kind])[node])
    dropped, rounds = [], []
    while len(rows) > 2:
        scores = {r: _score(model, projection, projection.masked(kind, r), val_loader, device, cfg) for r in rows}
        drop = max(rows, key=lambda r: (scores[r], -r))  # its removal hurts least
        projection.remove_edge(kind, drop)
        rows.remove(drop)
        dropped.append(drop)
        rounds.append({str(r - subnet.node_rows(projection.nodes[kind])[node].start): s for r, s in scores.items()})
    start = subnet.node_rows(projection.nodes[kind])[node].start
    return {"step": "inputs", "kind": kind, "node": node, "masked_score": rounds,
            "kept_inputs": [r - start for r in rows], "dropped_inputs": [r - start for r in dropped], "rows": rows}


def plan_decisions(projection: Projection) -> list[list[tuple]]:
    """The decision steps, before they are drawn: the op steps (one edge of each cell kind
    per step, as many steps as the largest cell has edges) then the input steps (one node
    with more than two candidate inputs of each cell kind per step)."""
    n_rows = {k: w.shape[0] for k, w in projection.weights.items()}
    n_choice_nodes = {k: sum(1 for rows in subnet.node_rows(projection.nodes[k]) if len(rows) > 2)
                      for k in projection.weights}
    ops = [[("op", k) for k in n_rows if i < n_rows[k]] for i in range(max(n_rows.values()))]
    inputs = [[("inputs", k) for k in n_choice_nodes if i < n_choice_nodes[k]]
              for i in range(max(n_choice_nodes.values(), default=0))]
    return ops + inputs


def _tune(model, projection, train_set, cfg, search_cfg, step, total_epochs, optimiser, scheduler, device):
    loader = subnet.loaders(train_set, train_set, search_cfg.batch_size, search_cfg.eval_batch_size,
                            cfg.seed * 1000 + step, device)[0]
    weights = list(model.weights())
    with subnet.alphas_set(model, projection.logits()), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed * 1000 + step)  # dropout draws per decision: a resumed run repeats them
        model.train()
        for _ in range(cfg.tune_epochs):
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                optimiser.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(weights, search_cfg.w_grad_clip)
                optimiser.step()
            scheduler.step()
        model.eval()


def select_by_perturbation(model, fold_data, net_cfg: NetworkConfig, search_cfg: SearchConfig, run_dir,
                           cfg: PerturbationConfig | None = None, resume: bool = False) -> tuple[Genotype, dict]:
    """The genotype that perturbation selects from the trained supernet `model` (a
    `SearchNetwork` holding the search's last weights and α; its weights are fine-tuned in
    place), and the record written to `run_dir/selection.json`."""
    cfg = (cfg or PerturbationConfig()).validate()
    rd = RunDir(run_dir)
    if rd.is_finished():
        record = rd.read_json(SELECTION)
        return from_dict(record["genotype"]), record
    device = resolve_device(search_cfg.device)
    model.to(device).eval()
    train_set, val_set = subnet.search_halves(fold_data, search_cfg)
    val_loader = subnet.loaders(train_set, val_set, search_cfg.batch_size, search_cfg.eval_batch_size,
                                cfg.seed, device)[1]
    projection = Projection(model)
    steps = plan_decisions(projection)
    tuning = cfg.tune_epochs * max(len(steps) - 1, 0)
    optimiser = torch.optim.SGD(list(model.weights()), lr=search_cfg.w_lr * cfg.lr_factor,
                                momentum=search_cfg.w_momentum, weight_decay=search_cfg.w_weight_decay)
    lr_min = min(search_cfg.w_lr_min, search_cfg.w_lr * cfg.lr_factor)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(tuning, 1), eta_min=lr_min)
    undecided = {k: list(range(w.shape[0])) for k, w in projection.weights.items()}
    open_nodes = {k: [j for j, rows in enumerate(subnet.node_rows(projection.nodes[k])) if len(rows) > 2]
                  for k in projection.weights}
    decided = {k: {} for k in projection.weights}
    kept = {k: {} for k in projection.weights}
    decisions, start, began, evaluations = [], 0, time.perf_counter(), 0
    state = rd.load_torch(STATE) if resume and rd.exists(STATE) else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        projection.weights = {k: np.asarray(v, dtype=np.float64) for k, v in state["weights"].items()}
        undecided, open_nodes, decided, kept = state["undecided"], state["open_nodes"], state["decided"], state["kept"]
        decisions, start, evaluations = state["decisions"], state["next_step"], state["evaluations"]
    for step in range(start, len(steps)):
        rng = np.random.default_rng([cfg.seed, step])
        for what, kind in steps[step]:
            if what == "op":
                row = undecided[kind].pop(int(rng.integers(len(undecided[kind]))))
                out = _op_decision(model, projection, kind, row, val_loader, device, cfg)
                decided[kind][row] = projection.prims[kind].index(out["chosen"])
                evaluations += len(out["masked_score"])
            else:
                node = open_nodes[kind].pop(int(rng.integers(len(open_nodes[kind]))))
                out = _input_decision(model, projection, kind, node, val_loader, device, cfg)
                kept[kind][node] = out.pop("rows")
                evaluations += sum(len(r) for r in out["masked_score"])
            decisions.append({"decision": step + 1, **out})
        if step < len(steps) - 1 and cfg.tune_epochs:
            _tune(model, projection, train_set, cfg, search_cfg, step, tuning, optimiser, scheduler, device)
        rd.atomic_save_torch(STATE, {"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                                     "scheduler": scheduler.state_dict(),
                                     "weights": {k: v.tolist() for k, v in projection.weights.items()},
                                     "undecided": undecided, "open_nodes": open_nodes, "decided": decided,
                                     "kept": kept, "decisions": decisions, "next_step": step + 1,
                                     "evaluations": evaluations})
    genotype = projection.genotype(decided, kept)
    with subnet.alphas_set(model, projection.logits()), subnet.bn_mode(model, cfg.bn_mode):
        final = subnet.score(model, val_loader, device)
    record = {"genotype": genotype.to_dict(), "settings": asdict(cfg), "decisions": decisions,
              "evaluations": evaluations, "tuning_epochs": tuning, "final_val": final,
              "seconds": round(time.perf_counter() - began, 3),
              "scored_on": "the search split's α-validation half (training speakers only)"}
    rd.atomic_write_json(SELECTION, record)
    rd.atomic_write_text(GENOTYPE, to_json(genotype, metadata={"rule": "selection by perturbation"}) + "\n")
    rd.mark_finished({"kind": "perturbation", "genotype": genotype.to_dict(), "evaluations": evaluations})
    return genotype, record


__all__ = ["CRITERIA", "PerturbationConfig", "Projection", "SELECTION", "plan_decisions", "select_by_perturbation"]
