#!/usr/bin/env python
"""Time the five notebooks under one parameter profile, the way a class runs them.

    python tools/time_notebooks.py --params classroom [--out build/notebook_times] [--only 03_search]

Each notebook is executed with papermill in a fresh folder outside the repository, in
order (03 writes the genotype that 04 retrains, 05 reads both runs), as a student's
kernel would run it: its own process, the profile's settings, nothing cached from an
earlier run. Prints one Markdown row per notebook (wall-clock seconds, from the start of
papermill's execution to its end, kernel start included) and writes `times.json`.

This is a benchmark, not a test: the README's notebook table states these figures with
the machine they were measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import papermill

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_smoke_notebooks import NOTEBOOKS, smoke_parameters  # noqa: E402


def time_notebooks(profile: str, out_dir: Path, only: list[str] | None = None) -> list[dict]:
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    os.environ.pop("MPLBACKEND", None)  # the kernel inherits it: figures inline, as in JupyterLab
    for name, parameters in smoke_parameters(out_dir, profile).items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        papermill.execute_notebook(NOTEBOOKS / f"{name}.ipynb", out_dir / f"{name}.ipynb",
                                   parameters=parameters, cwd=str(out_dir), progress_bar=False)
        rows.append({"notebook": name, "seconds": round(time.perf_counter() - start, 1)})
        print(f"| `{name}.ipynb` | {rows[-1]['seconds']:.0f} s |", flush=True)
    report = {"profile": profile, "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "when": time.strftime("%Y-%m-%d %H:%M"), "notebooks": rows}
    (out_dir / "times.json").write_text(json.dumps(report, indent=1))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="classroom", help="an installed parameter profile")
    parser.add_argument("--out", type=Path, default=Path("build") / "notebook_times")
    parser.add_argument("--only", nargs="+", help="notebook names without .ipynb (default: all five)")
    args = parser.parse_args(argv)
    print(f"| notebook | wall clock ({args.params}, {os.cpu_count()} CPUs) |\n| --- | --- |")
    time_notebooks(args.params, args.out, args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
