"""The sweep's model sources for the selection rules that read finished searches
(docs/SELECTION.md): `emodarts_pt` and `prior_pt` (selection by perturbation from the
searched and the prior's supernets, `darts.perturbation`) and `consensus` (the genotype
of the mean softmax(α) over a fold's seeds, `study.consensus`); and `random_reseed`, the
random control's architectures retrained under a second seed (the ceiling of the ranking).

They read the searches of other tasks of the same sweep: the search of
`controls.scope` (`emodarts`) and the `prior` control's, in the same results folder,
fold and seed. A search that has finished is read as it is (its `config.json`, its
`checkpoint.pt` with the last weights and α, its `alpha_history.json`). One that has not
is run here, resumably and with the settings its own task uses, so the task that owns it
later finds it finished; while another process holds its run directory (that task is
running it), this one waits for it. Nothing here reads a test speaker: the supernets and
α come from searches on the fold's training speakers, and the selection scores the
search split's α-validation half.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from emodarts_core.darts import subnet
from emodarts_core.darts.perturbation import PerturbationConfig, select_by_perturbation
from emodarts_core.space import genotypes
from emodarts_core.study.consensus import consensus_genotype, consensus_report, final_probs
from emodarts_core.study.ranking import search_configs, supernet_state
from emodarts_core.training.device import resolve_device
from emodarts_core.training.rundir import RunDir, RunLockedError

CONSENSUS = "consensus.json"
SELECTION_STAGE = "selection"
#: Which search each perturbation model reads: the searched scope's or the prior control's.
PT_SOURCES = {"emodarts_pt": "darts", "prior_pt": "prior"}
POLL_SECONDS = 30.0


def search_dir_of(run, kind: str, seed: int | None = None) -> Path:
    """The search run directory of `kind` ("darts": the controls' scope; "prior") for the
    task's dataset and fold, under `seed` (default: the task's)."""
    from emodarts_core.study.sweep.plan import Task

    task = run.task
    name = run.params.controls.scope if kind == "darts" else "prior"
    sibling = Task(task.dataset, task.fold, kind, name, task.seed if seed is None else seed)
    return sibling.run_dir(run.results_dir, "search")


def finished_search(run, kind: str, seed: int | None = None) -> Path:
    """The search directory of `kind` (see `search_dir_of`), finished: run here if no
    process is running it, waited for while one is."""
    from emodarts_core.darts.search import run_search

    path = search_dir_of(run, kind, seed)
    search = dataclasses.replace(run.search, seed=run.task.seed if seed is None else seed,
                                 freeze_alpha=(kind == "prior"))
    while not RunDir(path).is_finished():
        try:
            run_search(run.fold, run.network, search, path, resume=True)
        except RunLockedError:  # its own task is running it
            time.sleep(POLL_SECONDS)
    return path


def selected_by_perturbation(run, model_name: str):
    """The genotype selection by perturbation chooses from the supernet of the task's
    fold and seed (`PT_SOURCES[model_name]`), recorded in the task's `selection` stage."""
    search_dir = finished_search(run, PT_SOURCES[model_name])
    stage = run.task.run_dir(run.results_dir, SELECTION_STAGE)
    run.stages[SELECTION_STAGE], began = {"state": "finished" if RunDir(stage).is_finished() else "new"}, time.time()
    net_cfg, search_cfg, _ = search_configs(search_dir)
    if RunDir(stage).is_finished():
        model = None
    else:
        model = subnet.load_supernet(net_cfg, supernet_state(search_dir), resolve_device(run.search.device))
    search_cfg = dataclasses.replace(search_cfg, device=run.search.device)  # the task's device, not the search's
    genotype, _ = select_by_perturbation(model, run.fold, net_cfg, search_cfg, stage,
                                         PerturbationConfig(seed=run.task.seed), resume=True)
    run.stages[SELECTION_STAGE]["seconds"] = round(time.time() - began, 3)
    return genotype


def sweep_seeds(results_dir) -> list[int]:
    """The seeds the sweep in `results_dir` was asked for (its manifest's request)."""
    from emodarts_core.study.sweep.status import MANIFEST

    path = Path(results_dir) / MANIFEST
    try:
        return sorted(int(s) for s in json.loads(path.read_text(encoding="utf-8"))["request"]["seeds"])
    except (OSError, ValueError, KeyError, TypeError):
        raise FileNotFoundError(f"{path}: a consensus needs the sweep's manifest, which lists the seeds whose "
                                "searches it averages; run the consensus through run_sweep") from None


def consensus_of_seeds(run):
    """The consensus genotype of the task's fold over the sweep's seeds (fixed the first
    time in the task's genotype.json, with its sources in consensus.json)."""
    base = run.task.base_dir(run.results_dir)
    if (base / "genotype.json").is_file():
        return genotypes.load(base / "genotype.json")
    seeds = sweep_seeds(run.results_dir)
    dirs = [finished_search(run, "darts", seed) for seed in seeds]
    net_cfg, search_cfg, _ = search_configs(dirs[0])
    genotype = consensus_genotype([final_probs(d) for d in dirs], net_cfg, search_cfg)
    seed_genotypes = [genotypes.load(d / "genotype.json").to_dict() for d in dirs]
    rd = RunDir(base)
    rd.atomic_write_json(CONSENSUS, {"seeds": seeds, "searches": [str(d) for d in dirs],
                                     "rule": "parse of the mean over seeds of the last epoch's softmax(α)",
                                     "report": consensus_report(seed_genotypes, genotype.to_dict())})
    rd.atomic_write_text("genotype.json", genotypes.to_json(genotype) + "\n")
    return genotype


#: Added to a task's seed for the second retraining of the random architectures.
RESEED_OFFSET = 1000


def reseeded_random(run):
    """Architecture `arch` of the (fold, seed)'s random ones (the `random` control's), to be
    retrained under seed + `RESEED_OFFSET`: two stand-alone scores of the same
    architectures give the ceiling a supernet's ranking is read against
    (`emodarts_core.study.ranking.seed_ceiling`)."""
    from emodarts_core.space.sampling import random_genotypes

    task = run.task
    genotype = random_genotypes(run.network, task.arch + 1, seed=task.seed, fold=task.fold)[task.arch]
    run.train = dataclasses.replace(run.train, seed=task.seed + RESEED_OFFSET)
    base = run.task.base_dir(run.results_dir)
    if not (base / "genotype.json").is_file():
        RunDir(base).atomic_write_text("genotype.json", genotypes.to_json(genotype) + "\n")
    return genotypes.load(base / "genotype.json")


__all__ = ["CONSENSUS", "RESEED_OFFSET", "reseeded_random", "PT_SOURCES", "SELECTION_STAGE", "consensus_of_seeds", "finished_search",
           "search_dir_of", "selected_by_perturbation", "sweep_seeds"]
