"""`python -m emodarts_core.bench --stack K ...`: K stacked searches against K single ones.

A stacked search (`darts.stacked`, docs/PERFORMANCE.md "Many searches in one step") runs
K searches through one network. This bench times, side by side in one process with the
two arms alternating, one search step (the α step and the weight step, as
`perf.step.search_step` takes it) of

- the stack: K copies in one `StackedSearchNetwork` (`darts.stacked_step`), and
- K separate searches of the fast form (the form a single search runs), one after another,

and reports for each K and thread count: seconds per step of each arm (median), the
per-search throughput of each (searches' steps per second) and their ratio, the memory
per search (a stacked search: the stack's network and optimiser tensors plus its step's
peak resident growth, divided by K; a separate search: its own tensors plus the peak
growth of its own step, since a single search holds one step's activations; the
process's resident torch, which K single processes would hold K times, is reported
apart as `process_mb`), and
the fraction of this machine's matrix-product rate that the stack's counted arithmetic
(K times one search's step, `perf.arithmetic.count_flops`) reaches. Both arms' steps are
timed with freed memory kept in the heap (`runtime.retained_heap`), as a search's epochs
run them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

from emodarts_core.config import ConfigError, SearchConfig, preset
from emodarts_core.darts.collapse import beta_decay_loss
from emodarts_core.darts.stacked_step import StackedArchitect, weight_step
from emodarts_core.fast.stacked_network import StackedSearchNetwork
from emodarts_core.perf.arithmetic import count_flops, matmul_gflops
from emodarts_core.perf.resident import PeakRSS, rss_bytes
from emodarts_core.perf.step import build_supernet, search_step
from emodarts_core.runtime import retained_heap
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.training.device import Precision


def _state_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def stacked_step(net_cfg, cfg: SearchConfig, K: int, batch: int, dev: torch.device):
    """(step, bytes of its network and optimiser state): one stacked step of K searches."""
    nets = []
    for k in range(K):
        torch.manual_seed(k)
        nets.append(SearchNetwork(net_cfg))
    model = StackedSearchNetwork(nets).to(dev)
    del nets
    weights = list(model.weights())
    w_optim = torch.optim.SGD(weights, lr=cfg.w_lr, momentum=cfg.w_momentum, weight_decay=cfg.w_weight_decay)
    architect = StackedArchitect(model, cfg.w_momentum, cfg.w_weight_decay, cfg.alpha_lr, cfg.alpha_betas,
                                 cfg.alpha_weight_decay)
    gen = torch.Generator().manual_seed(1)
    shape = (K, batch, net_cfg.in_channels, *net_cfg.input_size)
    tx, vx = torch.randn(shape, generator=gen).to(dev), torch.randn(shape, generator=gen).to(dev)
    ty = torch.randint(0, net_cfg.n_classes, (K, batch), generator=gen).to(dev)
    vy = torch.randint(0, net_cfg.n_classes, (K, batch), generator=gen).to(dev)
    copies = list(range(K))
    penalty = beta_decay_loss if cfg.collapse_remedy == "beta_decay" else None

    def step():
        architect.step(tx, ty, vx, vy, cfg.w_lr, w_optim, cfg.order, copies, penalty, 1.0)
        weight_step(model, weights, tx, ty, w_optim, cfg.w_grad_clip, copies)

    step()  # creates the optimisers' state
    state = list(model.parameters()) + list(model.buffers())
    state += [v for s in list(w_optim.state.values()) + list(architect.optimizer.state.values())
              for v in s.values() if torch.is_tensor(v)]
    return step, _state_bytes(state)


def separate_steps(net_cfg, cfg: SearchConfig, K: int, batch: int, dev: torch.device):
    """(step, bytes of the networks and optimisers' state): K single searches' steps in turn."""
    precision = Precision(dev, False)
    models = [build_supernet(net_cfg, "fast", dev, ()) for _ in range(K)]
    steps = [search_step(m, net_cfg, cfg, precision, dev, batch) for m in models]

    def step():
        for s in steps:
            s()

    step()
    state = sum(_state_bytes(list(m.parameters()) + list(m.buffers())) * 3 for m in models)  # + momentum, grads
    return step, state


def _timed(step, dev: torch.device) -> float:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    began = time.perf_counter()
    step()
    if dev.type == "cuda":  # the step's kernels, not their launch
        torch.cuda.synchronize(dev)
    return time.perf_counter() - began


def _peak_growth(step) -> int:
    with PeakRSS() as peak:
        before = peak.peak
        step()
    return max(0, peak.peak - before)


def compare(net_cfg, cfg: SearchConfig, K: int, batch: int, steps: int, dev: torch.device, rate: float | None) -> dict:
    """The two arms at K, alternating, `steps` timed steps each after one warm-up."""
    stacked, stacked_bytes = stacked_step(net_cfg, cfg, K, batch, dev)
    separate, separate_bytes = separate_steps(net_cfg, cfg, K, batch, dev)
    times = {"stacked": [], "separate": []}
    # both arms' steps as a search takes them: with freed memory kept in the heap, as a
    # run's epochs keep it (`training.run.Run.epochs`, `runtime.retained_heap`); without it,
    # a K = 8 stacked step took some 30 000 page faults (docs/PERFORMANCE.md)
    with retained_heap(dev.type == "cpu"):
        for _ in range(steps):
            times["stacked"].append(_timed(stacked, dev))
            times["separate"].append(_timed(separate, dev))
    growth = {"stacked": _peak_growth(stacked), "separate": _peak_growth(separate)}
    s, p = statistics.median(times["stacked"]), statistics.median(times["separate"])
    out = {"K": K, "threads": torch.get_num_threads(), "stacked_s": s, "separate_s": p,
           "per_search_steps_per_s": {"stacked": K / s, "separate": K / p}, "speedup": p / s,
           "memory_per_search_mb": {"stacked": (stacked_bytes + growth["stacked"]) / K / 2**20,
                                    "separate": (separate_bytes / K + growth["separate"]) / 2**20},
           "process_mb": rss_bytes() / 2**20,
           "timings": times}
    if rate:
        single = SearchNetwork(net_cfg).to(dev)
        flops = count_flops(search_step(single, net_cfg, cfg, Precision(dev, False), dev, batch)).total
        out["matmul_fraction"] = {"stacked": K * flops / s / 1e9 / rate, "separate": K * flops / p / 1e9 / rate}
        out["gflop_per_search_step"] = flops / 1e9
    return out


def _settings(args):
    from emodarts_core.perf.bench import study_settings  # the profile reader of the step bench

    if args.params:  # the profile's step; --batch, if given, replaces its batch
        base, network, search = study_settings(args.params)
        return preset(base, **network), search, args.batch or search.batch_size
    return preset(args.preset), SearchConfig(order=args.order, device="cpu"), args.batch or 16


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emodarts_core.bench --stack", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", type=int, nargs="+", required=True, metavar="K", help="copies per stack")
    parser.add_argument("--params", default=None, help="a params profile's step (e.g. study_emodb_v2)")
    parser.add_argument("--preset", default="small", help="without --params: a network preset")
    parser.add_argument("--order", type=int, default=1, choices=(1, 2))
    parser.add_argument("--batch", type=int, default=None, help="per search (default: the profile's, else 16)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per arm (median)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-floor", action="store_true", help="skip the arithmetic count and matmul rate")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        net_cfg, cfg, batch = _settings(args)
    except ConfigError as error:
        parser.error(str(error))
    dev = torch.device(args.device)
    results = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        rate = None if args.no_floor else matmul_gflops(dev)
        for K in args.stack:
            row = compare(net_cfg, cfg, K, batch, args.steps, dev, rate)
            row.update({"device": str(dev), "load_1min": os.getloadavg()[0], "matmul_gflops": rate})
            results.append(row)
            if not args.json:
                mem = row["memory_per_search_mb"]
                frac = row.get("matmul_fraction", {})
                print(f"K={K:2d} threads={threads}: stacked {row['stacked_s']:.3f} s/step, separate "
                      f"{row['separate_s']:.3f} s/step, per-search throughput x{row['speedup']:.2f}; memory per "
                      f"search {mem['stacked']:.0f} vs {mem['separate']:.0f} MB; matmul rate "
                      f"{100 * frac.get('stacked', float('nan')):.1f} % vs {100 * frac.get('separate', float('nan')):.1f} %"
                      f" (load {row['load_1min']:.1f})", flush=True)
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    return 0


__all__ = ["compare", "main", "separate_steps", "stacked_step"]
