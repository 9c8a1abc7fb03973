"""tools/warm_up.py, which `make setup` runs after the install: librosa's numba code is
compiled into its on-disk cache (so no feature build compiles it again in each worker),
and the tool keeps saying that it is compiling while it does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # a cold compilation of all the numba code the feature build imports
def test_warm_up_leaves_librosas_compiled_code_cached_and_reports_while_compiling(tmp_path):
    cache = tmp_path / "numba"  # a cold cache of its own, as in a fresh environment
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "warm_up.py"), "--every", "0.2"], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "NUMBA_CACHE_DIR": str(cache)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("compiling librosa's numba code") and lines[-1].startswith("librosa's numba code compiled")
    assert any(line.strip().startswith("still compiling") for line in lines[1:-1])  # never silent for long
    cached = {p.name.split("-")[0] for p in cache.rglob("*.nbi")}
    assert cached, "nothing was cached"
    # what the feature build imports: librosa's audio and utility modules
    assert any(name.startswith("audio.") for name in cached) and any(name.startswith("utils.") for name in cached)
