"""emodarts_core: joint CNN -> SeqNN differentiable architecture search for speech emotion recognition."""

import os


def _busy_cpu(samples: int = 5, interval: float = 0.01) -> bool:
    """Whether another task is keeping a core busy now.

    Reads the number of runnable tasks in /proc/loadavg (ours excluded) a few times and
    takes the median: a long-running job (another search, a sweep worker) is counted, a
    passing blip is not. Where /proc is missing, the 1-minute load average decides.
    """
    import time

    counts = []
    try:
        for i in range(samples):
            with open("/proc/loadavg") as fh:
                counts.append(int(fh.read().split()[3].split("/")[0]) - 1)
            if i < samples - 1:
                time.sleep(interval)
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0] >= 1.0
        except OSError:  # no load figures on this platform: assume the worst
            return True
    return sorted(counts)[len(counts) // 2] >= 1


# OpenMP's wait policy, chosen once, before torch loads its OpenMP runtime (an explicit
# OMP_WAIT_POLICY always wins). Measured on the 2-core CPU with the paper preset's search
# step (python -m emodarts_core.bench): on an idle machine libgomp's default (threads spin
# briefly between parallel regions) takes 12.8 s per step and PASSIVE (they sleep at
# once) 25.8 s, the wake-ups of thousands of small regions adding up; with one core busy
# elsewhere the spinning makes it 66 s, PASSIVE still 25.8 s. So: the default when no
# other task is running, PASSIVE when one is.
if "OMP_WAIT_POLICY" not in os.environ and _busy_cpu():
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

__version__ = "0.1.0"
