#!/usr/bin/env python
"""Write copies of the notebooks with the CI parameters (papermill, not executed), for nbval and the browser test.

    python tools/prepare_smoke_notebooks.py OUT_DIR [--only 01_features 02_mixed_op_relaxation]
    python -m pytest --nbval-lax OUT_DIR

Each copy gets the installed `ci` parameter file (`emodarts_core.params.path("ci")`)
plus run directories under OUT_DIR/runs, and the chain the notebooks form: 03 writes a
genotype, 04 retrains it, 05 reads both runs. nbval then executes the copies in file-name
order (01 ... 06), one kernel each; 06 runs its own tiny searches.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import papermill

from emodarts_core import params

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK_NAMES = ("01_features", "02_mixed_op_relaxation", "03_search", "04_retrain", "05_paper_figures",
                  "06_does_the_search_help")


def smoke_parameters(out_dir: Path, profile: str = "ci") -> dict[str, dict]:
    """Per-notebook papermill parameters: a profile (`ci.yaml`) plus run directories under
    `out_dir`, each with only the keys its notebook has (`params.for_notebook`), so that
    papermill warns about no unknown parameter."""
    runs = out_dir / "runs"
    search = runs / f"search_{profile}"
    own = {name: params.for_notebook(profile, NOTEBOOKS / f"{name}.ipynb") for name in NOTEBOOK_NAMES}
    return {
        "01_features": {**own["01_features"], "run_dir": str(runs / "01_features")},
        "02_mixed_op_relaxation": {**own["02_mixed_op_relaxation"], "run_dir": str(runs / "02_mixed_op")},
        "03_search": {**own["03_search"], "run_dir": str(search), "resume": False,
                      "collapse_dir": str(out_dir / "collapse_demo")},  # outside the runs 05 counts
        "04_retrain": {**own["04_retrain"], "genotype_path": str(search / "genotype.json"),
                       "run_dir": str(runs / f"retrain_{profile}"), "resume": False},
        "05_paper_figures": {**own["05_paper_figures"], "results_dir": str(runs), "figures_dir": str(runs / "05_paper_figures")},
        "06_does_the_search_help": {**own["06_does_the_search_help"], "results_dir": str(runs),
                                    "run_dir": str(out_dir / "06_does_the_search_help")},  # not among 05's runs
    }


def write_smoke_notebooks(out_dir: Path, only: list[str] | None = None) -> list[Path]:
    """Write the smoke copies (all six, or the names in `only`) into a fresh `out_dir`."""
    out_dir = Path(out_dir).resolve()
    if out_dir.exists():
        shutil.rmtree(out_dir)  # stale run directories would be refused (resume=False)
    out_dir.mkdir(parents=True)
    written = []
    for name, parameters in smoke_parameters(out_dir).items():
        if only is None or name in only:
            written.append(out_dir / f"{name}.ipynb")
            papermill.execute_notebook(NOTEBOOKS / f"{name}.ipynb", written[-1], parameters=parameters,
                                       prepare_only=True, progress_bar=False)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--only", nargs="+", help="notebook names without .ipynb (default: all six)")
    args = parser.parse_args(argv)
    write_smoke_notebooks(args.out_dir, args.only)
    print(f"smoke notebooks in {args.out_dir.resolve()}; run: python -m pytest --nbval-lax {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
