"""emodarts_core: joint CNN -> SeqNN differentiable architecture search for speech emotion recognition."""

import os

# Idle OpenMP threads sleep instead of spinning. On a shared or busy CPU, spinning threads
# made a search step up to 10x slower (measured on a 2-core machine). It only takes effect
# when set before torch loads its OpenMP runtime, hence here; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
