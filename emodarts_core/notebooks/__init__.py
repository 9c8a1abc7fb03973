"""Working copies of the notebooks, so that running them never writes into the tracked files.

JupyterLab saves a notebook's outputs into the file it opened. Opened in the repository's
`notebooks/`, the five teaching notebooks would gain outputs (and a user's paths) that
the clean-notebook check refuses and that conflict with the next `git pull`. A working
copy keeps them apart: a student or a class works in its own folder, and the repository
stays as committed.

    python -m emodarts_core.notebooks copy DEST [--with-solutions] [--force] [--source DIR]

copies `notebooks/*.ipynb` to DEST and prints how to open them; the worked solutions
(`notebooks/solutions/`) come only with `--with-solutions` (a teacher's copy), since a
student's copy that holds them gives the exercises away. It refuses to overwrite a file already in DEST (a copy someone has worked in) unless
`--force` is given. `make lab` makes such a copy under `lab/` and opens JupyterLab there.
The notebooks need only the installed package (parameter files are package data), so a
copy runs anywhere.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

#: The repository's notebook folder, next to the package in a checkout (editable install).
REPOSITORY_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


class CopyRefused(Exception):
    """The copy would overwrite files, or there is nothing to copy; the message says which."""


def notebook_files(source: Path = REPOSITORY_NOTEBOOKS, *, with_solutions: bool = False) -> list[Path]:
    """The files a working copy holds, relative to `source`: the notebooks, and their
    solutions when `with_solutions`."""
    source = Path(source)
    if not source.is_dir() or not any(source.glob("*.ipynb")):
        raise CopyRefused(f"{source}: no notebooks here. They come with a clone of the repository; "
                          "clone it, or name its notebooks/ folder with --source")
    files = sorted(p.relative_to(source) for p in source.glob("*.ipynb"))
    solutions = source / "solutions"
    if with_solutions and solutions.is_dir():
        files += sorted(p.relative_to(source) for p in solutions.rglob("*")
                        if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    return files


def copy_notebooks(dest, *, force: bool = False, source: Path = REPOSITORY_NOTEBOOKS,
                   with_solutions: bool = False) -> list[Path]:
    """Copy the notebooks (and, when `with_solutions`, their solutions) from `source` to
    `dest`; return the written paths.

    Nothing is written when any of the files already exists in `dest` and `force` is
    false: a working copy may hold someone's answers and outputs."""
    source, dest = Path(source).resolve(), Path(dest).resolve()
    files = notebook_files(source, with_solutions=with_solutions)
    if dest == source or source in dest.parents:
        raise CopyRefused(f"{dest}: a working copy must lie outside {source}, which git tracks")
    existing = [name for name in files if (dest / name).exists()]
    if existing and not force:
        raise CopyRefused(f"{dest} already holds {len(existing)} of these files ({', '.join(map(str, existing[:3]))}"
                          f"{', ...' if len(existing) > 3 else ''}); keep working there, choose another folder, "
                          "or pass --force to overwrite them")
    written = []
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emodarts_core.notebooks",
                                     description="Working copies of the notebooks, outside the tracked files.")
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser("copy", help="copy the notebooks (without their solutions) to DEST")
    copy.add_argument("dest", type=Path, help="the folder of the working copy (created if missing)")
    copy.add_argument("--force", action="store_true", help="overwrite files already in DEST")
    copy.add_argument("--with-solutions", action="store_true",
                      help="copy the worked solutions (notebooks/solutions/) too: a teacher's copy, not a student's")
    copy.add_argument("--source", type=Path, default=REPOSITORY_NOTEBOOKS,
                      help="the notebooks folder to copy (default: the repository's notebooks/)")
    args = parser.parse_args(argv)
    try:
        written = copy_notebooks(args.dest, force=args.force, source=args.source, with_solutions=args.with_solutions)
    except CopyRefused as error:
        print(f"not copied: {error}", file=sys.stderr)
        return 1
    dest = args.dest.resolve()
    notebooks = [p.name for p in written if p.parent == dest]
    solutions = "and their solutions" if args.with_solutions else "without their solutions (--with-solutions adds them)"
    print(f"copied {len(notebooks)} notebooks ({', '.join(notebooks)}) {solutions} to {dest}\n"
          f"open them with:  jupyter lab {dest}\n"
          f"or run one headless:  papermill {dest / notebooks[0]} out.ipynb --log-output\n"
          "outputs, runs/ and figures stay in that folder; the repository's notebooks/ is left as committed")
    return 0
