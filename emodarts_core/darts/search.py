"""The architecture search (DARTS over the joint CNN -> SeqNN supernet): `run_search`.

It reads like pt.darts' `train`: build the supernet, and for each epoch take, batch by
batch, the architect's α step and the weight step (`darts.search_steps`), then record what
the α did (`darts.alpha_record`). Everything a run shares with retraining (validation at
the boundary, the run directory's claim and lock, resume from the checkpoint, the epoch's
checkpoint, metrics and TensorBoard, the FINISHED file) is the run lifecycle of
`emodarts_core.training.run`; the process settings (heap, threads) come with it.

The budget is stated in α steps when the search starts (`emodarts_core.darts.budget`;
logger `emodarts_core.darts.search`, and printed with `progress`), and its verdict at the
end (`alpha_record.AlphaRecord.conclude`). An epoch record's "alpha_loss" is the mean
validation loss of the batches the α steps descended (None in warm-up epochs); a collapse
remedy's per-epoch state is under "remedy", and P-DARTS' skip cap with the DARTS+ early
stop ends the search when the uncapped cell reaches `skip_stop` skip_connects.
`SearchConfig.freeze_alpha` runs the `prior` control: the same search with the α left at
their initial values. The initial weights and α of fold k under seed s are drawn from
`budget.init_seed(s, k)`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from emodarts_core.config import NetworkConfig, SearchConfig, to_dict
from emodarts_core.darts.alpha_record import (ALPHA_HISTORY, GENOTYPE, AlphaRecord, CollapseWarning,
                                              SearchBudgetWarning, chosen_genotype, parameter_free_share,
                                              primitives_of, seq_collapsed, stored_genotype)
from emodarts_core.darts.memory import checkpoint_plan
from emodarts_core.darts.search_steps import SearchSteps, search_data
from emodarts_core.networks import search_network
from emodarts_core.space.genotypes import Genotype
from emodarts_core.training.run import Run, validated

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    genotype: Genotype
    history: list[dict]
    run_dir: Path


def run_search(fold_data, net_cfg: NetworkConfig, search_cfg: SearchConfig, run_dir,
               resume: bool = False) -> SearchResult:
    """Search an architecture on `fold_data.search`; writes and returns the run's result.

    All configuration is validated first (ConfigError). A run directory holding a finished
    run is returned as is with `resume=True` and refused otherwise (RunExistsError), as is
    an unfinished one without `resume=True`. A non-finite loss raises NonFiniteLossError
    and leaves the last good checkpoint in place.
    """
    net_cfg, search_cfg = validated(fold_data, net_cfg, search_cfg, ("search",))
    with Run("search", run_dir, search_cfg) as run:
        data = search_data(fold_data, search_cfg, run.device)
        budget = data.budget
        plan = checkpoint_plan(net_cfg, search_cfg, run.device)
        run.seed(data.init_seed)  # the initial weights and α of this fold
        model = search_network(net_cfg).to(run.device)  # the fast form unless the switch is off
        model.set_checkpointing(plan.edges)
        alphas, steps = AlphaRecord(model, net_cfg, search_cfg), SearchSteps(model, search_cfg, run.precision,
                                                                             budget.epochs)
        if run.claim(run.config(fold_data, {"network": to_dict(net_cfg), "search": to_dict(search_cfg)}), resume):
            return SearchResult(stored_genotype(run.rd), run.rd.read_epochs(), run.rd.path)
        ckpt = run.restore(steps.stateful(data.generators), data.normaliser)
        alphas.entries = ckpt["alpha_history"] if ckpt is not None else []
        start = ckpt["epoch"] if ckpt is not None else 0
        if run.history and run.history[-1].get("remedy", {}).get("stop"):
            start = budget.epochs  # killed after the early stop's checkpoint: nothing left to run
        run.tb.begin_search(alphas.primitives, run.history, alphas.entries)
        run.on_epoch(lambda record: (alphas.write(run.rd), run.tb.search_epoch(record, alphas.entries[-1])))
        _say(budget.describe(), search_cfg.progress)
        for epoch in run.epochs(start, budget.epochs):
            done = run.history[-1].get("alpha_updates", 0) if run.history else 0
            record, remedy = steps.epoch(epoch, run.batches(zip(data.train, data.val), data.steps), data,
                                         run.device, done)
            record = alphas.epoch(epoch, record, remedy, run.elapsed())
            run.end_epoch(record, {"val_ua": f"{record['val_ua']:.3f}", "loss": f"{record['train_loss']:.3f}"},
                          alpha_history=alphas.entries)
            if record.get("remedy", {}).get("stop"):
                break  # DARTS+ early stop: the uncapped cell reached skip_stop skip_connects

        steps.finish()
        genotype, verdict = alphas.conclude(run.rd, run.history, budget)
        _say(f"verdict: {verdict['message'] or 'the α moved and the genotype settled'}", search_cfg.progress)
        stopped = run.history[-1]["epoch"] if run.history and run.history[-1].get("remedy", {}).get("stop") else None
        run.finish({"epochs": budget.epochs, "budget": budget.to_dict(), "verdict": verdict,
                    "genotype": genotype.to_dict(), "seq_collapsed": seq_collapsed(genotype),
                    "collapse_remedy": search_cfg.collapse_remedy, "stopped_early_at_epoch": stopped,
                    "device": str(run.device), "activation_checkpointing": bool(plan.edges),
                    "checkpointed_edges": len(plan.edges), "precision": run.precision.describe(),
                    "last_epoch": run.history[-1] if run.history else None})
        return SearchResult(genotype, run.history, run.rd.path)


def _say(text: str, printed: bool) -> None:
    """A line for the log (logger `emodarts_core.darts.search`), printed too with progress on."""
    log.info(text)
    if printed:
        tqdm.write(text)


__all__ = ["ALPHA_HISTORY", "GENOTYPE", "CollapseWarning", "SearchBudgetWarning", "SearchResult", "checkpoint_plan",
           "chosen_genotype", "parameter_free_share", "primitives_of", "run_search", "seq_collapsed"]
