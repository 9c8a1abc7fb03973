"""The CUDA-specific paths: checked on whatever device the tests run on, and their choices on CPU.

Tests marked `device` run on CPU by default and on CUDA under `tools/gpu_check.py`
(`EMODARTS_TEST_DEVICE=cuda pytest -m device`, see tests/conftest.py): a search epoch, a
retraining epoch, float16 loss scaling, pinned-memory loaders, the SeqNN recurrences and the
fast search network against the plain one. The other tests check, on a CPU-only
machine, which path each choice takes for a CUDA device (cuDNN's autotuner, the precision
policy, pinned memory, the batched tanh recurrence kept to CPU), by passing a device object
or patching `torch.cuda`'s queries; nothing here is timed.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import copy

from emodarts_core.darts.search import run_search
from emodarts_core.fast import cells
from emodarts_core.fast.cells import FastSeqMixedOp
from emodarts_core.fast.networks import FastSearchNetwork
from emodarts_core.fast.ops import to_fast
from emodarts_core.space.cells import SeqMixedOp
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.space.search_space import seq_primitives
from emodarts_core.training.data import make_loader, to_dataset, to_device
from emodarts_core.training.device import Precision, configure_backends, pin_memory_for, resolve_device
from emodarts_core.training.loop import weight_step
from emodarts_core.training.train import run_retrain
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net, train_cfg  # noqa: F401

SEQ_PRIMITIVES = seq_primitives("emodarts")
CUDA = torch.device("cuda")
CPU = torch.device("cpu")


# -- on the test device (CPU unless EMODARTS_TEST_DEVICE says otherwise) ---------------------

@pytest.mark.device
def test_search_epoch_on_device(target_device, tmp_path):
    """One search epoch with mixed precision allowed (it is used on CUDA only)."""
    result = run_search(tiny_fold(), tiny_net(), search_cfg(epochs=1, device=str(target_device), amp=True),
                        tmp_path / "search")
    (record,) = result.history
    assert np.isfinite(record["train_loss"]) and np.isfinite(record["val_loss"])
    assert 0.0 <= record["val_ua"] <= 1.0
    assert result.genotype.normal and result.genotype.seq


@pytest.mark.device
def test_retrain_epoch_on_device(target_device, tmp_path):
    genotype = SearchNetwork(tiny_net()).genotype()
    result = run_retrain(tiny_fold(), genotype, tiny_net(), train_cfg(epochs=1, device=str(target_device), amp=True),
                         tmp_path / "retrain")
    assert np.isfinite(result.history[0]["train_loss"]) and 0.0 <= result.test_ua <= 1.0
    assert result.confusion.sum() == len(tiny_fold().test.y)


def _float16_policy(dev: torch.device, monkeypatch) -> tuple[Precision, torch.amp.GradScaler]:
    """A precision that needs loss scaling, and its GradScaler. On CUDA it is the real policy
    of a GPU without bfloat16; on CPU (where mixed precision is off) the same weight-step
    path is driven by an enabled CPU GradScaler, which torch supports."""
    if dev.type == "cuda":
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
        precision = Precision(dev, True)
        assert precision.dtype == torch.float16 and precision.needs_scaler
        return precision, precision.scaler()
    precision = Precision(dev, True)
    assert not precision.enabled and not precision.scaler().is_enabled()
    precision.needs_scaler = True  # drive weight_step's loss-scaling branch
    return precision, torch.amp.GradScaler(dev.type, enabled=True)


@pytest.mark.device
def test_loss_scaled_weight_step_steps_or_skips(target_device, monkeypatch):
    """With a GradScaler: a finite step updates the weights and keeps the scale; an
    infinite gradient skips the step (weights unchanged) and halves the scale, instead of
    raising as the unscaled path does."""
    precision, scaler = _float16_policy(target_device, monkeypatch)
    assert scaler.is_enabled()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).to(target_device)
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1)
    x, y = torch.randn(6, 8, device=target_device), torch.arange(6, device=target_device) % 4
    scale = scaler.get_scale()
    before = [p.detach().clone() for p in params]
    loss, correct = weight_step(model, params, x, y, optimizer, scaler, precision, grad_clip=5.0)
    assert np.isfinite(loss) and 0 <= correct <= 6
    assert all(not torch.equal(a, p) for a, p in zip(before, params))
    assert scaler.get_scale() == scale

    before = [p.detach().clone() for p in params]
    hook = params[0].register_hook(lambda g: torch.full_like(g, float("inf")))
    weight_step(model, params, x, y, optimizer, scaler, precision, grad_clip=5.0)
    hook.remove()
    assert all(torch.equal(a, p) for a, p in zip(before, params))
    assert scaler.get_scale() == scale / 2


@pytest.mark.device
def test_loaders_pin_batches_for_cuda_only_and_deliver_them(target_device):
    X = np.random.default_rng(0).standard_normal((10, 4, 5)).astype(np.float32)
    y = np.arange(10) % 3
    loader = make_loader(to_dataset(X, y), 4, shuffle=True, generator=torch.Generator().manual_seed(0),
                         device=target_device)
    assert loader.pin_memory == (target_device.type == "cuda")
    batch = next(iter(loader))
    assert batch[0].is_pinned() == (target_device.type == "cuda")
    x, t = to_device(batch, target_device)
    assert x.device.type == t.device.type == target_device.type
    torch.testing.assert_close(x.cpu(), batch[0])
    assert torch.equal(t.cpu(), batch[1])


@pytest.mark.device
def test_seq_mixed_op_on_device_equals_its_plain_form(target_device, monkeypatch):
    """The SeqNN edge in values and gradients against each candidate run by itself; the
    batched tanh recurrence runs on CPU only (cuDNN's fused RNNs on CUDA)."""
    calls = []
    real = cells.stacked_tanh_rnn
    monkeypatch.setattr(cells, "stacked_tanh_rnn", lambda x, rnns: calls.append(len(rnns)) or real(x, rnns))
    torch.manual_seed(0)
    plain_mixed = SeqMixedOp(6, SEQ_PRIMITIVES, "dot").double().to(target_device)
    mixed = to_fast(copy.deepcopy(plain_mixed), cells.CELL_CLASSES)
    x = torch.randn(3, 5, 6, dtype=torch.float64, device=target_device, requires_grad=True)
    w = F.softmax(torch.randn(len(SEQ_PRIMITIVES), dtype=torch.float64, device=target_device), -1)

    out = mixed(x, w)
    grads = torch.autograd.grad(out.square().sum(), [x, *mixed.parameters()])
    assert bool(calls) == (target_device.type == "cpu")
    plain = plain_mixed(x, w)
    plain_grads = torch.autograd.grad(plain.square().sum(), [x, *plain_mixed.parameters()])
    torch.testing.assert_close(out, plain)
    for a, b in zip(grads, plain_grads):
        torch.testing.assert_close(a, b)


@pytest.mark.device
def test_fast_search_network_on_device_equals_the_reference(target_device):
    """The fast supernet (channels-last maps, fused batch norms, shared pools) against the
    plain form with the same weights, in float64 so that TF32 convolutions on CUDA do
    not blur the comparison."""
    torch.manual_seed(0)
    net = FastSearchNetwork(tiny_net()).double()
    with torch.no_grad():
        for a in net.alphas():
            a.normal_()
    ref = SearchNetwork(tiny_net()).double()
    ref.load_state_dict(net.state_dict())
    ref = ref.to(target_device)
    net = net.to(target_device)
    x = torch.randn(2, 1, *net.cfg.input_size, dtype=torch.float64, device=target_device)
    y = torch.tensor([0, 1], device=target_device)
    losses, alpha_grads = [], []
    for model in (net, ref):
        torch.manual_seed(1)  # the same dropout masks in both
        loss = F.cross_entropy(model(x), y)
        losses.append(loss.detach())
        alpha_grads.append(torch.autograd.grad(loss, model.alphas()))
    torch.testing.assert_close(losses[0], losses[1])
    for a, b in zip(*alpha_grads):
        torch.testing.assert_close(a, b)


# -- the CUDA choices, checked on CPU ----------------------------------------------------------

@pytest.fixture
def cudnn_benchmark_restored(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)


def test_cuda_device_switches_the_cudnn_autotuner_on(monkeypatch, cudnn_benchmark_restored):
    assert configure_backends(CPU)["cudnn_benchmark"] is False
    assert torch.backends.cudnn.benchmark is False
    assert configure_backends(CUDA)["cudnn_benchmark"] is True
    assert torch.backends.cudnn.benchmark is True


def test_resolving_cuda_configures_its_backends(monkeypatch, cudnn_benchmark_restored):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cpu") == CPU and torch.backends.cudnn.benchmark is False
    assert resolve_device("auto") == CUDA and torch.backends.cudnn.benchmark is True
    assert resolve_device("cuda:0") == torch.device("cuda:0")


def test_auto_without_cuda_is_cpu_and_leaves_cudnn_alone(monkeypatch, cudnn_benchmark_restored):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == CPU and torch.backends.cudnn.benchmark is False


@pytest.mark.parametrize("bf16, dtype, scaled", [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_mixed_precision_policy_on_cuda(monkeypatch, bf16, dtype, scaled):
    """bfloat16 where the GPU has it (no loss scaling), else float16 with a GradScaler."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    p = Precision(CUDA, True)
    assert p.enabled and p.dtype == dtype and p.needs_scaler == scaled
    assert p.describe() == str(dtype).replace("torch.", "")
    off = Precision(CUDA, False)
    assert not off.enabled and off.dtype == torch.float32 and not off.needs_scaler


def test_mixed_precision_is_off_on_cpu():
    p = Precision(CPU, True)
    assert not p.enabled and not p.needs_scaler and p.describe() == "float32"
    assert not p.scaler().is_enabled()
    with p.autocast():
        assert not torch.is_autocast_enabled("cpu")


def test_pinned_memory_is_chosen_for_cuda_only():
    assert pin_memory_for(CUDA) and pin_memory_for(torch.device("cuda:1"))
    assert not pin_memory_for(CPU)
    dataset = to_dataset(np.zeros((4, 2, 3), np.float32), np.zeros(4, np.int64))
    assert make_loader(dataset, 2, shuffle=False, device=CUDA).pin_memory  # not iterated: no CUDA needed
    assert not make_loader(dataset, 2, shuffle=False, device=CPU).pin_memory


def test_batched_recurrence_runs_on_cpu_only(monkeypatch):
    """Off CPU (here a meta tensor standing for a CUDA one) or under autocast the tanh RNN
    candidates of the fast form are left to torch (cuDNN's fused recurrences on CUDA); on
    CPU they run as one batched recurrence."""
    calls = []
    monkeypatch.setattr(cells, "stacked_tanh_rnn", lambda x, rnns: calls.append(x.device.type) or
                        [torch.zeros_like(x) for _ in rnns])
    mixed = FastSeqMixedOp(6, SEQ_PRIMITIVES)
    assert mixed._stacked_rnn_outputs(torch.empty(2, 5, 6, device="meta")) == {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert mixed._stacked_rnn_outputs(torch.zeros(2, 5, 6)) == {}
    assert calls == []
    assert len(mixed._stacked_rnn_outputs(torch.zeros(2, 5, 6))) == 6 and calls == ["cpu"]  # rnn_1..4, rnn_att_1/2
