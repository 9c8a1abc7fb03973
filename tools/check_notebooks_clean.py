#!/usr/bin/env python
"""Fail when a committed notebook carries outputs or execution counts; `--strip` removes them.

Notebooks are stored clean so that diffs show only what a person wrote and no run's
numbers (or a user's paths) leak into the repository. Usage:

    python tools/check_notebooks_clean.py [--strip] [NOTEBOOK_OR_DIR ...]   (default: notebooks/)

Exit status 1 lists every dirty notebook and cell; with `--strip` the notebooks are
rewritten clean (outputs emptied, execution counts nulled, widget state dropped) and the
exit status is 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def notebook_paths(targets: list[str]) -> list[Path]:
    """The .ipynb files named or found (recursively, checkpoints excluded) in `targets`."""
    paths = []
    for target in targets or [str(ROOT / "notebooks")]:
        target = Path(target)
        found = [target] if target.is_file() else sorted(target.rglob("*.ipynb"))
        paths += [p for p in found if ".ipynb_checkpoints" not in p.parts]
    return paths


def problems(notebook: dict) -> list[str]:
    """What makes `notebook` (parsed JSON) not clean, one line per dirty cell."""
    found = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {index}: {len(cell['outputs'])} output(s)")
        if cell.get("execution_count") is not None:
            found.append(f"cell {index}: execution_count {cell['execution_count']}")
    if "widgets" in notebook.get("metadata", {}):
        found.append("metadata: saved widget state")
    return found


def strip(notebook: dict) -> dict:
    """`notebook` with outputs, execution counts and saved widget state removed."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
        cell.get("metadata", {}).pop("papermill", None)
    notebook.get("metadata", {}).pop("widgets", None)
    notebook.get("metadata", {}).pop("papermill", None)
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="notebooks or folders (default: notebooks/)")
    parser.add_argument("--strip", action="store_true", help="rewrite the notebooks without outputs")
    args = parser.parse_args(argv)
    paths = notebook_paths(args.targets)
    dirty = 0
    for path in paths:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        found = problems(notebook)
        if not found:
            continue
        if args.strip:
            path.write_text(json.dumps(strip(notebook), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"stripped {path}")
        else:
            dirty += 1
            print(f"{path}: " + "; ".join(found))
    if dirty:
        print(f"{dirty} notebook(s) have outputs; run `python tools/check_notebooks_clean.py --strip`",
              file=sys.stderr)
        return 1
    print(f"{len(paths)} notebook(s) clean" if not args.strip else "done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
