"""Process settings for a run: how the C heap keeps freed memory and how many threads OpenMP runs.

These are settings of the process, not a form of the network, so they live apart from
`emodarts_core.fast` (which holds the fast form of the network): ``heap`` keeps freed CPU
memory in the process heap for the length of a run, and ``threads`` keeps OpenMP's
threads from spinning against other work on a busy machine. Both follow the fast-path
switch (``EMODARTS_FAST=0`` leaves glibc and OpenMP as they are). `tuned_run` applies both
for the length of a run; the run lifecycle (`emodarts_core.training.run`) and the step
benchmark (`emodarts_core.perf.bench`) enter it, and the package root calls
`threads.choose_wait_policy` when it is imported (before torch, where it can).
docs/PERFORMANCE.md has the measurements behind each setting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from emodarts_core.runtime.heap import release_freed_memory, retained_heap
from emodarts_core.runtime.threads import spin_safe_threads


@contextlib.contextmanager
def tuned_run(on_cpu: bool = True) -> Iterator[dict]:
    """Within the block: freed memory stays in the heap (`heap.retained_heap`) and OpenMP's
    threads do not spin against other work (`threads.spin_safe_threads`). `on_cpu=False`
    (a CUDA run) leaves both alone. Yields what is in effect: {"retained_heap": bool,
    "threads": int}."""
    with retained_heap(on_cpu) as kept, spin_safe_threads(on_cpu) as threads:
        yield {"retained_heap": kept, "threads": threads}


__all__ = ["release_freed_memory", "retained_heap", "spin_safe_threads", "tuned_run"]
