#!/usr/bin/env python
"""Fail when a committed notebook carries outputs, execution counts or run metadata; `--strip` cleans them.

Notebooks are stored clean so that diffs show only what a person wrote and no run's
numbers or a user's paths (papermill records its input and output paths and the
parameters, a corpus folder among them) leak into the repository. What is checked is
what git holds: each tracked notebook as staged in git's index (what the last commit
holds, unless a newer version is staged), not the file in the working tree. A notebook
someone ran in JupyterLab, whose autosave wrote outputs into the working file, is
therefore not a failure: the git filter installed by `make setup` (nbstripout) strips
such outputs when the file is staged, and `python -m emodarts_core.notebooks copy DEST`
(or `make lab`) keeps them out of the tracked files altogether. An executed copy
elsewhere in the tree (papermill's output) is never checked, and `--strip` never touches
one. Outside a git checkout the files themselves are checked. Usage:

    python tools/check_notebooks_clean.py [--strip] [--worktree] [NOTEBOOK_OR_DIR ...]   (default: tracked notebooks)

Exit status 1 lists every dirty notebook and cell; with `--strip` the working files are
rewritten clean (outputs emptied, execution counts nulled, widget state and run metadata
dropped), then staging them (`git add`) makes the committed version clean too.
`--worktree` checks the working files instead of git's copy. `.pre-commit-config.yaml`
runs the check on commit.

`--filter` reads a notebook on stdin and writes it clean on stdout: the last stage of the
git clean filter that `make setup` installs (after nbstripout), removing what a run in
place adds and nbstripout keeps: papermill's injected-parameters cell, the empty tag
lists it gives every cell, and the kernel's full `language_info`. A tracked notebook
executed in place and staged then equals the committed one. Input that is not a
notebook's JSON goes through unchanged (a filter must never lose a file).
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


def committed_text(path: Path, root: Path = ROOT) -> str | None:
    """`path` as git's index holds it (the committed version unless a newer one is staged);
    None when git does not track it (outside the repository, or outside a git checkout)."""
    try:
        relative = path.resolve().relative_to(root.resolve())
        out = subprocess.run(["git", "show", f":{relative.as_posix()}"], cwd=root, capture_output=True, check=True)
    except (ValueError, OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.decode("utf-8")


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
        if INJECTED in cell.get("metadata", {}).get("tags", ()):
            found.append(f"cell {index}: papermill's injected parameters")
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


#: The tag of the cell papermill adds after the parameters cell, holding a run's values.
INJECTED = "injected-parameters"


def strip(notebook: dict) -> dict:
    """`notebook` without what a run adds: outputs, execution counts, papermill's and
    nbclient's cell records, papermill's injected-parameters cell and empty tag lists,
    saved widget state, papermill's run record and the kernel's `language_info` beyond
    the language's name."""
    notebook["cells"] = [cell for cell in notebook.get("cells", [])
                         if INJECTED not in cell.get("metadata", {}).get("tags", ())]
    for cell in notebook["cells"]:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        metadata = cell.get("metadata", {})
        metadata.pop("execution", None)
        metadata.pop("papermill", None)
        if metadata.get("tags") == []:
            del metadata["tags"]
    metadata = notebook.get("metadata", {})
    metadata.pop("widgets", None)
    metadata.pop("papermill", None)
    if isinstance(metadata.get("language_info"), dict) and "name" in metadata["language_info"]:
        metadata["language_info"] = {"name": metadata["language_info"]["name"]}
    return notebook


def notebook_text(notebook: dict) -> str:
    """`notebook` as nbformat writes it (the layout of the committed notebooks)."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def git_filter(text: str) -> str:
    """The clean version of a notebook's text; text that is not a notebook, unchanged."""
    try:
        notebook = json.loads(text)
    except ValueError:
        return text
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells", []), list):
        return text
    return notebook_text(strip(notebook))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="notebooks or folders (default: notebooks/)")
    parser.add_argument("--strip", action="store_true", help="rewrite the working files without outputs")
    parser.add_argument("--worktree", action="store_true",
                        help="check the working files, not the versions git holds")
    parser.add_argument("--filter", action="store_true",
                        help="read a notebook on stdin, write it clean on stdout (git's clean filter)")
    args = parser.parse_args(argv)
    if args.filter:
        sys.stdout.buffer.write(git_filter(sys.stdin.buffer.read().decode("utf-8")).encode("utf-8"))
        return 0
    paths = notebook_paths(args.targets)
    dirty = 0
    for path in paths:
        if args.strip:
            notebook = json.loads(path.read_text(encoding="utf-8"))
            if problems(notebook):
                path.write_text(notebook_text(strip(notebook)), encoding="utf-8")
                print(f"stripped {path}")
            continue
        text = None if args.worktree else committed_text(path)
        where = "" if text is None else " (as committed)"
        try:
            found = problems(json.loads(path.read_text(encoding="utf-8") if text is None else text))
        except ValueError as error:
            found = [f"not a notebook's JSON ({error})"]
        if found:
            dirty += 1
            print(f"{path}{where}: " + "; ".join(found))
    if dirty:
        print(f"{dirty} tracked notebook(s) are not clean; `python tools/check_notebooks_clean.py --strip` "
              "cleans the working files (never an executed copy elsewhere), and `git add` stages them clean",
              file=sys.stderr)
        return 1
    print(f"{len(paths)} notebook(s) clean" if not args.strip else "done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
