"""K searches of one fold in one stacked network: `run_stacked_search`.

The study runs many independent searches of one small network (each seed of a fold, and
the `prior` control beside the searched run). A search step of the study's space is bound
by the number of small operator calls, not by arithmetic (docs/PERFORMANCE.md), so
`run_stacked_search` runs K of them through one `fast.stacked_network.StackedSearchNetwork`,
where each call does the work of K searches. Each search keeps everything of its own:

- its initial weights and α, drawn from its own seed exactly as `darts.search.run_search`
  draws them (`budget.init_seed`), in the plain form's order;
- its own halves of the search split, data order and α-validation batches
  (`darts.search_steps.search_data` under its seed), labels and loss;
- its own gradient clipping, optimiser state, cosine schedule, collapse remedy, α record,
  diagnostics and genotype (`darts.stacked_step`, `darts.alpha_record`);
- its own dropout masks (one draw over the stacked tensor, not the masks a single search
  would draw: with dropout on, a stacked search is a search of its own, not a replay);
- its own run directory, written through the run lifecycle (`training.run.Run`) with
  exactly the files and formats of a single search: checkpoints hold that copy's state
  in the plain form's names (its optimisers' state sliced out of the stacked ones).

A copy whose loss or gradient is not finite stops with the single search's message
(`NonFiniteLossError`, the last good checkpoint kept) and the others finish. The searches
of one stack share their network and search settings except `seed` and `freeze_alpha`,
and their fold (so their halves have equal sizes and their steps are taken together).

Resume: a stacked task resumes when every unfinished search's last checkpoint is at the
same epoch (as a stacked run leaves them); finished searches are returned as stored.
Each run directory is also a single search's (`run_search(..., resume=True)` continues
it, with its own dropout masks from then on), which is how searches whose checkpoints
stand at different epochs are finished. Activation checkpointing, PC-DARTS' partial
channels and mixed precision are not carried by the stacked network; activation
checkpointing, which changes no value, is not taken (the run records it as off).
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
import torch.nn as nn

from emodarts_core.config import ConfigError, NetworkConfig, SearchConfig, to_dict
from emodarts_core.darts.alpha_record import AlphaRecord, seq_collapsed, stored_genotype
from emodarts_core.darts.collapse import AuxiliarySkip, beta_decay_loss, beta_decay_weight, darts_minus_beta
from emodarts_core.darts.search import SearchResult
from emodarts_core.darts.search_steps import search_data
from emodarts_core.darts.stacked_step import StackedArchitect, evaluate, weight_step
from emodarts_core.fast.stacked_network import StackedSearchNetwork
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.training.loop import NonFiniteLossError, stop_message
from emodarts_core.training.run import Run, validated

#: SearchConfig fields in which the searches of one stack may differ.
PER_COPY = ("seed", "freeze_alpha")


def check_stackable(net_cfg: NetworkConfig, search_cfgs: list[SearchConfig]) -> None:
    """ConfigError unless the searches can share one stacked network and its steps."""
    if not search_cfgs:
        raise ConfigError("a stacked search needs at least one search configuration")
    shared = [{k: v for k, v in to_dict(c).items() if k not in PER_COPY} for c in search_cfgs]
    for i, s in enumerate(shared[1:], 1):
        diff = sorted(k for k in s if s[k] != shared[0].get(k))
        if diff:
            raise ConfigError(f"stacked searches may differ only in {', '.join(PER_COPY)}; search {i} also "
                              f"differs in {', '.join(diff)}")
    cfg = search_cfgs[0]
    if net_cfg.partial_channels != 1:
        raise ConfigError("a stacked search runs exact DARTS (partial_channels=1); run PC-DARTS searches singly")


class CopyModel:
    """Copy k of a stacked network, as a checkpoint sees a model (`state_dict` / `load_state_dict`)."""

    def __init__(self, net: StackedSearchNetwork, k: int):
        self.net, self.k = net, k

    def state_dict(self):
        return self.net.copy_state_dict(self.k)

    def load_state_dict(self, state):
        self.net.load_copy(self.k, state)


class CopyOptimizer:
    """Copy k's slice of an elementwise optimiser over stacked tensors: the state dict that
    optimiser would have over copy k's plain tensors (empty while `stepped()` is False)."""

    def __init__(self, optimizer: torch.optim.Optimizer, k: int, stepped=lambda: True):
        self.optimizer, self.k, self.stepped = optimizer, k, stepped

    def state_dict(self):
        full = self.optimizer.state_dict()
        state = {}
        if self.stepped():
            for i, entry in full["state"].items():
                state[i] = {n: (v[self.k].clone() if torch.is_tensor(v) and v.dim() else v) for n, v in entry.items()}
        return {"state": state, "param_groups": full["param_groups"]}

    @torch.no_grad()
    def load_state_dict(self, saved):
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        for i, entry in saved["state"].items():
            own = self.optimizer.state[params[int(i)]]
            for name, value in entry.items():
                if torch.is_tensor(value) and value.dim():
                    if name not in own:
                        own[name] = torch.zeros_like(params[int(i)])
                    own[name][self.k] = value
                else:
                    own[name] = value.clone() if torch.is_tensor(value) else value


class CopyArchitect(CopyOptimizer):
    """Copy k's α optimiser state, in the form `darts.architect.Architect.state_dict` gives."""


def initial_networks(net_cfg: NetworkConfig, seeds: list[int], run_seed) -> list[SearchNetwork]:
    """Each search's initial network, drawn as `run_search` draws it (seeded, plain form)."""
    nets = []
    for seed in seeds:
        run_seed(seed)
        nets.append(SearchNetwork(net_cfg))
    return nets


def _probe(net_cfg: NetworkConfig, stacked: StackedSearchNetwork, k: int) -> SearchNetwork:
    """A weightless plain network whose α are copy k's (views), for the α record and the parse."""
    with torch.device("meta"):
        probe = SearchNetwork(net_cfg)
    for name, alpha in stacked.named_alphas():
        setattr(probe, name, nn.Parameter(alpha.data[k], requires_grad=False))
    return probe


@dataclasses.dataclass
class Copy:
    """One search of the stack: its run, data, α record and state."""

    cfg: SearchConfig
    run: Run
    data: object = None
    alphas: AlphaRecord | None = None
    epochs: object = None
    outcome: object = None  # SearchResult or the NonFiniteLossError that stopped it
    slot: int = -1


def run_stacked_search(fold_data, net_cfg: NetworkConfig, search_cfgs: list[SearchConfig], run_dirs: list,
                       resume: bool = False) -> list:
    """Run the searches `search_cfgs` (one fold, see `check_stackable`) into `run_dirs`, stacked.

    Returns one outcome per search, in order: its `SearchResult`, or the NonFiniteLossError
    that stopped it (with a single search's message). Configuration errors are raised before
    any work; a finished run directory is returned as stored with `resume=True`.
    """
    if len(search_cfgs) != len(run_dirs):
        raise ConfigError(f"{len(search_cfgs)} search configurations for {len(run_dirs)} run directories")
    pairs = [validated(fold_data, net_cfg, c, ("search",)) for c in search_cfgs]
    net_cfg, search_cfgs = pairs[0][0], [c for _, c in pairs]
    check_stackable(net_cfg, search_cfgs)
    with contextlib.ExitStack() as stack:
        copies = []
        for cfg, run_dir in zip(search_cfgs, run_dirs):
            run = Run("search", run_dir, cfg)
            stack.enter_context(run)
            copies.append(Copy(cfg, run, data=search_data(fold_data, cfg, run.device)))
        device = copies[0].run.device
        if copies[0].run.precision.enabled:
            raise ConfigError("a stacked search runs in full precision: set SearchConfig.amp=False on CUDA")
        config = {"network": to_dict(net_cfg)}
        for c in copies:
            if c.run.claim(c.run.config(fold_data, {**config, "search": to_dict(c.cfg)}), resume):
                c.outcome = SearchResult(stored_genotype(c.run.rd), c.run.rd.read_epochs(), c.run.rd.path)
        todo = [c for c in copies if c.outcome is None]
        if todo:
            _run(todo, net_cfg, device)
    return [c.outcome for c in copies]


def _run(todo: list[Copy], net_cfg: NetworkConfig, device) -> None:
    first = todo[0]
    steps, budget = first.data.steps, first.data.budget
    if any(c.data.steps != steps or len(c.data.train.dataset) != len(first.data.train.dataset) for c in todo):
        raise ConfigError("stacked searches must have search halves of equal sizes (searches of one fold)")
    nets = initial_networks(net_cfg, [c.data.init_seed for c in todo], first.run.seed)
    model = StackedSearchNetwork(nets).to(device)
    del nets
    cfg = first.cfg
    weights = list(model.weights())
    w_optim = torch.optim.SGD(weights, lr=cfg.w_lr, momentum=cfg.w_momentum, weight_decay=cfg.w_weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(w_optim, T_max=budget.epochs, eta_min=cfg.w_lr_min)
    architect = StackedArchitect(model, cfg.w_momentum, cfg.w_weight_decay, cfg.alpha_lr, cfg.alpha_betas,
                                 cfg.alpha_weight_decay)
    aux_skip = AuxiliarySkip(model, 0.0) if cfg.collapse_remedy == "darts_minus" else None
    alpha_steps = [0]  # the α steps taken by the stack's optimiser (a frozen copy's state stays empty)
    starts = []
    for k, c in enumerate(todo):
        c.slot = k
        c.alphas = AlphaRecord(_probe(net_cfg, model, k), net_cfg, c.cfg)
        stateful = {"model": CopyModel(model, k), "w_optim": CopyOptimizer(w_optim, k),
                    "a_optim": CopyArchitect(architect.optimizer, k,
                                             lambda c=c: not c.cfg.freeze_alpha and alpha_steps[0] > 0),
                    "scheduler": scheduler, "scaler": c.run.precision.scaler(), "generators": c.data.generators}
        ckpt = c.run.restore(stateful, c.data.normaliser)
        c.alphas.entries = ckpt["alpha_history"] if ckpt is not None else []
        start = ckpt["epoch"] if ckpt is not None else 0
        if c.run.history and c.run.history[-1].get("remedy", {}).get("stop"):
            start = budget.epochs
        if ckpt is not None and ckpt.get("a_optim", {}).get("state"):
            alpha_steps[0] = 1
        starts.append(start)
        c.run.tb.begin_search(c.alphas.primitives, c.run.history, c.alphas.entries)
        c.run.on_epoch(lambda record, c=c: (c.alphas.write(c.run.rd),
                                            c.run.tb.search_epoch(record, c.alphas.entries[-1])))
    if len(set(starts)) > 1:
        raise ConfigError("the searches' checkpoints stand at epochs " + ", ".join(map(str, starts)) + "; a stacked "
                          "search resumes searches at one epoch: resume each singly (run_search, resume=True)")
    start = starts[0]
    for c in todo:
        c.epochs = iter(c.run.epochs(start, budget.epochs))
    live = list(todo)
    for epoch in range(start, budget.epochs):
        for c in live:
            next(c.epochs)
        live = _epoch(epoch, live, model, w_optim, scheduler, architect, aux_skip, budget, device, alpha_steps)
        if not live:
            break
    if aux_skip is not None:
        aux_skip.remove()
    for c in todo:
        if c.outcome is None:
            _conclude(c, c.data.budget, device)


def _stop(c: Copy, epoch: int, message: str) -> None:
    """Stop copy `c` as a single search stops on a non-finite loss; the others go on."""
    c.epochs.close()
    c.outcome = NonFiniteLossError(stop_message(c.run.rd, epoch + 1, NonFiniteLossError(message)))


def _epoch(epoch, live, model, w_optim, scheduler, architect, aux_skip, budget, device, alpha_steps) -> list[Copy]:
    """Epoch `epoch` of the `live` copies (`search_steps.SearchSteps.epoch`, stacked); returns
    the copies that go on."""
    cfg = live[0].cfg
    w_lr = scheduler.get_last_lr()[0]
    remedy, penalty, penalty_weight = None, None, 0.0
    if aux_skip is not None:
        aux_skip.beta = darts_minus_beta(epoch, budget.epochs, cfg.darts_minus_beta)
        remedy = {"name": "darts_minus", "beta": aux_skip.beta}
    elif cfg.collapse_remedy == "beta_decay":
        penalty, penalty_weight = beta_decay_loss, beta_decay_weight(epoch, budget.epochs, cfg.beta_decay_weight)
        remedy = {"name": "beta_decay", "weight": penalty_weight}
    updating = {c.slot for c in live if epoch >= cfg.warmup_epochs and not c.cfg.freeze_alpha}
    model.train()
    sums = {c.slot: [0.0, 0, 0, 0.0, 0] for c in live}  # loss, correct, seen, α loss, α seen
    by_slot = {c.slot: c for c in live}
    epoch_slots = sorted(by_slot)
    loaders = [zip(by_slot[k].data.train, by_slot[k].data.val) for k in epoch_slots]
    all_slots = range(model.copies)
    for pairs in _in_step(loaders):
        batch = dict(zip(epoch_slots, pairs))
        tx, ty, vx, vy = (torch.stack([_pick(batch, k, i) for k in all_slots]).to(device) for i in range(4))
        active = [k for k in by_slot if k in updating]
        if active:
            losses, failed = architect.step(tx, ty, vx, vy, w_lr, w_optim, cfg.order, active, penalty, penalty_weight)
            alpha_steps[0] += 1
            values = losses.tolist()
            for k in active:
                if k in failed:
                    _stop(by_slot.pop(k), epoch, failed[k])
                else:
                    s = sums[k]
                    s[3], s[4] = s[3] + values[k] * vy.shape[1], s[4] + vy.shape[1]
        losses, hits, failed = weight_step(model, list(model.weights()), tx, ty, w_optim, cfg.w_grad_clip,
                                           list(by_slot))
        values, hits = losses.tolist(), hits.tolist()
        for k in list(by_slot):
            if k in failed:
                _stop(by_slot.pop(k), epoch, failed[k])
                continue
            s = sums[k]
            s[0], s[1], s[2] = s[0] + values[k] * ty.shape[1], s[1] + int(hits[k]), s[2] + ty.shape[1]
        if not by_slot:
            break
    scheduler.step()
    slots = sorted(by_slot)
    scores = evaluate(model, [_eval_loader(by_slot, k) for k in all_slots], device) if slots else []
    going = []
    for k in slots:
        c, ev, s = by_slot[k], scores[k], sums[k]
        if not torch.isfinite(torch.tensor(ev["loss"])):
            _stop(c, epoch, f"non-finite validation loss ({ev['loss']})")
            continue
        update = k in updating
        done = c.run.history[-1].get("alpha_updates", 0) if c.run.history else 0
        record = {"epoch": epoch + 1, "lr": w_lr, "alpha_step": update,
                  "alpha_updates": done + (c.data.steps if update else 0),
                  "train_loss": s[0] / s[2], "train_acc": s[1] / s[2],
                  "alpha_loss": s[3] / s[4] if update else None,
                  "val_loss": ev["loss"], "val_acc": ev["acc"], "val_ua": ev["ua"]}
        record = c.alphas.epoch(epoch, record, None if remedy is None else dict(remedy), c.run.elapsed())
        c.run.end_epoch(record, {"val_ua": f"{record['val_ua']:.3f}", "loss": f"{record['train_loss']:.3f}"},
                        alpha_history=c.alphas.entries)
        if record.get("remedy", {}).get("stop"):
            c.epochs.close()  # DARTS+ early stop: this search ends here, the others go on
        else:
            going.append(c)
    return going


def _in_step(iterables: list):
    """The items of `iterables` side by side, each advanced until it ends, as its own
    search's loop advances it: a shuffled loader draws from its generator when its
    iterator ends, so stopping one early (as `zip` of several would) changes its next
    epoch's order."""
    iterators = [iter(it) for it in iterables]
    while True:
        items, ended = [], False
        for it in iterators:
            try:
                items.append(next(it))
            except StopIteration:
                ended = True
        if ended:
            return
        yield items


def _pick(batch: dict, k: int, i: int) -> torch.Tensor:
    """Item `i` (train x, train y, val x, val y) of slot k's batches; a stopped slot gets a
    live slot's batch, whose results nobody reads."""
    pair = batch.get(k, next(iter(batch.values())))
    return pair[i // 2][i % 2]


def _eval_loader(by_slot: dict, k: int):
    """Slot k's evaluation loader; a stopped slot reads a live slot's (its results unread)."""
    c = by_slot.get(k) or by_slot[next(iter(by_slot))]
    return c.data.val_eval


def _conclude(c: Copy, budget, device) -> None:
    genotype, verdict = c.alphas.conclude(c.run.rd, c.run.history, budget)
    history = c.run.history
    stopped = history[-1]["epoch"] if history and history[-1].get("remedy", {}).get("stop") else None
    c.run.finish({"epochs": budget.epochs, "budget": budget.to_dict(), "verdict": verdict,
                  "genotype": genotype.to_dict(), "seq_collapsed": seq_collapsed(genotype),
                  "collapse_remedy": c.cfg.collapse_remedy, "stopped_early_at_epoch": stopped,
                  "device": str(device), "activation_checkpointing": False, "checkpointed_edges": 0,
                  "precision": c.run.precision.describe(), "last_epoch": history[-1] if history else None})
    c.outcome = SearchResult(genotype, history, c.run.rd.path)


__all__ = ["PER_COPY", "check_stackable", "initial_networks", "run_stacked_search"]
