"""The arithmetic floor's count (`emodarts_core.perf.arithmetic`) equals a hand count of the
multiply-adds: a grouped convolution's weight gradient (which torch's own formula counts
`groups` times over), oneDNN's recurrent layers (which torch does not count), and a whole
search step, whose count is linear in the batch (the bench counts at batch 2 and scales)."""

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from emodarts_core.config import SearchConfig, preset
from emodarts_core.perf import arithmetic, step
from emodarts_core.perf.arithmetic import StepFloor, count_flops, scale_to_batch
from emodarts_core.training.device import Precision


def _conv_by_hand(n, c_in, c_out, groups, k, h, w):
    """Multiply-adds (x2) of a stride-1, 'same'-padded convolution: every output value is a
    dot product of length (c_in / groups) * k * k."""
    return 2 * n * c_out * h * w * (c_in // groups) * k * k


@pytest.mark.parametrize("c_in, c_out, groups", [(8, 8, 8), (8, 16, 8), (6, 4, 2), (5, 7, 1)])
def test_convolution_forward_and_backward_are_counted_by_hand(c_in, c_out, groups):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1, groups=groups, bias=False)
    x = torch.randn(2, c_in, 9, 11, requires_grad=True)
    once = _conv_by_hand(2, c_in, c_out, groups, 3, 9, 11)
    count = count_flops(lambda: conv(x).sum().backward())
    # forward, input gradient and weight gradient: the same products three times
    assert count.total == 3 * once
    assert count.by_operator == {"aten.convolution": once, "aten.convolution_backward": 2 * once}


def test_torchs_own_formula_counts_a_depthwise_weight_gradient_channels_times_over():
    """Why the formula is mended: without it the paper preset's step count more than doubles."""
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    x = torch.randn(2, 8, 9, 11)  # no input gradient: the backward is the weight gradient only
    once = _conv_by_hand(2, 8, 8, 8, 3, 9, 11)
    torch_counter = FlopCounterMode(display=False)
    with torch_counter:
        conv(x).sum().backward()
    assert torch_counter.get_total_flops() == once + 8 * once
    assert count_flops(lambda: conv(x).sum().backward()).total == 2 * once


def test_input_gradient_only_counts_one_backward_product():
    conv = torch.nn.Conv2d(4, 4, 5, padding=2, groups=4, bias=False).requires_grad_(False)
    x = torch.randn(3, 4, 8, 8, requires_grad=True)
    once = _conv_by_hand(3, 4, 4, 4, 5, 8, 8)
    assert count_flops(lambda: torch.autograd.grad(conv(x).sum(), x)).total == 2 * once


@pytest.mark.parametrize("bidirectional, layers, batch_first", [(False, 1, True), (True, 2, False)])
def test_lstm_layers_are_counted_by_hand(bidirectional, layers, batch_first):
    torch.manual_seed(0)
    n, t, i, h = 3, 7, 10, 6
    lstm = torch.nn.LSTM(i, h, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    x = torch.randn(*((n, t) if batch_first else (t, n)), i, requires_grad=True)
    directions = 2 if bidirectional else 1
    # per layer, direction, step and sample: 4 gates of h rows over the input and the state
    forward = sum(2 * t * n * 4 * h * ((i if layer == 0 else directions * h) + h) * directions
                  for layer in range(layers))
    assert count_flops(lambda: lstm(x)).total == forward
    counted = count_flops(lambda: lstm(x)[0].sum().backward())
    assert counted.by_operator["aten.mkldnn_rnn_layer"] == forward
    assert counted.by_operator["aten.mkldnn_rnn_layer_backward"] == 2 * forward


def _search_step_count(batch: int, order: int = 1) -> int:
    net_cfg = preset("smoke")
    cfg = SearchConfig(batch_size=batch, order=order, device="cpu").validate()
    dev = torch.device("cpu")
    model = step.build_supernet(net_cfg, "fast", dev, False)
    return count_flops(step.search_step(model, net_cfg, cfg, Precision(dev, False), dev, batch)).total


@pytest.mark.parametrize("order", [1, 2])
def test_a_search_steps_count_is_linear_in_the_batch(order):
    two, four = _search_step_count(2, order), _search_step_count(4, order)
    assert two > 0 and four == 2 * two
    assert scale_to_batch(arithmetic.FlopCount(two, {}), 2, 4).total == four


def test_matrix_product_rate_and_floor():
    rate = arithmetic.matmul_gflops("cpu", size=256, repeats=2, seconds=0.01)
    assert math.isfinite(rate) and rate > 0
    floor = StepFloor(gflop=3.0, rate_gflops=2.0)
    assert floor.seconds == 1.5
    assert floor.as_dict(step_seconds=6.0) == {"gflop_per_step": 3.0, "matmul_gflops": 2.0,
                                               "arithmetic_floor_seconds": 1.5, "fraction_of_matmul_rate": 0.25}
