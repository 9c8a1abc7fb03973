"""The performance kernels, apart from the paper's equations, behind one switch.

Everything in this package makes the search faster or leaner on a CPU without changing
what it computes; ``emodarts_core.space`` holds the paper's operations in their plain
form, and each fast path here is tested against that form. One switch turns all of them
off, the way timm's ``set_fused_attn`` does for its fused attention:

- ``EMODARTS_FAST=0`` in the environment (read once, at import);
- ``set_enabled(False)`` for the rest of the process;
- ``with fast.disabled(): ...`` (or ``fast.enabled_as(flag)``) for a block.

Every guard of a fast path calls :func:`enabled`. The kernels, each with what it
replaces and what it measured: ``norms`` (the batch-norm variants), ``conv`` (depthwise
and stride-2 phase convolutions), ``recurrence`` (the batched tanh recurrence), ``heap``
(keeping freed memory in the process heap), ``threads`` (the OpenMP wait policy);
``autograd`` holds what the custom Functions share. ``docs/PERFORMANCE.md`` has the
benchmark, and ``emodarts_core/space/reference.py`` the search space with none of them.
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
    """Run a block with the plain reference paths only."""
    return enabled_as(False)
