"""The fast-path switch (`emodarts_core.fast`) and the two forms of the network.

- `emodarts_core.networks` builds the fast form while the switch is on and the plain
  PyTorch form (`emodarts_core.space`) while it is off; the choice is made once, when the
  network is built.
- Both forms, built from one configuration, have the same parameter and buffer names: one
  state dict loads into either, and they give the same logits, gradients and BatchNorm
  statistics, for the search supernet (exact DARTS, the "dot" attention form, CNN only,
  PC-DARTS) and for the derived network.
- A whole first-order search step (the architect's alpha step, then the weight step, as
  `darts/search.py` takes it) gives the same logits, alpha and weight gradients, weights
  and BatchNorm running statistics in both forms, from the same start.
- With `EMODARTS_FAST=0`, no fast kernel runs and the heap is left to glibc.
- `emodarts_core.space` imports nothing from `emodarts_core.fast` and defines no autograd
  Function.

All comparisons run in float64, where the fast forms (fused norms, flipped-kernel
convolutions, batched recurrences: the same sums in another order) differ from the plain
ones by rounding only, so torch's float64 tolerances (rtol 1e-7) apply.
"""

import collections
import copy
import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import emodarts_core.space
from emodarts_core import fast
from emodarts_core.config import SearchConfig, preset
from emodarts_core.darts.architect import Architect
from emodarts_core.fast import conv, norms, recurrence
from emodarts_core.fast.networks import FastDerivedNetwork, FastSearchNetwork
from emodarts_core.networks import derived_network, search_network
from emodarts_core.space.cells import MixedOp
from emodarts_core.space.derived import DerivedNetwork
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.training.device import Precision
from emodarts_core.training.loop import weight_step

FAST_MODULES = (norms, conv, recurrence)


def _fast_functions():
    """Every custom autograd Function of the fast kernels, by name."""
    return {name: obj for module in FAST_MODULES for name, obj in vars(module).items()
            if inspect.isclass(obj) and issubclass(obj, torch.autograd.Function)
            and obj.__module__ == module.__name__}


@pytest.fixture
def spied(monkeypatch):
    """Counts the calls of every fast kernel (each Function's `apply`, and the average pool
    computed as a convolution, which is no Function). The fused norm runs on every map, as
    it does on large ones (`norms.FUSED_MIN_PIXELS`), so that the tests' small networks
    compare each kernel with its plain form."""
    monkeypatch.setattr(norms, "FUSED_MIN_PIXELS", 0)
    calls = collections.Counter()

    def spy(name, fn):
        def run(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return run

    for name, function in _fast_functions().items():
        monkeypatch.setattr(function, "apply", spy(name, function.apply))
    monkeypatch.setattr(conv, "avg_pool_as_depthwise", spy("avg_pool_as_depthwise", conv.avg_pool_as_depthwise))
    return calls


def _space_modules():
    return [importlib.import_module(f"emodarts_core.space.{m.name}")
            for m in pkgutil.iter_modules(emodarts_core.space.__path__)]


def test_space_is_plain_pytorch():
    """No module of `space` imports `fast` (not even inside a function) or defines an
    autograd Function; the kernels are in `fast`."""
    modules = _space_modules()
    assert {"ops", "cells", "search_network", "derived"} <= {m.__name__.rsplit(".", 1)[1] for m in modules}
    for module in modules:
        source = inspect.getsource(module)
        assert "import fast" not in source and "emodarts_core.fast" not in source.replace(
            "`emodarts_core.fast", ""), module.__name__  # docstrings may name it in backquotes
        assert "autograd.Function" not in source, module.__name__
    assert {"_WeightedBatchNorm", "_SingleThreadBackwardBatchNorm", "_FlippedKernelDepthwiseConv",
            "_Stride2Phases", "TanhRecurrence"} <= set(_fast_functions())


def test_the_switch_chooses_the_form_when_the_network_is_built(spied):
    cfg = _cfg()
    with fast.disabled():
        plain = search_network(cfg)
        plain_derived = derived_network(plain.genotype(), cfg)
    assert type(plain) is SearchNetwork and type(plain_derived) is DerivedNetwork
    assert type(search_network(cfg)) is FastSearchNetwork
    assert type(derived_network(plain.genotype(), cfg)) is FastDerivedNetwork
    x, _, _, _ = _batches(cfg, n=2)
    plain.float()(x.float()).sum().backward()  # built plain, it stays plain with the switch on
    assert sum(spied.values()) == 0, spied


def _cfg(**overrides):
    return preset("smoke", **overrides)


def _batches(cfg, n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = (n, cfg.in_channels, *cfg.input_size)
    x = [torch.randn(shape, dtype=torch.float64, generator=g) for _ in range(2)]
    y = [torch.randint(0, cfg.n_classes, (n,), generator=g) for _ in range(2)]
    return x[0], y[0], x[1], y[1]


def _search_steps(on: bool, net_cfg, checkpointing: bool, steps: int = 2) -> dict:
    """`steps` first-order search steps from the same seeded start, in the form the switch
    `on` builds."""
    cfg = SearchConfig()
    with fast.enabled_as(on):
        torch.manual_seed(0)
        model = search_network(net_cfg).double()
    model.set_checkpointing(checkpointing)
    weights = list(model.weights())
    w_optim = torch.optim.SGD(weights, lr=cfg.w_lr, momentum=cfg.w_momentum, weight_decay=cfg.w_weight_decay)
    precision = Precision(torch.device("cpu"), amp=False)
    architect = Architect(model, cfg.w_momentum, cfg.w_weight_decay, cfg.alpha_lr, cfg.alpha_betas,
                          cfg.alpha_weight_decay)
    tx, ty, vx, vy = _batches(net_cfg)
    torch.manual_seed(2)
    record = {"logits": model(vx).detach()}
    for step in range(steps):
        architect.step(tx, ty, vx, vy, cfg.w_lr, w_optim, order=1)
        record[f"alpha_grads_{step}"] = [a.grad.clone() for a in model.alphas()]
        weight_step(model, weights, tx, ty, w_optim, precision.scaler(), precision, cfg.w_grad_clip)
        record[f"weight_grads_{step}"] = [w.grad.clone() for w in weights]
    record["parameters"] = {n: p.detach().clone() for n, p in model.named_parameters()}
    record["buffers"] = {n: b.clone() for n, b in model.named_buffers()}
    return record


@pytest.mark.parametrize("overrides, checkpointing, fused_min_pixels", [
    ({}, False, 0),
    ({}, True, 0),
    ({"seq_attention": "dot"}, False, 0),  # the dot form's rnn_att candidates are stacked too
    ({"partial_channels": 2}, False, 0),  # PC-DARTS: the few-channel statistics
    # the rule as it runs: the first cell's 4 x 32 x 32 maps fused, the smaller ones not
    ({}, False, 4 * 32 * 32),
])
def test_search_step_is_the_same_in_both_forms(spied, monkeypatch, overrides, checkpointing, fused_min_pixels):
    monkeypatch.setattr(norms, "FUSED_MIN_PIXELS", fused_min_pixels)
    fused_or_not = collections.Counter()  # of the affine-free norms in training, what ran
    fusable = norms._fusable
    monkeypatch.setattr(norms, "_fusable", lambda bn, z: fused_or_not.update(
        [fusable(bn, z)] if bn.training and not bn.affine else []) or fusable(bn, z))
    net_cfg = _cfg(**overrides)
    off = _search_steps(False, net_cfg, checkpointing)
    assert sum(spied.values()) == 0, spied  # the plain form: no kernel ran
    on = _search_steps(True, net_cfg, checkpointing)
    assert spied["_WeightedBatchNorm"] and spied["_FlippedKernelDepthwiseConv"] and spied["_Stride2Phases"]
    assert spied["TanhRecurrence"] and spied["avg_pool_as_depthwise"]
    assert fused_or_not[True] and bool(fused_or_not[False]) == (fused_min_pixels > 0), fused_or_not
    assert fast.enabled()  # the switch is restored
    torch.testing.assert_close(on["logits"], off["logits"])
    for key in on:
        if key.endswith("grads_0") or key.endswith("grads_1"):
            for a, b in zip(on[key], off[key], strict=True):
                torch.testing.assert_close(a, b, msg=key)
    for kind in ("parameters", "buffers"):
        assert on[kind].keys() == off[kind].keys()
        for name in on[kind]:
            torch.testing.assert_close(on[kind][name], off[kind][name], msg=f"{kind} {name}")


def _logits_grads_buffers(model, x, y):
    torch.manual_seed(3)  # the same dropout masks in both forms
    logits = model(x)
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(F.cross_entropy(logits, y), list(params.values()))
    return logits.detach(), dict(zip(params, grads)), dict(model.named_buffers())


def _assert_forms_agree(plain, fast_form, x, y):
    assert fast_form.state_dict().keys() == plain.state_dict().keys()
    fast_form.load_state_dict(plain.state_dict())  # no key translation: the same names
    logits, grads, buffers = _logits_grads_buffers(plain, x, y)
    fast_logits, fast_grads, fast_buffers = _logits_grads_buffers(fast_form, x, y)
    torch.testing.assert_close(fast_logits, logits)
    assert fast_grads.keys() == grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(fast_grads[name], g, msg=name)
    assert any(g.abs().sum() > 0 for n, g in grads.items() if ".ops.none" not in n)
    for name, value in buffers.items():  # the BatchNorm statistics after one training batch
        torch.testing.assert_close(fast_buffers[name], value, msg=name)


@pytest.mark.parametrize("overrides", [{}, {"seq_attention": "dot"}, {"seq_cells": 0}, {"partial_channels": 2}])
def test_plain_and_fast_search_networks_agree(spied, overrides):
    torch.manual_seed(0)
    cfg = _cfg(**overrides)
    plain = SearchNetwork(cfg).double()
    with torch.no_grad():  # alphas away from uniform, so that every op's weight matters
        for a in plain.alphas():
            a.normal_()
    x, y, _, _ = _batches(cfg, n=2)
    _assert_forms_agree(plain, FastSearchNetwork(cfg).double(), x, y)
    assert spied["_WeightedBatchNorm"] and spied["_FlippedKernelDepthwiseConv"]


@pytest.mark.parametrize("overrides", [{}, {"seq_attention": "dot"}])
def test_plain_and_fast_derived_networks_agree(spied, overrides):
    cfg = _cfg(**overrides)
    torch.manual_seed(4)
    with torch.no_grad():
        search = SearchNetwork(cfg)
        for a in search.alphas():
            a.normal_()
    genotype = search.genotype()
    torch.manual_seed(0)
    plain = DerivedNetwork(genotype, cfg).double()
    x, y, _, _ = _batches(cfg, n=2)
    _assert_forms_agree(plain, FastDerivedNetwork(genotype, cfg).double(), x, y)
    assert sum(spied.values()) > 0, spied


PROBE = r"""
import collections, inspect, json, torch
from emodarts_core import fast
from emodarts_core.config import SearchConfig, preset
from emodarts_core.darts.architect import Architect
from emodarts_core.fast import conv, norms, recurrence
from emodarts_core.runtime import heap
from emodarts_core.networks import derived_network, search_network
from emodarts_core.training.device import Precision
from emodarts_core.training.loop import weight_step

calls = collections.Counter()
def spy(name, fn):
    def run(*args, **kwargs):
        calls[name] += 1
        return fn(*args, **kwargs)
    return run
for module in (norms, conv, recurrence):
    for name, obj in list(vars(module).items()):
        if inspect.isclass(obj) and issubclass(obj, torch.autograd.Function) and obj.__module__ == module.__name__:
            obj.apply = spy(name, obj.apply)
conv.avg_pool_as_depthwise = spy("avg_pool_as_depthwise", conv.avg_pool_as_depthwise)
heap._glibc = spy("heap._glibc", heap._glibc)
norms.FUSED_MIN_PIXELS = 0  # the fused norm on the smoke network's small maps too

torch.set_num_threads(2)  # where the single-thread BatchNorm backward applies
cfg = SearchConfig()
kept = []
for overrides in ({"seq_attention": "dot"}, {"partial_channels": 2}):
    net_cfg = preset("smoke", **overrides)
    torch.manual_seed(0)
    model = search_network(net_cfg)
    weights = list(model.weights())
    w_optim = torch.optim.SGD(weights, lr=cfg.w_lr, momentum=cfg.w_momentum)
    architect = Architect(model, cfg.w_momentum, cfg.w_weight_decay, cfg.alpha_lr)
    precision = Precision(torch.device("cpu"), amp=False)
    x = torch.randn(4, 1, *net_cfg.input_size)
    y = torch.arange(4) % net_cfg.n_classes
    with heap.retained_heap() as retained:
        kept.append(retained)
        architect.step(x, y, x, y, cfg.w_lr, w_optim, order=1)
        weight_step(model, weights, x, y, w_optim, precision.scaler(), precision, cfg.w_grad_clip)
        derived = derived_network(model.genotype(), net_cfg)
        derived(x).sum().backward()
if fast.enabled():  # stacked searches are the fast form only: their kernels, with the switch on
    from emodarts_core.perf.stacking import stacked_step
    stacked_step(preset("smoke"), cfg, 2, 2, torch.device("cpu"))[0]()
print(json.dumps({"enabled": fast.enabled(), "calls": dict(calls), "kept": kept}))
"""


def _probe(flag: str) -> dict:
    env = {**os.environ, "EMODARTS_FAST": flag, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "2"}
    env.pop("EMODARTS_RETAIN_HEAP", None)
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_emodarts_fast_0_runs_no_fast_kernel_in_a_fresh_process():
    off = _probe("0")
    assert off["enabled"] is False
    assert off["calls"] == {}, off["calls"]  # no Function, no convolution pool, no glibc heap setting
    assert off["kept"] == [False, False]
    # the control: the same probe with the switch on reaches every kernel (so the spies work)
    on = _probe("1")
    assert on["enabled"] is True
    expected = {"_WeightedBatchNorm", "_SingleThreadBackwardBatchNorm", "_FlippedKernelDepthwiseConv",
                "_Stride2Phases", "TanhRecurrence", "avg_pool_as_depthwise", "heap._glibc"}
    assert expected <= set(on["calls"]), on["calls"]
    assert set(_fast_functions()) <= set(on["calls"])  # every fast Function is covered by the probe
    assert "_Stride2DepthwiseConv" in on["calls"]  # the stacked step's own kernel


def test_retained_heap_follows_the_switch_and_its_own_variable(monkeypatch):
    from emodarts_core.runtime import heap
    with fast.disabled(), heap.retained_heap() as kept:
        assert not kept
    monkeypatch.setenv("EMODARTS_RETAIN_HEAP", "0")
    with heap.retained_heap() as kept:
        assert not kept
    assert heap._depth == 0


def test_switch_restores_after_an_error():
    before = fast.enabled()
    with pytest.raises(RuntimeError), fast.disabled():
        assert not fast.enabled()
        raise RuntimeError
    assert fast.enabled() == before
    model = copy.deepcopy(MixedOp(2, 1, ("none", "skip_connect")))
    model(torch.zeros(1, 2, 4, 4), torch.tensor([0.5, 0.5]))
    assert fast.enabled() == before
