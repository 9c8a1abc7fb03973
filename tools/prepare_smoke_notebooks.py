#!/usr/bin/env python
"""Write smoke-parameterised copies of the five notebooks for nbval (papermill, not executed).

    python tools/prepare_smoke_notebooks.py OUT_DIR
    python -m pytest --nbval-lax OUT_DIR

Each copy gets `notebooks/params/smoke.yaml` plus run directories under OUT_DIR/runs, and
the chain the notebooks form: 03 writes a genotype, 04 retrains it, 05 reads both runs.
nbval then executes the copies in file-name order (01 ... 05), one kernel each.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import papermill
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def smoke_parameters(out_dir: Path) -> dict[str, dict]:
    """Per-notebook papermill parameters: smoke.yaml plus run directories under `out_dir`."""
    base = yaml.safe_load((NOTEBOOKS / "params" / "smoke.yaml").read_text())
    runs = out_dir / "runs"
    search = runs / "search_smoke"
    return {
        "01_features": {**base, "run_dir": str(runs / "01_features")},
        "02_mixed_op_relaxation": {**base, "run_dir": str(runs / "02_mixed_op")},
        "03_search": {**base, "run_dir": str(search), "resume": False,
                      "collapse_dir": str(out_dir / "collapse_demo")},  # outside the runs 05 counts
        "04_retrain": {**base, "genotype_path": str(search / "genotype.json"),
                       "run_dir": str(runs / "retrain_smoke"), "resume": False},
        "05_paper_figures": {"results_dir": str(runs), "figures_dir": str(runs / "05_paper_figures")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    out_dir = args.out_dir.resolve()
    if out_dir.exists():
        shutil.rmtree(out_dir)  # stale run directories would be refused (resume=False)
    out_dir.mkdir(parents=True)
    for name, params in smoke_parameters(out_dir).items():
        papermill.execute_notebook(NOTEBOOKS / f"{name}.ipynb", out_dir / f"{name}.ipynb", parameters=params,
                                   prepare_only=True, progress_bar=False)
    print(f"smoke notebooks in {out_dir}; run: python -m pytest --nbval-lax {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
