"""The resident memory of this process, and its peak over a block of code.

The step benchmark (`emodarts_core.perf.bench`) reports a CPU step's memory as the peak
resident set size: tracemalloc does not see torch's allocations, and the kernel's own
high-water mark (VmHWM, resettable through /proc/self/clear_refs on Linux >= 4.0) is
exact and costs the timed steps nothing.
"""

from __future__ import annotations

import os
import threading
import time

from emodarts_core.darts.memory import read_proc_bytes


def rss_bytes() -> int:
    """Current resident set size of this process."""
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_kernel_peak() -> bool:
    """Reset the kernel's resident-size high-water mark of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return kernel_peak() is not None
    except OSError:
        return False


def kernel_peak() -> int | None:
    """The kernel's resident-size high-water mark (VmHWM) of this process, in bytes."""
    return read_proc_bytes("/proc/self/status", "VmHWM")


class PeakRSS:
    """Context manager measuring the peak resident set size within it; `.peak` in bytes.

    On Linux the kernel's own high-water mark is reset on entry and read on exit: exact,
    and no thread competes with the timed steps for the CPU. Elsewhere (or where
    /proc/self/clear_refs cannot be written) a background thread samples the resident size
    every `interval` seconds, which can miss a short peak; `.method` says which was used.
    The kernel's mark is read only after a successful reset, since otherwise it would hold
    the peak of an earlier configuration of the same process.
    """

    KERNEL = "kernel high-water mark (VmHWM), reset per configuration"

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak = 0
        self.method = self.KERNEL
        self._stop = threading.Event()
        self._thread = None

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = rss_bytes()
        self._kernel = reset_kernel_peak()
        if not self._kernel:
            self.method = (f"sampled every {1000 * self.interval:g} ms (no resettable kernel high-water mark: "
                           "/proc/self/clear_refs unavailable); a short peak can be missed")
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self.peak = max(self.peak, rss_bytes(), (kernel_peak() or 0) if self._kernel else 0)


__all__ = ["PeakRSS", "kernel_peak", "reset_kernel_peak", "rss_bytes"]
