#!/usr/bin/env python
"""Fail when a tracked notebook carries outputs, execution counts or run metadata; `--strip` cleans them.

Notebooks are stored clean so that diffs show only what a person wrote and no run's
numbers or a user's paths (papermill records its input and output paths and the
parameters, a corpus folder among them) leak into the repository. Only the notebooks
git tracks are checked, so a user's executed copy (papermill's output, anywhere in the
tree) is never flagged, and `--strip` never touches one. Usage:

    python tools/check_notebooks_clean.py [--strip] [NOTEBOOK_OR_DIR ...]   (default: tracked notebooks)

Exit status 1 lists every dirty notebook and cell; with `--strip` the notebooks are
rewritten clean (outputs emptied, execution counts nulled, widget state and run metadata
dropped) and the exit status is 0. `.pre-commit-config.yaml` runs the check on commit.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tracked_notebooks(root: Path = ROOT) -> list[Path] | None:
    """The notebooks git tracks under `root`, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "*.ipynb"], cwd=root, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted(root / name for name in out.stdout.decode().split("\0") if name)


def notebook_paths(targets: list[str]) -> list[Path]:
    """The tracked .ipynb files named or found in `targets` (default: all tracked ones).

    A notebook inside the repository counts only if git tracks it; one named outside it
    (or anywhere, outside a git checkout) is checked as named.
    """
    tracked = tracked_notebooks()
    if not targets:
        return tracked if tracked is not None else sorted(
            p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    paths = []
    for target in targets:
        target = Path(target).resolve()
        found = [target] if target.is_file() else sorted(target.rglob("*.ipynb"))
        inside = tracked is not None and ROOT.resolve() in target.parents
        paths += [p for p in found if ".ipynb_checkpoints" not in p.parts and (not inside or p in tracked)]
    return paths


#: Strings in notebook metadata that look like a machine's own paths.
LOCAL_PATH = re.compile(r"(^|[\s'\"=])(/(home|Users|tmp|root|mnt|data|scratch|work|var)/|[A-Za-z]:\\)")


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


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
        if "papermill" in cell.get("metadata", {}) or "execution" in cell.get("metadata", {}):
            found.append(f"cell {index}: run metadata")
    metadata = notebook.get("metadata", {})
    if "widgets" in metadata:
        found.append("metadata: saved widget state")
    if "papermill" in metadata:
        found.append("metadata: papermill's record of a run (paths and parameters)")
    leaks = sorted({s for s in _strings({k: v for k, v in metadata.items() if k != "papermill"})
                    if LOCAL_PATH.search(s)})
    if leaks:
        found.append("metadata: local path(s) " + ", ".join(leaks[:3]))
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
        print(f"{dirty} tracked notebook(s) are not clean; `python tools/check_notebooks_clean.py --strip` "
              "cleans the tracked notebooks (never an executed copy elsewhere)", file=sys.stderr)
        return 1
    print(f"{len(paths)} notebook(s) clean" if not args.strip else "done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
