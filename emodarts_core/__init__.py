"""emodarts_core: joint CNN -> SeqNN differentiable architecture search for speech emotion recognition."""

import os


def _busy_cpu() -> bool:
    """Whether another process already keeps at least one core busy (1-minute load >= 1)."""
    try:
        return os.getloadavg()[0] >= 1.0
    except OSError:  # no load average on this platform: assume the worst
        return True


# OpenMP's wait policy, chosen once, before torch loads its OpenMP runtime (an explicit
# OMP_WAIT_POLICY always wins). Measured on the 2-core CPU with the paper preset's search
# step (python -m emodarts_core.bench): on an idle machine libgomp's default (threads spin
# briefly between parallel regions) takes 12.8 s per step and PASSIVE (they sleep at
# once) 25.8 s, the wake-ups of thousands of small regions adding up; with one core busy
# elsewhere the spinning makes it 66 s, PASSIVE still 25.8 s. So: the default when the
# CPU is idle, PASSIVE when it is not.
if "OMP_WAIT_POLICY" not in os.environ and _busy_cpu():
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

__version__ = "0.1.0"
