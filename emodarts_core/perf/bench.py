"""Time full search steps of the supernet: `python -m emodarts_core.bench --preset paper --json`.

A search step is what the search loop does per batch: one alpha step (architect, first or
second order) on a validation batch, then one SGD weight step on a training batch. After
warm-up steps, the median of the timed steps is reported with the supernet's parameter
count, samples per second and peak memory: on CUDA the allocator's peak
(`torch.cuda.max_memory_allocated`), on CPU the peak resident set size during all steps (the kernel's
high-water mark on Linux, reset before each configuration; tracemalloc does not see torch's
allocations), both as an absolute figure and as the increase over the resident size of the
built model and data.

Every configuration is measured in both forms of the search space: the fast form
(`emodarts_core.fast`, what the search runs) and the plain PyTorch form
(`emodarts_core.space`, with `emodarts_core.fast` switched off), built from the same seed,
so with the same weights and alphas, in the same process one right after the other, at the
same preset, batch, order and device. The result carries both rows (the plain one under
"plain") and their same-run ratios: `speedup` (plain seconds / fast seconds),
`cpu_time_ratio` (the same for the process's CPU time) and `memory_ratio` (plain peak /
fast peak). Only these ratios back a speed-up claim (docs/PERFORMANCE.md): figures from
different runs differ with the machine's load. The plain form is exact DARTS without
checkpointing, so with `--checkpointing` its row runs without it (it says so), and a
PC-DARTS configuration (`--partial-channels K`, a different algorithm) gets no plain row.
`--no-plain` skips the plain row; `--plain-steps` / `--plain-warmup` give it fewer steps.

Also reported: the arithmetic floor (`emodarts_core.perf.arithmetic`): the fast step's
convolutions, matrix products and recurrences in GFLOP, this machine's matrix-product rate
measured in the same process, the seconds the one takes at the other (no kernel can beat
them) and the fraction of the measured step that is; `--no-floor` skips it. And the memory
estimator's prediction (`emodarts_core.darts.memory`) and its error against the measured
peak.  Options: several `--preset`s and `--order 1 2` in one run,
`--partial-channels K` (PC-DARTS, a different algorithm), `--profile` (top operators of the
last timed step by self CPU time), `--threads N`, `--json`. `--checkpointing` checkpoints
every mixed op; `--memory-budget GB` only the ones `darts.memory.plan_checkpointing` picks
to fit that budget (the search's `checkpointing="auto"` with `memory_budget_gb`).
`--params NAME` times the search step of a params profile (`emodarts_core/params/NAME.yaml`:
its network, batch, order and checkpointing; `study_settings`). Examples:

    python -m emodarts_core.bench --preset small paper --order 1 2 --checkpointing
    python -m emodarts_core.bench --params study_emodb --json   # the EmoDB study's step
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time

import torch

from emodarts_core import fast
from emodarts_core import params
from emodarts_core.config import PRESETS, ConfigError, SearchConfig, from_dict, preset
from emodarts_core.darts.memory import checkpoint_plan, estimate_search_memory, plan_checkpointing
from emodarts_core.perf.report import report
from emodarts_core.perf.resident import PeakRSS, rss_bytes
from emodarts_core.perf.step import arithmetic_floor, build_supernet, release_freed_memory, search_step
from emodarts_core.runtime import tuned_run
from emodarts_core.runtime.threads import openmp_wait_policy
from emodarts_core.training.device import Precision, configure_backends, resolve_device, synchronize

FORMS = ("fast", "plain")


def benchmark_network(preset_name: str = "paper", order: int = 1, batch: int = 16, steps: int = 3, warmup: int = 2,
                      checkpointing=False, device: str = "auto", amp: bool = True, log=None,
                      partial_channels: int = 1, profile: bool = False, estimate: bool = True,
                      form: str = "fast", floor: bool = False, network: dict | None = None) -> dict:
    """Time one form of the network: build the supernet of `preset_name`, time `steps` search steps
    after `warmup`; returns its figures.

    `form` "plain" runs the plain network (exact DARTS, no checkpointing) with every fast
    path off, the retained heap included; the estimator's prediction is made for the fast
    form only. `checkpointing`: True (every mixed
    op), False, or the names of the mixed ops to checkpoint (`plan_checkpointing`). `floor`
    adds the fast step's arithmetic floor (`arithmetic_floor`): its counted GFLOP, this
    machine's matrix-product rate, the seconds the one takes at the other, and the fraction
    of the measured step that is. `network`: overrides of the preset's `NetworkConfig` fields
    (a params profile's network section: `study_settings`).
    """
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; valid: {', '.join(FORMS)}")
    is_plain = form == "plain"
    if is_plain and partial_channels != 1:
        raise ValueError("the plain form is exact DARTS; PC-DARTS (partial_channels > 1) has no plain row")
    net_cfg = preset(preset_name, partial_channels=partial_channels, **(network or {}))
    cfg = SearchConfig(batch_size=batch, order=order, device=device, amp=amp).validate()
    if steps < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1 and warmup >= 0, got {steps}, {warmup}")
    dev = resolve_device(cfg.device)
    configure_backends(dev)
    precision = Precision(dev, cfg.amp)
    checkpointing = False if is_plain else checkpointing
    switch = fast.disabled() if is_plain else contextlib.nullcontext()
    release_freed_memory(dev)
    with switch:
        model = build_supernet(net_cfg, form, dev, checkpointing)
        edges = model.checkpointed_edges() if not is_plain else ()
        n_edges = len(model.mixed_ops()) if not is_plain else 0
        weights = list(model.weights())
        step = search_step(model, net_cfg, cfg, precision, dev, batch)

        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
        rss_before = rss_bytes()
        times, cpu_times = [], []
        table = None
        with tuned_run(dev.type == "cpu") as tuning, PeakRSS() as rss:
            for i in range(warmup + steps):
                if i == warmup and dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)
                t0, c0 = time.perf_counter(), time.process_time()
                if profile and i == warmup + steps - 1:
                    from torch.profiler import ProfilerActivity
                    from torch.profiler import profile as torch_profile
                    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
                    with torch_profile(activities=activities) as prof:
                        step()
                        synchronize(dev)
                    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)
                else:
                    step()
                synchronize(dev)
                seconds = time.perf_counter() - t0
                if i >= warmup:
                    times.append(seconds)
                    cpu_times.append(time.process_time() - c0)
                if log:
                    log(f"{form}: {'warm-up' if i < warmup else 'timed'} step {i + 1}/{warmup + steps}: "
                        f"{seconds:.2f} s")
    median = statistics.median(times)
    out = {
        "form": form,
        "preset": preset_name, "network_overrides": dict(network or {}), "order": order, "batch": batch, "input": [net_cfg.in_channels, *net_cfg.input_size],
        "checkpointing": bool(edges), "checkpointed_edges": list(edges), "n_edges": n_edges,
        "partial_channels": partial_channels, "device": str(dev),
        "precision": precision.describe(),
        "threads": tuning["threads"] if dev.type == "cpu" else torch.get_num_threads(),
        "omp_wait_policy": openmp_wait_policy(), "retained_heap": tuning["retained_heap"],
        "supernet_parameters": sum(p.numel() for p in weights),
        "alpha_parameters": sum(a.numel() for a in model.alphas()),
        "warmup_steps": warmup, "step_seconds": times, "seconds_per_step": median,
        "samples_per_second": batch / median,
        # CPU time of this process per step (all threads): on a CPU shared with other jobs,
        # cpu_seconds / threads is what the step would take unloaded with perfect scaling
        "cpu_seconds_per_step": statistics.median(cpu_times),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "peak_rss_mb": rss.peak / 2**20, "peak_rss_increase_mb": (rss.peak - rss_before) / 2**20,
        "peak_rss_method": rss.method,
    }
    if dev.type == "cuda":
        out["peak_cuda_allocated_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    del model, weights, step
    release_freed_memory(dev)
    if estimate and not is_plain:  # after the timed steps: its probe's heap leftovers must not count in their peak
        add_prediction(out, net_cfg, dev)
    if floor and not is_plain:  # after the timed steps, like the prediction
        out.update(arithmetic_floor(net_cfg, cfg, precision, dev, batch, checkpointing).as_dict(median))
    if table is not None:
        out["profile_table"] = table
    return out


def add_prediction(out: dict, net_cfg, dev: torch.device) -> None:
    """The memory estimator's prediction for the configuration of `out`, and its error."""
    predicted = estimate_search_memory(net_cfg, out["batch"], out["order"], out.get("checkpointed_edges", ()), dev)
    out["predicted_peak_mb"] = predicted.bytes / 2**20
    out["predicted_breakdown_mb"] = {k: v / 2**20 for k, v in predicted.breakdown.items()}
    out["prediction_error"] = out["predicted_peak_mb"] / peak_mb(out) - 1.0
    release_freed_memory(dev)


def peak_mb(r: dict) -> float:
    """The peak that a configuration's memory is compared by: CUDA's allocator peak on CUDA,
    the peak resident set size on CPU."""
    return r.get("peak_cuda_allocated_mb", r["peak_rss_mb"])


def compare(fast_row: dict, plain: dict) -> dict:
    """Same-run ratios of the plain row to the fast row: wall time (`speedup`), this
    process's CPU time over all threads (`cpu_time_ratio`, which another job's load on a shared
    CPU disturbs less than the wall time) and peak memory (`memory_ratio`)."""
    return {"speedup": plain["seconds_per_step"] / fast_row["seconds_per_step"],
            "cpu_time_ratio": plain["cpu_seconds_per_step"] / fast_row["cpu_seconds_per_step"],
            "memory_ratio": peak_mb(plain) / peak_mb(fast_row),
            "memory_measure": "peak_cuda_allocated_mb" if "peak_cuda_allocated_mb" in fast_row else "peak_rss_mb"}


def benchmark(preset_name: str = "paper", order: int = 1, batch: int = 16, steps: int = 3, warmup: int = 2,
              checkpointing=False, device: str = "auto", amp: bool = True, log=None,
              partial_channels: int = 1, profile: bool = False, estimate: bool = True,
              plain: bool = True, plain_steps: int | None = None,
              plain_warmup: int | None = None, floor: bool = False, network: dict | None = None) -> dict:
    """The fast form's figures (`benchmark_network`), then, in the same process, the plain
    form's at the same preset, batch, order and device under `"plain"`, with `"speedup"`
    and `"memory_ratio"` (plain / fast).

    `plain=False` skips it (`"plain"` is then None and `"plain_skipped"` says why), as does
    PC-DARTS (`partial_channels` > 1, which has no plain form). `plain_steps` /
    `plain_warmup` default to `steps` / `warmup`; `profile` applies to the fast row only. The estimator's prediction is made after both rows,
    so that what its probe leaves in the heap is in neither one's peak.
    """
    out = benchmark_network(preset_name, order, batch, steps, warmup, checkpointing, device, amp, log=log,
                            partial_channels=partial_channels, profile=profile, estimate=False, floor=floor,
                            network=network)
    out["plain"] = None
    if not plain:
        out["plain_skipped"] = "--no-plain"
    elif partial_channels != 1:
        out["plain_skipped"] = "PC-DARTS (partial channels) is a different algorithm; the plain form is exact DARTS"
    else:
        plain_row = benchmark_network(preset_name, order, batch, steps if plain_steps is None else plain_steps,
                                      warmup if plain_warmup is None else plain_warmup, False, device, amp, log=log,
                                      estimate=False, form="plain", network=network)
        out["plain"] = plain_row
        out.update(compare(out, plain_row))
    if estimate:
        add_prediction(out, preset(preset_name, partial_channels=partial_channels, **(network or {})),
                       torch.device(out["device"]))
    return out


def study_settings(name: str) -> tuple[str, dict, SearchConfig]:
    """The step a params profile's search runs (`emodarts_core/params/NAME.yaml`): its
    network preset, that preset's overrides, and its search settings, validated, so that the
    bench times the study's own step (`--params study_emodb`: the EmoDB study's; see
    docs/PERFORMANCE.md, "The study's step"). The bench's step is the search's alpha step and
    weight step at the profile's batch, order and checkpointing; per-epoch work (the data
    loader, a collapse remedy's per-epoch updates, logging) is not in it. A profile without
    a network or search section, or with unknown keys, is a ConfigError naming the file."""
    try:
        data = params.load(name)
    except KeyError as error:
        raise ConfigError(error.args[0]) from None
    where = params.path(name)
    if not isinstance(data, dict) or not isinstance(data.get("network"), dict) or "search" not in data:
        raise ConfigError(f"{where}: needs a network section (preset and overrides) and a search section "
                          "for the bench to time its search step")
    network = {k: tuple(v) if isinstance(v, list) else v for k, v in data["network"].items()}
    base = network.pop("preset", "paper")
    try:
        preset(base, **network)
        search = from_dict(SearchConfig, dict(data["search"] or {}))
    except (ConfigError, TypeError) as error:
        raise ConfigError(f"{where}: {error}") from None
    return base, network, search


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--stack" in argv:  # K stacked searches against K single ones (perf/stacking.py)
        from emodarts_core.perf import stacking
        return stacking.main(argv)
    parser = argparse.ArgumentParser(prog="python -m emodarts_core.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--params", metavar="NAME", default=None,
                        help="time the search step of params profile NAME (e.g. study_emodb): its network, "
                             "batch, order and checkpointing, instead of --preset, --order and --batch")
    parser.add_argument("--preset", choices=sorted(PRESETS), nargs="+", default=None,
                        help="one or more presets (default: paper)")
    parser.add_argument("--order", type=int, choices=(1, 2), nargs="+", default=None, help="1, 2 or both (default: 1)")
    parser.add_argument("--partial-channels", type=int, default=1,
                        help="PC-DARTS K (a different algorithm; 1 = exact DARTS)")
    parser.add_argument("--profile", action="store_true", help="print the top operators of the last step")
    parser.add_argument("--no-estimate", action="store_true", help="skip the memory estimator's prediction")
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the arithmetic floor (the step's counted GFLOP at this machine's matrix-product rate)")
    parser.add_argument("--batch", type=int, default=None, help="default: 16")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed steps first (the CPU heap settles on its blocks within two)")
    ckpt = parser.add_mutually_exclusive_group()
    ckpt.add_argument("--checkpointing", action="store_true", help="activation checkpointing of every mixed op")
    ckpt.add_argument("--memory-budget", type=float, nargs="+", default=None, metavar="GB",
                      help="checkpoint only the mixed ops needed to fit this many GiB (plan_checkpointing); "
                           "several budgets are timed one after the other in this process (inf: no edge, "
                           "0: every edge)")
    parser.add_argument("--no-plain", action="store_true",
                        help="skip the plain form (no same-run speed-up then)")
    parser.add_argument("--plain-steps", type=int, default=None,
                        help="timed steps of the plain form (default: --steps)")
    parser.add_argument("--plain-warmup", type=int, default=None,
                        help="untimed steps of the plain form (default: --warmup)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-amp", action="store_true", help="float32 on CUDA too")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", action="store_true",
                        help="print JSON instead of text: one object, or a list for several presets/orders")
    args = parser.parse_args(argv)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True))  # stdout keeps only the result
    network = None
    if args.params is not None:
        given = [flag for flag, value in (("--preset", args.preset), ("--order", args.order), ("--batch", args.batch),
                                          ("--checkpointing", args.checkpointing or None),
                                          ("--memory-budget", args.memory_budget)) if value is not None]
        if given:
            parser.error(f"--params {args.params} sets the network, batch, order and checkpointing; "
                         f"drop {', '.join(given)}")
        try:
            base, network, search = study_settings(args.params)
        except ConfigError as error:
            parser.error(str(error))
        args.preset, args.order, args.batch = [base], [search.order], search.batch_size
        plan = checkpoint_plan(preset(base, partial_channels=args.partial_channels, **network), search,
                               resolve_device(args.device))
        args.checkpointing = plan.edges or False
        log(f"--params {args.params}: preset {base} with {network or 'no overrides'}, batch {search.batch_size}, "
            f"order {search.order}, checkpointing {search.checkpointing!r} ({len(plan.edges)} edges)")
    args.preset, args.order = args.preset or ["paper"], args.order or [1]
    args.batch = 16 if args.batch is None else args.batch
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for name in args.preset:
        for order in args.order:
            for budget_gb in args.memory_budget or [None]:
                checkpointing = args.checkpointing
                if budget_gb is not None and math.isinf(budget_gb):
                    checkpointing = ()
                    log(f"{name}, order {order}: no memory budget, no edge checkpointed")
                elif budget_gb is not None:
                    plan = plan_checkpointing(preset(name, partial_channels=args.partial_channels, **(network or {})),
                                              args.batch,
                                              order, resolve_device(args.device), int(budget_gb * 2**30))
                    log(f"{name}, order {order}, budget {budget_gb:g} GiB: {plan.describe()}")
                    checkpointing = plan.edges
                results.append(benchmark(name, order, args.batch, args.steps, args.warmup, checkpointing,
                                         args.device, not args.no_amp, log=log,
                                         partial_channels=args.partial_channels, profile=args.profile,
                                         estimate=not args.no_estimate, plain=not args.no_plain,
                                         plain_steps=args.plain_steps, plain_warmup=args.plain_warmup, floor=not args.no_floor,
                                         network=network))
                if args.params is not None:
                    results[-1]["params"] = args.params
                if budget_gb is not None:  # None for inf, which JSON cannot hold
                    results[-1]["memory_budget_gb"] = None if math.isinf(budget_gb) else budget_gb
                if not args.json:
                    print(report(results[-1]), flush=True)
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
