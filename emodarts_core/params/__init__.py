"""The parameter files, installed with the package: `path("ci")`, `load("cpu")`, `names()`.

They live here as package data so that a notebook or a sweep finds them wherever it runs
(an installed wheel, Colab, Binder, a folder outside the repository), without looking
for the repository. Papermill takes one with `-f`:

    papermill 03_search.ipynb out.ipynb -f "$(python -m emodarts_core.params ci)"

- `ci.yaml`: CI's tiny settings; every notebook runs in seconds on the generated corpus.
- `cpu.yaml`: the notebooks on a 2-core CPU.
- `classroom.yaml`: a lesson: each notebook in at most 3 minutes on a 2-core CPU
  (timed with tools/time_notebooks.py).
- `paper.yaml`, `paper_<dataset>.yaml`: the paper's settings (a GPU in practice).
- `sweep_*.yaml`, `study_emodb.yaml` (the first EmoDB study), `study_emodb_v2.yaml` (its rerun
  with an α budget that moves the α): profiles for `python -m emodarts_core.sweep --params NAME`.

A profile serves every notebook, and papermill warns about each key a notebook does not
have ("Passed unknown parameter"). So that this warning means a typo, a profile is handed
to one notebook with only that notebook's keys:

    papermill 03_search.ipynb out.ipynb -f "$(python -m emodarts_core.params ci --notebook 03_search.ipynb)"

`for_notebook` gives those keys, and `path(name, notebook=...)` a file holding them (in the
cache, `EMODARTS_CACHE`).
"""

from __future__ import annotations

import ast
import json
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path

import yaml


def names() -> list[str]:
    """The names of the installed parameter files (without `.yaml`), sorted."""
    return sorted(entry.name[:-5] for entry in resources.files(__name__).iterdir() if entry.name.endswith(".yaml"))


def path(name: str, notebook=None) -> Path:
    """The file of parameter set `name` (`"ci"` or `"ci.yaml"`); KeyError lists the known names.

    Wheels and editable installs unpack package data as plain files, so the path can be
    handed to papermill (`-f`) or to the sweep as is. With `notebook` (a notebook's path),
    a file in the cache holding only the keys that notebook has (`for_notebook`)."""
    stem = name[:-5] if name.endswith(".yaml") else name
    entry = resources.files(__name__) / f"{stem}.yaml"
    if not entry.is_file():
        raise KeyError(f"no parameter file {stem!r}; known: {', '.join(names())}")
    if notebook is None:
        return Path(str(entry))
    from data_prep.registry import cache_dir

    values = for_notebook(stem, notebook)
    out = cache_dir() / "params" / f"{stem}-{Path(notebook).stem}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"# {stem}.yaml, the keys of {Path(notebook).name} only\n")
        yaml.safe_dump(values, fh, sort_keys=False)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return out


def notebook_parameters(notebook) -> set[str]:
    """The parameter names of a notebook: the assignments of its cell tagged `parameters`."""
    notebook = Path(notebook)
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        source = next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
        body = ast.parse(source).body
    except (OSError, ValueError, KeyError, StopIteration, SyntaxError) as exc:
        raise ValueError(f"{notebook}: no readable cell tagged 'parameters' ({type(exc).__name__})") from None
    found = set()
    for node in body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                elts = target.elts if isinstance(target, ast.Tuple) else [target]
                found |= {t.id for t in elts if isinstance(t, ast.Name)}
    return found


def for_notebook(name: str, notebook) -> dict:
    """Parameter set `name` with only the keys `notebook` has, so that papermill's warning
    about an unknown parameter is left for a real typo."""
    keys = notebook_parameters(notebook)
    return {k: v for k, v in load(name).items() if k in keys}


def load(name: str) -> dict:
    """Parameter set `name` as a dict (what papermill's `-f` would pass)."""
    return yaml.safe_load(path(name).read_text(encoding="utf-8")) or {}


def main(argv: list[str] | None = None) -> int:
    """`python -m emodarts_core.params [NAME ...] [--notebook NB.ipynb]`: print each file's
    path (with --notebook, of a copy holding only that notebook's keys), or list them all."""
    args = list(sys.argv[1:] if argv is None else argv)
    notebook = None
    if "--notebook" in args:
        at = args.index("--notebook")
        if at + 1 >= len(args):
            print("--notebook needs a notebook's path", file=sys.stderr)
            return 2
        notebook = args[at + 1]
        del args[at:at + 2]
    try:
        for name in args or names():
            print(path(name, notebook))
    except (KeyError, ValueError) as error:
        print(error.args[0], file=sys.stderr)
        return 2
    return 0
