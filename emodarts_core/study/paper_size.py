"""The cost of the EmoDB searches at the paper's own size, estimated before they start.

The study's searches run in a small space (32 x 32 first maps). The paper searches at
128 x 128 (preset `paper`); `params/study_emodb_v3_paper.yaml` runs that size for 2 seeds
on folds 1 and 5 with the same budget in α steps. On a CPU it takes hours, so this module
says how many before anything starts: it times the profile's own search step with the
bench (`emodarts_core.perf.bench.benchmark_network`: an α step and a weight step at the
profile's batch, order and checkpointing, on this machine), predicts the step's peak
memory (`darts.memory`, through the bench), and multiplies the step time by the steps of
every search the sweep would run (`darts.budget`: warm-up epochs of weight steps, then
enough epochs for the α-step budget, at the steps per epoch that the fold's search split
gives). The searched model and the prior control search once per (fold, seed); the
prior's steps have no α step, so counting them as full steps makes the estimate an upper
bound. End-of-epoch evaluations and retrainings are not counted.

    python -m emodarts_core.study.paper_size --params study_emodb_v3_paper --folds 1 5 --seeds 0 1
"""

from __future__ import annotations

import argparse
import dataclasses

from emodarts_core.config import to_dict
from emodarts_core.darts.budget import search_budget, steps_per_epoch

#: Utterances in an EmoDB fold's search split (fold 1 of the reference folds, 4 classes).
EMODB_SEARCH_UTTERANCES = 181


def search_steps(search_cfg, n_search: int = EMODB_SEARCH_UTTERANCES) -> int:
    """Steps of one search: epochs × steps per epoch for a search split of `n_search`
    utterances halved into weight and α halves (`run_search`)."""
    half = n_search // 2
    steps = steps_per_epoch(n_search - half, half, search_cfg.batch_size)
    return search_budget(search_cfg, steps).epochs * steps


def estimate(params_name: str, folds, seeds, *, searches_per_cell: int = 2, n_search: int = EMODB_SEARCH_UTTERANCES,
             bench_steps: int = 2, bench_warmup: int = 1, device: str = "auto", bench=None) -> dict:
    """The profile's step time and memory on this machine and the searches' total hours.

    `bench` replaces `benchmark_network` (same keyword arguments), for a test."""
    from emodarts_core.perf.bench import benchmark_network
    from emodarts_core.study.sweep import load_params

    params = load_params(params_name)
    net_cfg = params.network_for(params.controls.scope)
    search = params.search
    overrides = {k: v for k, v in to_dict(net_cfg).items() if k not in ("scope", "partial_channels")}
    timed = (bench or benchmark_network)(preset_name="paper", order=search.order, batch=search.batch_size,
                                         steps=bench_steps, warmup=bench_warmup, device=device, amp=search.amp,
                                         checkpointing=search.checkpointing == "on", network=overrides,
                                         partial_channels=net_cfg.partial_channels)
    step_s = float(timed["seconds_per_step"])
    per_search = search_steps(search, n_search)
    n_searches = len(list(folds)) * len(list(seeds)) * searches_per_cell
    peak = timed.get("peak_cuda_allocated_mb", timed.get("peak_rss_mb"))
    return {"params": params_name, "network": to_dict(net_cfg), "device": timed.get("device"),
            "step_seconds": step_s, "peak_mb": peak, "predicted_peak_mb": timed.get("predicted_peak_mb"),
            "steps_per_search": per_search, "searches": n_searches,
            "hours_per_search": step_s * per_search / 3600, "hours_total": step_s * per_search * n_searches / 3600,
            "frozen_prior_counted_as_full_steps": True,
            "search": dataclasses.asdict(search) | {"alpha_betas": list(search.alpha_betas)}}


def describe(out: dict) -> str:
    peak = "" if out.get("peak_mb") is None else f", peak {out['peak_mb']:.0f} MB"
    return (f"{out['params']}: {out['step_seconds']:.2f} s per search step on {out['device']}{peak}; "
            f"{out['steps_per_search']} steps per search; {out['searches']} searches: "
            f"{out['hours_per_search']:.2f} h each, {out['hours_total']:.1f} h in all (an upper bound: the prior's "
            "steps have no α step; evaluations and retrainings not counted)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emodarts_core.study.paper_size",
                                     description="Estimate the paper-size searches' cost before they start.")
    parser.add_argument("--params", default="study_emodb_v3_paper")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bench-steps", type=int, default=2)
    args = parser.parse_args(argv)
    print(describe(estimate(args.params, args.folds, args.seeds, bench_steps=args.bench_steps, device=args.device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
