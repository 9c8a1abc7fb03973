"""How much arithmetic a search step does, and the time the machine needs for it at best.

A step's time has a floor that no kernel can beat: its multiply-adds (convolutions, matrix
products, recurrences) divided by the fastest rate this machine computes them at. This
module measures both in the running process, so that the bench can print that floor beside
the measured step (docs/PERFORMANCE.md, "How far the targets are"):

- `count_flops(fn)`: the floating-point operations of the convolutions, matrix products and
  recurrent layers that `fn` dispatches, counted with the formulas of torch's
  `FlopCounterMode`, two of them mended. torch's formula for a convolution's weight
  gradient ignores `groups`, so it counts a depthwise weight gradient C times over (for a
  weight pass of the paper preset, 307 GFLOP of convolution backward where there are
  100). And torch counts nothing for oneDNN's recurrent layers (`aten.mkldnn_rnn_layer`
  and its backward), which run every LSTM on CPU.
  Elementwise work (norms, activations, pools, the optimiser) is not counted: on this
  project's CPU it is bound by memory bandwidth, not arithmetic, so the floor is a floor on
  the arithmetic alone. Nor are cuDNN's fused recurrences (`aten._cudnn_rnn`) on CUDA: what
  is left out only lowers the count, so the floor stays a floor.
- `matmul_gflops(device, dtype)`: the rate of a large matrix product (2048 x 2048 by
  default), the best of several, which is close to the machine's practical peak for the
  dtype.
- `StepFloor`: both together, and the seconds the one takes at the other; the bench's
  `arithmetic_floor` makes one for its step.

Counting runs the step (under a dispatch mode, so a little slower). Every counted operation
here is linear in the batch, so the bench counts a step at a small batch and scales it
(`scale_to_batch`); tests/test_arithmetic.py checks the linearity and each formula against
a hand count.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

aten = torch.ops.aten

# gates per recurrent cell, by oneDNN's mode code (torch's RNN mode enum)
_GATES = {0: 1, 1: 1, 2: 4, 3: 3}  # RNN_RELU, RNN_TANH, LSTM, GRU


def _transposed(shape):
    return [shape[1], shape[0], *shape[2:]]


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, groups, output_mask, out_shape=None, **_) -> int:
    """A convolution's backward: the input gradient as torch counts it (its weight shape
    already carries C_in / groups), and the weight gradient divided by `groups`, which
    torch's formula leaves out: each of a grouped convolution's C_out filters sees
    C_in / groups input channels, not C_in."""
    flops = 0
    if output_mask[0]:
        flops += conv_flop_count(grad_out_shape, w_shape, list(x_shape), not transposed)
    if output_mask[1]:
        if transposed:
            full = conv_flop_count(_transposed(grad_out_shape), _transposed(x_shape), _transposed(w_shape), False)
        else:
            full = conv_flop_count(_transposed(x_shape), _transposed(grad_out_shape), _transposed(w_shape), False)
        flops += full // groups
    return flops


def _rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, mode: int, batch_first: bool) -> int:
    """Multiply-adds of one direction of one recurrent layer over a sequence: per time step
    and sample, the gate pre-activations `W_ih x_t + W_hh h_{t-1}`, 2 * gates*H * (I + H)
    operations."""
    steps, batch = (input_shape[1], input_shape[0]) if batch_first else (input_shape[0], input_shape[1])
    gate_rows, inputs = w_ih_shape
    hidden = w_hh_shape[1]
    if gate_rows != _GATES[mode] * hidden:
        raise ValueError(f"recurrent layer of mode {mode}: {gate_rows} gate rows for hidden size {hidden}")
    return 2 * steps * batch * gate_rows * (inputs + hidden)


def _mkldnn_rnn_layer_flop(input_shape, w_ih_shape, w_hh_shape, _b_ih, _b_hh, _hx, _cx, _reverse, _batch_sizes,
                           mode, _hidden_size, _num_layers, _has_biases, _bidirectional, batch_first, _train,
                           out_shape=None, **_) -> int:
    """oneDNN's recurrent layer (one direction), forward."""
    return _rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, mode, batch_first)


def _mkldnn_rnn_layer_backward_flop(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **_) -> int:
    """Its backward: the gradients of the input and of the previous hidden state (the same
    products as the forward, transposed) and of both weight matrices (as many again)."""
    # the schema's arguments after the two weights: b_ih, b_hh, hx, cx, output, hy, cy,
    # grad_output, grad_hy, grad_cy, reverse, mode (11), hidden_size, num_layers, has_biases,
    # train, bidirectional, batch_sizes, batch_first (18), workspace
    mode, batch_first = args[11], args[18]
    return 2 * _rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, mode, batch_first)


MENDED_FORMULAS = {
    aten.convolution_backward: _conv_backward_flop,
    aten.mkldnn_rnn_layer: _mkldnn_rnn_layer_flop,
    aten.mkldnn_rnn_layer_backward: _mkldnn_rnn_layer_backward_flop,
}


@dataclass
class FlopCount:
    """The counted operations of one call, in total and by operator."""

    total: int
    by_operator: dict[str, int]

    def scaled(self, factor: float) -> "FlopCount":
        return FlopCount(round(self.total * factor), {k: round(v * factor) for k, v in self.by_operator.items()})


class _Counter(TorchDispatchMode):
    """Adds up the formulas of `registry` (operator overload packet -> formula on tensors)
    over every operator dispatched inside it. Unlike `FlopCounterMode` it tracks no modules:
    that tracker hooks every module's inputs and fails under `torch.autograd.grad` with
    respect to a leaf that is a module's input."""

    def __init__(self, registry):
        super().__init__()
        self.registry = registry
        self.counts: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.registry.get(func._overloadpacket)
        if formula is not None:
            name = str(func._overloadpacket)
            self.counts[name] = self.counts.get(name, 0) + int(formula(*args, **kwargs, out_val=out))
        return out


def count_flops(fn, *args, **kwargs) -> FlopCount:
    """Run `fn(*args, **kwargs)` and count its convolutions', matrix products' and recurrent
    layers' floating-point operations (a multiply-add is two), with torch's formulas
    (`FlopCounterMode`'s registry) plus `MENDED_FORMULAS`."""
    registry = FlopCounterMode(display=False, custom_mapping=MENDED_FORMULAS).flop_registry
    counter = _Counter(registry)
    with counter:
        fn(*args, **kwargs)
    by_operator = {name: n for name, n in counter.counts.items() if n}
    return FlopCount(sum(by_operator.values()), by_operator)


def scale_to_batch(count: FlopCount, counted_batch: int, batch: int) -> FlopCount:
    """A count made at `counted_batch` as it is at `batch`: every counted operation is linear
    in the batch (no operation mixes samples apart from batch-norm statistics, which are not
    counted)."""
    return count.scaled(batch / counted_batch)


def matmul_gflops(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, size: int = 2048,
                  repeats: int = 5, seconds: float = 0.2) -> float:
    """The best rate, in GFLOP/s, of a `size` x `size` matrix product on `device` in `dtype`
    over `repeats` timings of at least `seconds` each: this machine's practical peak for
    dense arithmetic with torch's current thread count."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    torch.mm(a, b, out=out)  # warm-up: thread pool, kernels, pages
    sync()
    best = 0.0
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            torch.mm(a, b, out=out)
            calls += 1
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = max(best, 2 * size**3 * calls / elapsed / 1e9)
    return best


@dataclass
class StepFloor:
    """A step's counted arithmetic against the machine's dense rate."""

    gflop: float
    rate_gflops: float

    @property
    def seconds(self) -> float:
        """The step's arithmetic at the dense rate: no kernel can take less."""
        return self.gflop / self.rate_gflops if self.rate_gflops > 0 else math.inf

    def as_dict(self, step_seconds: float | None = None) -> dict:
        out = {"gflop_per_step": self.gflop, "matmul_gflops": self.rate_gflops,
               "arithmetic_floor_seconds": self.seconds}
        if step_seconds:
            out["fraction_of_matmul_rate"] = self.seconds / step_seconds
        return out


__all__ = ["FlopCount", "MENDED_FORMULAS", "StepFloor", "count_flops", "matmul_gflops", "scale_to_batch"]
