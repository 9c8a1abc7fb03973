"""The fast form of the search space and its kernels, behind one switch.

Everything in this package makes the search faster or leaner on a CPU without changing
what it computes; ``emodarts_core.space`` holds the paper's network in its plain form,
and each fast path here is tested against that form. One switch turns all of them off,
the way timm's ``set_fused_attn`` does for its fused attention:

- ``EMODARTS_FAST=0`` in the environment (read once, at import);
- ``set_enabled(False)`` for the rest of the process;
- ``with fast.disabled(): ...`` (or ``fast.enabled_as(flag)``) for a block.

A network chooses its form once, when it is built (``emodarts_core.networks``), the way
timm's layers read ``use_fused_attn()`` when they are made; the process settings of a
run (``emodarts_core.runtime``: the heap, OpenMP's threads) read the switch when a run
starts. The fast form, with what each part replaces: ``ops`` (the space's ops with the
same modules and parameter names), ``cells`` (the mixed ops and cells with each state's
ReLU, subsamples and pools shared between its edges), ``networks`` (``FastSearchNetwork``,
``FastDerivedNetwork``); the kernels ``norms`` (the batch-norm variants), ``conv``
(depthwise and stride-2 phase convolutions), ``recurrence`` (the batched tanh
recurrence); ``autograd`` holds what the custom Functions share. ``docs/PERFORMANCE.md``
has the benchmark, and ``emodarts_core.space`` the search space in plain PyTorch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_FALSE = {"0", "false", "no", "off"}
_enabled = os.environ.get("EMODARTS_FAST", "1").strip().lower() not in _FALSE


def enabled() -> bool:
    """Whether the fast paths may run (all of them, or none)."""
    return _enabled


def set_enabled(flag: bool) -> None:
    """Turn every fast path on or off for the rest of the process."""
    global _enabled
    _enabled = bool(flag)


@contextlib.contextmanager
def enabled_as(flag: bool) -> Iterator[None]:
    """Run a block with the fast paths on (True) or off (False), then restore the switch."""
    global _enabled
    before = _enabled
    _enabled = bool(flag)
    try:
        yield
    finally:
        _enabled = before


def disabled() -> contextlib.AbstractContextManager[None]:
    """Run a block with the plain form only."""
    return enabled_as(False)
