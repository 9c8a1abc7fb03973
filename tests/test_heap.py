"""emodarts_core.heap: freed CPU memory stays in the heap within a run and goes back after it."""

import pytest
import torch

from emodarts_core import heap
from emodarts_core.bench import _rss_bytes

MB = 2**20
needs_glibc = pytest.mark.skipif(heap._glibc() is None, reason="glibc malloc only")


def _touch_and_free(nbytes: int) -> None:
    torch.ones(nbytes // 4).add_(1)  # allocated, written, freed


@needs_glibc
def test_freed_memory_is_kept_within_and_returned_after():
    with heap.retained_heap() as kept:
        assert kept
        before = _rss_bytes()
        _touch_and_free(256 * MB)
        inside = _rss_bytes()
    after = _rss_bytes()
    assert inside - before > 200 * MB  # freed, yet still resident
    assert inside - after > 200 * MB  # handed back at the end


@needs_glibc
def test_nested_blocks_keep_the_setting_until_the_outermost_ends():
    with heap.retained_heap():
        with heap.retained_heap() as inner:
            assert inner
        before = _rss_bytes()
        _touch_and_free(256 * MB)
        assert _rss_bytes() - before > 200 * MB  # still kept after the inner block
    assert heap._depth == 0


def test_switches_off_by_argument_or_environment(monkeypatch):
    with heap.retained_heap(active=False) as kept:
        assert not kept
    monkeypatch.setenv("EMODARTS_RETAIN_HEAP", "0")
    with heap.retained_heap() as kept:
        assert not kept
    assert heap._depth == 0
