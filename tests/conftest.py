"""Project-wide test settings.

Tests use tiny networks, for which one torch thread is faster than two contended ones
(measured: a smoke search step took seconds with 2 threads on a busy 2-core machine and
milliseconds with 1), and a headless matplotlib backend.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
