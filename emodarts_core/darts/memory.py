"""Predict the peak memory of a search step before running it.

`estimate_search_memory(net_cfg, batch_size, order=1, checkpointing=False, device="cpu")`
builds the supernet (no data needed), runs one forward and backward pass on a small probe
batch at the full input size, and counts the bytes autograd saves for backward through
`torch.autograd.graph.saved_tensors_hooks` (each storage once), separately inside each
mixed op.  Activations scale linearly with the batch (every op in the supernet works per
sample), so

    peak ~ overhead * (activations(batch) + state) + runtime

with state = parameters + gradients + SGD momentum (+ Adam's two moments for the alphas),
plus, for second order, the copies the architect holds at once (virtual weights w', their
gradient, one shifted weight set and its gradients).  With activation checkpointing (of
the CNN and SeqNN mixed ops) the activations kept are those outside the mixed ops (cell
preprocessing, node sums, the adapter and head) plus the mixed ops' inputs, plus twice
the largest mixed op's (recomputed one at a time in backward, next to its gradients).
Checkpointing can also cover only some edges (`SearchNetwork.set_checkpointing(names)`):
the same terms then count only the chosen edges, and `plan_checkpointing` chooses the
edges so that the step fits a memory budget for the least recomputation (below).

`overhead` (allocator slack, transient gradient buffers of the backward) and `runtime`
(the interpreter, torch's libraries and thread pools, on CPU) were calibrated once against
`python -m emodarts_core.bench` peak RSS on the 2-core CPU of the project; on CUDA the
runtime term is 0 and the prediction is of `torch.cuda.max_memory_allocated`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from emodarts_core.config import NetworkConfig, SearchConfig, to_dict
from emodarts_core.networks import search_network
from emodarts_core.space.search_network import SearchNetwork

# Calibrated on the project's 2-core CPU against bench's peak RSS (presets small and
# paper, batch 16, orders 1 and 2). Parameters and buffers that autograd saves are counted
# once, with the state, not per sample. Without checkpointing the saved-tensor count is
# already an upper bound (the peak is at the start of backward, where every saved tensor
# is alive): factor 1.0. With it, each mixed op's activations are allocated again in
# backward, which fragments glibc's heap a little: factor 1.1.
CPU_OVERHEAD = {False: 1.0, True: 1.1}
CUDA_OVERHEAD = {False: 1.1, True: 1.2}
CPU_RUNTIME_BYTES = 330 * 2**20


@dataclass
class MemoryEstimate:
    """Predicted peak memory of one search step; `bytes` is the total, `breakdown` its terms."""

    bytes: int
    breakdown: dict = field(default_factory=dict)
    device: str = "cpu"

    @property
    def gib(self) -> float:
        return self.bytes / 2**30

    def fits(self, device=None, available: int | None = None) -> tuple[bool, str]:
        """Whether the step fits `device` (default: the one estimated for); (ok, message).

        `available` overrides the memory found on the device: free CUDA memory, or on CPU
        the available system memory (psutil, else /proc/meminfo).
        """
        dev = torch.device(device or self.device)
        if available is None:
            available = _available_bytes(dev)
        need = f"{self.bytes / 2**30:.2f} GiB"
        if available is None:
            return True, f"predicted peak {need}; could not read the memory available on {dev}"
        have = f"{available / 2**30:.2f} GiB"
        if self.bytes <= available:
            return True, f"predicted peak {need} fits the {have} available on {dev}"
        return False, (f"predicted peak {need} exceeds the {have} available on {dev}: use activation "
                       "checkpointing, a smaller batch, first order, or partial channels")


def _available_bytes(dev: torch.device) -> int | None:
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        return read_proc_bytes("/proc/meminfo", "MemAvailable")


def read_proc_bytes(path: str, field: str) -> int | None:
    """The `field:  N kB` line of a /proc file, in bytes; None where the file or field is missing."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _storage_key(t: torch.Tensor):
    if t.layout == torch.strided and not t.is_mkldnn:
        storage = t.untyped_storage()
        return (storage.data_ptr(), t.device), storage.nbytes()
    return id(t), t.numel() * t.element_size()


class _SavedCounter:
    """Bytes of the distinct storages autograd saves for backward, per region, leaving out
    the `known` tensors (parameters and buffers: counted once, and not per sample)."""

    def __init__(self, known=()):
        self.seen: set = {_storage_key(t)[0] for t in known}
        self.total = 0

    def pack(self, t: torch.Tensor):
        key, size = _storage_key(t)
        if key not in self.seen:
            self.seen.add(key)
            self.total += size
        return t


def activation_bytes(net_cfg: NetworkConfig, probe_batch: int = 2, checkpointing: bool = False) -> dict:
    """Saved-for-backward bytes of one forward at `probe_batch`: total and per mixed op.

    Returns {"total", "edges" (sum over the CNN and SeqNN mixed ops, the part checkpointing
    recomputes), "max_edge", "probe_batch", parameter bytes, "per_edge"}; each storage is
    counted once (the ReLU of a state shared by several ops, views, ...). "per_edge" maps each mixed op's
    name (`SearchNetwork.mixed_ops`) to its saved bytes, its input storages ((id, bytes)
    pairs: edges leaving one state share them) and the seconds of its forward at the
    probe batch (what checkpointing it costs again in backward). With `checkpointing` the
    cells run as they do under it (each edge computes its own pools, inside the part that
    is recomputed). The probe runs once per configuration, mode and probe batch; estimates
    for any batch share it.
    """
    return _activation_bytes(dataclasses.replace(net_cfg).validate(), probe_batch, checkpointing)


def _activation_bytes(net_cfg: NetworkConfig, probe_batch: int, checkpointing) -> dict:
    """`activation_bytes` of a configuration validated already."""
    return dict(_probe(json.dumps(to_dict(net_cfg), sort_keys=True), probe_batch, bool(checkpointing)))


def _tensor_args(args):
    for a in args:
        if isinstance(a, (tuple, list)):
            yield from _tensor_args(a)
        elif isinstance(a, torch.Tensor) and a.dim() > 1:
            yield a


@functools.lru_cache(maxsize=8)
def _probe(net_cfg_json: str, probe_batch: int, checkpointing: bool) -> dict:
    # the cache's key is the JSON of a configuration its caller validated: rebuilt, not checked again
    net_cfg = NetworkConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(net_cfg_json).items()})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = search_network(net_cfg, share_pools=not checkpointing)
        x = torch.randn(probe_batch, net_cfg.in_channels, *net_cfg.input_size)
        y = torch.zeros(probe_batch, dtype=torch.long)
    known = [*net.parameters(), *net.buffers()]
    counter = _SavedCounter(known)
    known_keys = set(counter.seen)  # the parameters' and buffers' storages, before anything is saved
    per_edge: dict[str, dict] = {name: {"seconds": 0.0} for name in net.mixed_ops()}
    marks: list[int] = []

    def pre(name, args):
        marks.append(counter.total)
        per_edge[name]["inputs"] = [(str(key), size) for key, size in map(_storage_key, _tensor_args(args))
                                    if key not in known_keys]

    def post(name):
        per_edge[name]["bytes"] = counter.total - marks.pop()

    with _edge_hooks(net, pre, post), torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda t: t):
        loss = net.loss(x, y)
    loss.backward()
    _time_edges(net, x, per_edge)
    sizes = [e["bytes"] for e in per_edge.values()]
    return {"total": counter.total, "edges": sum(sizes), "max_edge": max(sizes, default=0),
            "probe_batch": probe_batch, "weight_bytes": _nbytes(net.weights()),
            "alpha_bytes": _nbytes(net.alphas()), "buffer_bytes": _nbytes(net.buffers()), "per_edge": per_edge}


@contextlib.contextmanager
def _edge_hooks(net, pre: Callable[[str, tuple], None], post: Callable[[str], None]):
    """Within the block, `pre(name, args)` runs before and `post(name)` after the forward of
    each mixed op of `net` (`SearchNetwork.mixed_ops`)."""
    handles = []
    for name, module in net.mixed_ops().items():
        handles.append(module.register_forward_pre_hook(lambda m, args, name=name: pre(name, args)))
        handles.append(module.register_forward_hook(lambda m, args, out, name=name: post(name)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _time_edges(net, x: torch.Tensor, per_edge: dict) -> None:
    """Seconds of each mixed op's forward, from a second forward pass (the first one paid
    for one-time setup such as oneDNN's kernel choice)."""
    starts: dict[str, float] = {}

    def pre(name, args):
        starts[name] = time.perf_counter()

    def post(name):
        per_edge[name]["seconds"] += time.perf_counter() - starts.pop(name)

    with _edge_hooks(net, pre, post), torch.no_grad():
        net(x)


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _chosen_edges(checkpointing, per_edge: dict) -> list[str]:
    if isinstance(checkpointing, bool):
        return list(per_edge) if checkpointing else []
    chosen = list(dict.fromkeys(checkpointing))
    unknown = sorted(set(chosen) - set(per_edge))
    if unknown:
        raise ValueError(f"no mixed op named {', '.join(unknown)} in this network")
    return chosen


def _checkpointed_activations(act: dict, chosen: Iterable[str]) -> int:
    """Saved bytes at the probe batch with the `chosen` edges checkpointed: all but their
    insides, plus their inputs (each storage once), plus twice the largest of them (in
    backward one edge at a time is recomputed next to its gradient buffers)."""
    edges = [act["per_edge"][name] for name in chosen]
    inputs = dict(pair for e in edges for pair in e["inputs"])
    inside = [e["bytes"] for e in edges]
    return act["total"] - sum(inside) + sum(inputs.values()) + 2 * max(inside, default=0)


def estimate_search_memory(net_cfg: NetworkConfig, batch_size: int, order: int = 1,
                           checkpointing: bool | Iterable[str] = False, device="cpu",
                           probe_batch: int = 2) -> MemoryEstimate:
    """Predicted peak memory of one search step (alpha step + weight step) at `batch_size`.

    `checkpointing`: True (every mixed op), False (none), or the names of the mixed ops
    to checkpoint (`SearchNetwork.mixed_ops`, `plan_checkpointing`)."""
    return _estimate(dataclasses.replace(net_cfg).validate(), batch_size, order, checkpointing, device, probe_batch)


def _estimate(net_cfg: NetworkConfig, batch_size: int, order, checkpointing, device, probe_batch: int) -> MemoryEstimate:
    """`estimate_search_memory` of a configuration validated already."""
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    dev = torch.device(device)
    if not isinstance(checkpointing, bool):
        checkpointing = tuple(checkpointing)
    checkpointed = bool(checkpointing)
    act = _activation_bytes(net_cfg, probe_batch, checkpointed)
    scale = batch_size / probe_batch
    if checkpointed:  # kept: all but the chosen mixed ops' insides, plus their inputs
        activations = _checkpointed_activations(act, _chosen_edges(checkpointing, act["per_edge"])) * scale
    else:
        activations = act["total"] * scale
    weight_bytes, alpha_bytes, buffer_bytes = act["weight_bytes"], act["alpha_bytes"], act["buffer_bytes"]
    breakdown = {
        "activations": int(activations),
        "parameters": weight_bytes + alpha_bytes + buffer_bytes,
        "gradients": weight_bytes + alpha_bytes,
        "optimizer_state": weight_bytes + 2 * alpha_bytes,  # SGD momentum, Adam's two moments
        # w', its gradient, one shifted weight set (+ the cloned buffers) alive at once
        "second_order_copies": 3 * weight_bytes + buffer_bytes if order == 2 else 0,
        "inputs": 2 * batch_size * net_cfg.in_channels * net_cfg.input_size[0] * net_cfg.input_size[1] * 4,
    }
    raw = sum(breakdown.values())
    if dev.type == "cuda":
        overhead, runtime = CUDA_OVERHEAD[checkpointed], 0
    else:
        overhead, runtime = CPU_OVERHEAD[checkpointed], CPU_RUNTIME_BYTES
    breakdown["allocator_overhead"] = int(raw * (overhead - 1.0))
    breakdown["runtime"] = runtime
    return MemoryEstimate(int(sum(breakdown.values())), breakdown, str(dev))


@dataclass
class CheckpointPlan:
    """Which mixed ops to checkpoint (`edges`, names for `SearchNetwork.set_checkpointing`),
    out of `n_edges`, the step's predicted peak with them (`estimate`), whether that fits
    the `budget`, and `recompute_share`: the share of the mixed ops' forward time that
    backward computes again (their forward is most of the network's)."""

    edges: tuple[str, ...]
    n_edges: int
    estimate: MemoryEstimate | None  # None where the plan was set, not estimated
    budget: int | None
    fits: bool
    recompute_share: float

    def describe(self) -> str:
        what = ("no edge" if not self.edges else "every edge" if len(self.edges) == self.n_edges
                else f"{len(self.edges)} of {self.n_edges} edges")
        if self.estimate is None:
            return f"activation checkpointing of {what} (as configured)"
        budget = "no budget known" if self.budget is None else f"budget {self.budget / 2**30:.2f} GiB"
        return (f"activation checkpointing of {what} (predicted peak {self.estimate.gib:.2f} GiB, {budget}"
                f"{'' if self.fits else ', does not fit'}; recomputes {100 * self.recompute_share:.0f} % "
                "of the mixed ops' forward time)")


def cheapest_edges_within(costs: dict[str, tuple[int, float]], predict: Callable[[tuple[str, ...]], int],
                          budget: int) -> tuple[tuple[str, ...], bool]:
    """The edges to checkpoint so that `predict(edges) <= budget` at little recomputation.

    `costs` maps each edge to (bytes its checkpointing frees, seconds it recomputes).
    Greedy on the ratio, as for a knapsack: edges are added in order of bytes freed per
    second recomputed until the prediction fits, then those whose removal still fits are
    dropped again, the worst ratio first (an edge added early may have become
    unnecessary). Returns (edges in the order of `costs`, fits); if even every edge does
    not fit, every edge and False.
    """
    order = sorted(costs, key=lambda n: (-costs[n][0] / max(costs[n][1], 1e-9), n))
    chosen: list[str] = []
    for name in order:
        if predict(tuple(chosen)) <= budget:
            break
        chosen.append(name)
    if predict(tuple(chosen)) > budget:
        return tuple(costs), False
    for name in reversed(list(chosen)):
        trial = tuple(n for n in chosen if n != name)
        if predict(trial) <= budget:
            chosen = list(trial)
    keep = set(chosen)
    return tuple(n for n in costs if n in keep), True


def checkpoint_plan(net_cfg: NetworkConfig, search_cfg: SearchConfig, device) -> CheckpointPlan:
    """Which mixed ops a search checkpoints: every one ("on"), none ("off"), or with
    "auto" only where memory demands it (`plan_checkpointing`), within
    `search_cfg.memory_budget_gb` or else the memory available on `device`. The
    configurations must be valid: a run validates them once, at its boundary."""
    if search_cfg.checkpointing == "auto":
        budget = None if search_cfg.memory_budget_gb is None else int(search_cfg.memory_budget_gb * 2**30)
        return plan_checkpointing(net_cfg, search_cfg.batch_size, search_cfg.order, device, budget)
    on = search_cfg.checkpointing == "on"
    with torch.device("meta"):  # the edges' names only: no memory, no estimate
        names = tuple(SearchNetwork(net_cfg).mixed_ops())
    return CheckpointPlan(names if on else (), len(names), None, None, True, 1.0 if on else 0.0)


def plan_checkpointing(net_cfg: NetworkConfig, batch_size: int, order: int = 1, device="cpu",
                       budget: int | None = None, probe_batch: int = 2) -> CheckpointPlan:
    """Checkpoint only where memory demands it: the mixed ops whose recomputation frees the
    most memory per second of extra forward, until the step is predicted to fit `budget`
    bytes (default: the memory available on `device` now; see `MemoryEstimate.fits`).

    No edge when the plain step fits; every edge when nothing less fits (then `fits` says
    whether even that does). The edges' costs come from the estimator's probe: the bytes
    each mixed op saves for backward, and the seconds of its forward at the probe batch.
    `net_cfg` must be valid (`preset` and `from_dict` return validated configurations; a
    run validates its own once, at its boundary).
    """
    dev = torch.device(device)
    if budget is None:
        budget = _available_bytes(dev)

    def predict(edges: tuple[str, ...]) -> int:
        return _estimate(net_cfg, batch_size, order, edges, dev, probe_batch).bytes

    plain = _activation_bytes(net_cfg, probe_batch, checkpointing=False)["per_edge"]
    if budget is None or predict(()) <= budget:  # fits as it is (or the device's memory is unknown)
        edges, fits, per_edge = (), True, plain
    else:
        per_edge = _activation_bytes(net_cfg, probe_batch, checkpointing=True)["per_edge"]
        costs = {name: (e["bytes"], e["seconds"]) for name, e in per_edge.items()}
        edges, fits = cheapest_edges_within(costs, predict, budget)
    forward = sum(e["seconds"] for e in per_edge.values()) or 1.0
    return CheckpointPlan(edges, len(per_edge), _estimate(net_cfg, batch_size, order, edges, dev, probe_batch),
                          budget, fits, sum(per_edge[n]["seconds"] for n in edges) / forward)


__all__ = ["MemoryEstimate", "CheckpointPlan", "checkpoint_plan", "estimate_search_memory",
           "activation_bytes", "plan_checkpointing",
           "cheapest_edges_within", "read_proc_bytes"]
