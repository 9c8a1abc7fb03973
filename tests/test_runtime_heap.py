"""emodarts_core.runtime.heap: freed CPU memory stays in the heap within a run and goes back after it.

Each check runs in a fresh interpreter: how much of a long-lived test process's heap is
free and resident depends on every test before it."""

import json
import subprocess
import sys

import pytest

from emodarts_core.runtime import heap

needs_glibc = pytest.mark.skipif(not heap.available(), reason="glibc malloc only")

PRELUDE = """
import json, torch
from emodarts_core.runtime import heap
from emodarts_core.perf.resident import rss_bytes as _rss_bytes
MB = 2**20
def touch_and_free(nbytes):
    torch.ones(nbytes // 4).add_(1)  # allocated, written, freed
"""


def _run(snippet: str) -> dict:
    """Run `snippet` after PRELUDE in a fresh interpreter; it prints one JSON object."""
    done = subprocess.run([sys.executable, "-c", PRELUDE + snippet], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_glibc
def test_freed_memory_is_kept_within_and_returned_after():
    r = _run("""
with heap.retained_heap() as kept:
    before = _rss_bytes()
    touch_and_free(256 * MB)
    inside = _rss_bytes()
print(json.dumps({"kept": kept, "before": before, "inside": inside, "after": _rss_bytes()}))
""")
    MB = 2**20
    assert r["kept"]
    assert r["inside"] - r["before"] > 200 * MB  # freed, yet still resident
    assert r["inside"] - r["after"] > 200 * MB  # handed back at the end


@needs_glibc
def test_nested_blocks_keep_the_setting_until_the_outermost_ends():
    r = _run("""
with heap.retained_heap():
    with heap.retained_heap() as inner:
        pass
    before = _rss_bytes()
    touch_and_free(256 * MB)
    grown = _rss_bytes() - before
print(json.dumps({"inner": inner, "grown": grown, "depth": heap._depth}))
""")
    assert r["inner"] and r["depth"] == 0
    assert r["grown"] > 200 * 2**20  # still kept after the inner block ended


def test_switches_off_by_argument_or_environment(monkeypatch):
    with heap.retained_heap(active=False) as kept:
        assert not kept
    monkeypatch.setenv("EMODARTS_RETAIN_HEAP", "0")
    with heap.retained_heap() as kept:
        assert not kept
    assert heap._depth == 0
