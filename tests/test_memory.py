"""The memory estimator: terms add up, scale with the batch, and follow the options."""

import torch

from emodarts_core.config import preset
import pytest

from emodarts_core.darts.memory import (MemoryEstimate, activation_bytes, cheapest_edges_within,
                                        estimate_search_memory, plan_checkpointing)
from emodarts_core.space.search_network import SearchNetwork
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


def test_checkpointing_is_planned_only_when_the_plain_step_does_not_fit():
    cfg = preset("smoke")
    need = estimate_search_memory(cfg, 4).bytes
    assert plan_checkpointing(cfg, 4, budget=need - 1).edges
    assert plan_checkpointing(cfg, 4, budget=need).edges == ()


# -- checkpointing only where memory demands it ------------------------------------------------
def _additive(costs: dict, base: int):
    """A prediction that checkpointing an edge lowers by the bytes it frees."""
    return lambda edges: base - sum(costs[e][0] for e in edges)


def test_cheapest_edges_are_taken_by_bytes_freed_per_second():
    costs = {"a": (100, 1.0), "b": (100, 10.0), "c": (50, 1.0)}  # ratios 100, 10, 50
    assert cheapest_edges_within(costs, _additive(costs, 300), 160) == (("a", "c"), True)
    assert cheapest_edges_within(costs, _additive(costs, 300), 300) == ((), True)  # fits as it is
    assert cheapest_edges_within(costs, _additive(costs, 300), 0) == (("a", "b", "c"), False)  # nothing fits


def test_an_edge_made_unnecessary_by_later_ones_is_dropped_again():
    costs = {"a": (10, 0.1), "b": (200, 4.0)}  # a first (ratio 100), but b alone fits
    assert cheapest_edges_within(costs, _additive(costs, 300), 100) == (("b",), True)


def test_plan_fits_the_budget_with_some_edges_only():
    cfg = preset("smoke")
    names = tuple(SearchNetwork(cfg).mixed_ops())
    plain, every = (estimate_search_memory(cfg, 16, checkpointing=on).bytes for on in (False, True))
    assert every < plain
    assert estimate_search_memory(cfg, 16, checkpointing=names).bytes == every  # all names = True

    between = (plain + every) // 2
    plan = plan_checkpointing(cfg, 16, budget=between)
    assert plan.fits and 0 < len(plan.edges) < len(names) == plan.n_edges
    assert set(plan.edges) <= set(names)
    assert every <= plan.estimate.bytes <= between
    assert plan.estimate.bytes == estimate_search_memory(cfg, 16, checkpointing=plan.edges).bytes
    assert 0 < plan.recompute_share < 1
    assert f"{len(plan.edges)} of {len(names)} edges" in plan.describe()

    assert plan_checkpointing(cfg, 16, budget=plain).edges == ()
    tight = plan_checkpointing(cfg, 16, budget=every - 1)
    assert tight.edges == names and not tight.fits and "does not fit" in tight.describe()


def test_per_edge_costs_cover_every_mixed_op():
    cfg = preset("smoke")
    per_edge = activation_bytes(cfg, checkpointing=True)["per_edge"]
    assert list(per_edge) == list(SearchNetwork(cfg).mixed_ops())
    assert all(e["bytes"] > 0 and e["seconds"] > 0 and e["inputs"] for e in per_edge.values())
    with pytest.raises(ValueError, match="cells.9.edges.0"):
        estimate_search_memory(cfg, 4, checkpointing=["cells.9.edges.0"])
