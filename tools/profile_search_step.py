"""The search step counted in operator calls, against what one call costs (docs/PERFORMANCE.md).

    python tools/profile_search_step.py --params study_emodb_v2

The bench (`python -m emodarts_core.bench --params NAME`) times the search step and its
arithmetic floor. Where a step runs at a small fraction of the matrix-product rate, its
time goes to the calls it makes, not to its arithmetic; this tool counts them. On one
thread, with the bench's network and step (`perf.step.build_supernet`, `search_step`: an α step
and a weight step at the profile's batch and order), it prints

- the step's CPU seconds (median of `--steps` after `--warmup`);
- the aten operator calls it dispatches below autograd (forward, backward, optimiser),
  the same for the network without its SeqNN cells, and the CPU microseconds per call;
- the cost of one small differentiable operation from Python, forward and backward (a
  chain of multiplies of a [16, 16] tensor): torch's per-call cost on this machine;
- the calls a step may make at that cost to take `--target` of the matrix-product rate
  (the step's counted arithmetic at the rate the bench measures, divided by the target);
- the operators and source lines that make the most calls (the innermost frame of
  `emodarts_core` or torch that made each call; "autograd engine" for the backward of
  torch's own operators).

The counts come from one step run under a `TorchDispatchMode`, which slows it; the
seconds come from steps run without it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from emodarts_core.config import SearchConfig, preset  # noqa: E402
from emodarts_core.runtime import retained_heap  # noqa: E402
from emodarts_core.perf import bench  # noqa: E402
from emodarts_core.perf.step import arithmetic_floor, build_supernet, search_step  # noqa: E402
from emodarts_core.training.device import Precision  # noqa: E402

#: torch's own frames that name a call's source (its modules, functional API, optimisers);
#: its other frames (the dispatch mode's guards, Function.apply, Module.__call__) only pass it on
_TORCH_SOURCES = ("torch/nn/", "torch/optim/", "torch/functional.py")
_TORCH_PASSING = ("torch/nn/modules/module.py",)
AUTOGRAD_ENGINE = "autograd engine"


def call_source(frames) -> str:
    """Where a dispatched call came from: the innermost frame of emodarts_core, or of
    torch's modules, functional API or optimisers, as `path:line function` (the path from
    its package root). A call whose innermost such frame is torch's backward engine is the
    backward of one of torch's operators (custom Functions' backwards are Python and show
    their own line). `frames`: (file name, line, function) from the innermost frame out."""
    for filename, line, function in frames:
        name = filename.replace("\\", "/")
        if "torch/autograd/graph.py" in name:
            return AUTOGRAD_ENGINE
        if "emodarts_core/" in name:
            return f"emodarts_core/{name.split('emodarts_core/', 1)[1]}:{line} {function}"
        if "torch/" in name:
            path = "torch/" + name.rsplit("torch/", 1)[1]
            if path.startswith(_TORCH_SOURCES) and not path.startswith(_TORCH_PASSING):
                return f"{path}:{line} {function}"
    return "other"


def _frames():
    """(file name, line, function) of the calling frames, innermost first, without reading
    source files (`traceback.extract_stack` would)."""
    frame = sys._getframe(1)
    while frame is not None:
        yield frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back


class _CallCounter(TorchDispatchMode):
    """Counts every aten call dispatched while active, by (operator, `call_source`)."""

    def __init__(self, sources: bool):
        super().__init__()
        self.sources = sources
        self.calls: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        source = call_source(_frames()) if self.sources else ""
        self.calls[(func.__name__, source)] += 1
        return func(*args, **(kwargs or {}))


def count_calls(step, sources: bool = True) -> Counter:
    """The aten calls one run of `step()` dispatches, by (operator overload, source)."""
    with _CallCounter(sources) as counter:
        step()
    return counter.calls


def small_op_seconds(n: int = 1000, repeats: int = 20) -> tuple[float, float]:
    """(forward and backward, forward alone) CPU seconds of one elementwise multiply of a
    [16, 16] tensor called from Python, the median over `repeats` chains of `n`."""
    x = torch.randn(16, 16, requires_grad=True)

    def chain():
        y = x
        for _ in range(n):
            y = y * 1.0001
        return y

    def both():
        chain().sum().backward()

    def forward():
        with torch.no_grad():
            chain()

    both()
    forward()
    return (statistics.median(cpu_seconds(both, repeats)) / n,
            statistics.median(cpu_seconds(forward, repeats)) / n)


def cpu_seconds(run, times: int) -> list[float]:
    """The CPU seconds of each of `times` calls of `run()`."""
    out = []
    for _ in range(times):
        start = time.process_time()
        run()
        out.append(time.process_time() - start)
    return out


def _step_of(net_cfg, search_cfg: SearchConfig):
    dev = torch.device("cpu")
    model = build_supernet(net_cfg, "fast", dev, False)
    return model, search_step(model, net_cfg, search_cfg, Precision(dev, False), dev, search_cfg.batch_size)


def profile_step(net_cfg, search_cfg: SearchConfig, steps: int = 5, warmup: int = 2, top: int = 20,
                 target: float = 0.25, floor: bool = True) -> dict:
    """The figures the module docstring lists, as a dict (one thread; the caller sets it)."""
    _, step = _step_of(net_cfg, search_cfg)
    with retained_heap(True):
        for _ in range(warmup):
            step()
        seconds = cpu_seconds(step, steps)
        calls = count_calls(step)
    step_seconds = statistics.median(seconds)
    n_calls = sum(calls.values())
    out = {"cpu_seconds_per_step": step_seconds, "step_seconds": seconds, "aten_calls": n_calls,
           "microseconds_per_call": 1e6 * step_seconds / n_calls}
    if net_cfg.seq_cells:
        _, cnn_step = _step_of(dataclasses.replace(net_cfg, seq_cells=0), search_cfg)
        cnn_step()  # the first step allocates the optimisers' state
        out["aten_calls_without_seq_cells"] = sum(count_calls(cnn_step, sources=False).values())
    both, forward = small_op_seconds()
    out["small_op_microseconds"] = {"forward_and_backward": 1e6 * both, "forward": 1e6 * forward}
    if floor:
        dev = torch.device("cpu")
        step_floor = arithmetic_floor(net_cfg, search_cfg, Precision(dev, False), dev,
                                            search_cfg.batch_size, False)
        out.update(step_floor.as_dict(step_seconds))
        out.update(target=target, calls_allowed_at_target=int(step_floor.seconds / target / both))
    by_source: Counter = Counter()
    for (op, source), n in calls.items():
        by_source[source] += n
    out["top_calls"] = [{"op": op, "source": source, "calls": n} for (op, source), n in calls.most_common(top)]
    out["top_sources"] = [{"source": s, "calls": n} for s, n in by_source.most_common(top)]
    return out


def report(out: dict) -> str:
    """The figures of `profile_step` as text."""
    small = out["small_op_microseconds"]
    lines = [f"step: {out['cpu_seconds_per_step']:.3f} CPU s (median of {len(out['step_seconds'])}, one thread)",
             f"aten calls per step: {out['aten_calls']:,}"
             + (f" ({out['aten_calls_without_seq_cells']:,} without the SeqNN cells)"
                if "aten_calls_without_seq_cells" in out else ""),
             f"CPU per call: {out['microseconds_per_call']:.1f} us; one small differentiable op from Python: "
             f"{small['forward_and_backward']:.1f} us forward and backward, {small['forward']:.1f} us forward"]
    if "arithmetic_floor_seconds" in out:
        lines += [f"arithmetic: {out['gflop_per_step']:.2f} GFLOP at {out['matmul_gflops']:.0f} GFLOP/s = "
                  f"{out['arithmetic_floor_seconds'] * 1000:.1f} ms, {out['fraction_of_matmul_rate']:.3f} of the step",
                  f"a step at {out['target']:.2f} of the matmul rate "
                  f"({out['arithmetic_floor_seconds'] / out['target'] * 1000:.0f} ms) has room for "
                  f"{out['calls_allowed_at_target']:,} small ops at that cost"]
    lines.append("calls by source:")
    lines += [f"  {r['calls']:7,}  {r['source']}" for r in out["top_sources"]]
    lines.append("calls by operator and source:")
    lines += [f"  {r['calls']:7,}  {r['op']:<28} {r['source']}" for r in out["top_calls"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="study_emodb_v2", help="params profile whose search step to count")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--top", type=int, default=20, help="rows of the two tables")
    parser.add_argument("--target", type=float, default=0.25, help="fraction of the matmul rate to size the calls for")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    base, overrides, search_cfg = bench.study_settings(args.params)
    out = profile_step(preset(base, **overrides), search_cfg, args.steps, args.warmup, args.top, args.target)
    out["params"] = args.params
    print(json.dumps(out, indent=1) if args.json else report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
