#!/usr/bin/env python
"""Compile librosa's numba code once, at install time, and say so while it compiles.

librosa compiles its numba functions the first time they are imported in an environment
and caches the machine code beside its sources (`__pycache__/*.nbi`, `*.nbc`). Without
this step the first feature build pays for it inside each of its worker processes, with
its progress bar at 0 for as long as the compilation takes; `make setup` runs this once
after the install, so the cache exists before any notebook runs. A line every few seconds
shows that the compilation is still going.

    python tools/warm_up.py [--every SECONDS]
"""

from __future__ import annotations

import argparse
import threading
import time


def compile_feature_code() -> None:
    """Compute one MFCC matrix the way the feature build does (`data_prep.features`),
    which imports and compiles every numba function it reaches."""
    import numpy as np

    from data_prep.features import default_config, mfcc_matrix

    cfg = default_config("synthetic")
    audio = np.random.default_rng(0).standard_normal(cfg.n_samples).astype(np.float32)
    mfcc_matrix(audio, cfg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, default=5.0, help="seconds between progress lines")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    done = threading.Event()

    def heartbeat():
        while not done.wait(args.every):
            print(f"  still compiling ({time.perf_counter() - began:.0f} s)", flush=True)

    print("compiling librosa's numba code for the MFCC features (once per environment)", flush=True)
    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    try:
        compile_feature_code()
    finally:
        done.set()
        ticker.join()
    print(f"librosa's numba code compiled and cached in {time.perf_counter() - began:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
