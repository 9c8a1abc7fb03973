"""The memory estimator: terms add up, scale with the batch, and follow the options."""

import torch

from emodarts_core.config import preset
from emodarts_core.darts.memory import MemoryEstimate, activation_bytes, estimate_search_memory, needs_checkpointing
from loop_helpers import single_thread  # noqa: F401


def test_estimate_terms_and_options():
    cfg = preset("smoke")
    base = estimate_search_memory(cfg, 8)
    assert isinstance(base, MemoryEstimate) and base.bytes == sum(base.breakdown.values())
    assert base.breakdown["activations"] > base.breakdown["parameters"] > 0
    double = estimate_search_memory(cfg, 16)
    assert abs(double.breakdown["activations"] / base.breakdown["activations"] - 2.0) < 1e-6
    ckpt = estimate_search_memory(cfg, 8, checkpointing=True)
    assert ckpt.breakdown["activations"] < base.breakdown["activations"]
    second = estimate_search_memory(cfg, 8, order=2)
    assert second.breakdown["second_order_copies"] > 0 and second.bytes > base.bytes


def test_saved_bytes_count_each_storage_once():
    act = activation_bytes(preset("smoke"), probe_batch=2)
    assert 0 < act["max_edge"] <= act["edges"] < act["total"]


def test_fits_message():
    est = MemoryEstimate(3 * 2**30, {"activations": 3 * 2**30}, "cpu")
    ok, msg = est.fits(available=4 * 2**30)
    assert ok and "fits" in msg
    ok, msg = est.fits("cpu", available=2**30)
    assert not ok and "checkpointing" in msg
    assert isinstance(est.fits()[0], bool)


def test_needs_checkpointing_follows_the_budget():
    cfg = preset("smoke")
    need = estimate_search_memory(cfg, 4).bytes
    assert needs_checkpointing(cfg, 4, budget=need - 1)
    assert not needs_checkpointing(cfg, 4, budget=need)
