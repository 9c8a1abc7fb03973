"""The code rules of docs/ARCHITECTURE.md ("Invariants", "Code rules"), checked on the
source of `emodarts_core/`, `data_prep/` and `tools/`: no module over 500 lines, no
private name used outside its package, and a README of at most 150 lines. Each checker is also run on a planted
violation, so that a checker that sees nothing fails its own test.

A *package* here is a top-level unit of the repository: `data_prep`, each sub-package or
top-level module of `emodarts_core` (`emodarts_core.study`, `emodarts_core.config`, ...),
and `tools`. A private name is one with a leading underscore that is not a dunder. The
rule: a module may use a private name only of a module in its own package, whether by
`from M import _name` or by `M._name` where `M` is a module of the repository. Tests may
call private helpers of the module they test, so `tests/` is not scanned.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("emodarts_core", "data_prep", "tools")
MAX_MODULE_LINES = 500
MAX_README_LINES = 150


def python_files(root: Path, tops=SCANNED) -> list[Path]:
    return sorted(p for top in tops for p in (root / top).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """The package a module belongs to, for the private-name rule."""
    parts = module.split(".")
    if parts[0] == "emodarts_core" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) and name != "_"


def resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def private_uses(root: Path, tops=SCANNED) -> list[str]:
    """Every use of a private name of another package, as 'file:line: what'."""
    files = python_files(root, tops)
    modules = {module_name(root, p) for p in files}
    found = []
    for path in files:
        me = module_name(root, path)
        mine = package_of(me)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        bound: dict[str, str] = {}          # local name -> repository module it names
        where = path.relative_to(root).as_posix()

        def foreign(module: str) -> bool:
            return module in modules and package_of(module) != mine

        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                source = node.module or ""
                if node.level:
                    source = resolve_relative(me, path.name == "__init__.py", node.level, node.module)
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    if full in modules:
                        bound[alias.asname or alias.name] = full
                    if is_private(alias.name) and foreign(source if source in modules else full):
                        found.append(f"{where}:{node.lineno}: from {source} import {alias.name}")
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and is_private(node.attr)):
                continue
            chain, inner = [], node.value
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if not isinstance(inner, ast.Name) or inner.id not in bound:
                continue
            dotted = ".".join([bound[inner.id]] + chain[::-1])
            if foreign(dotted):
                found.append(f"{where}:{node.lineno}: {dotted}.{node.attr}")
    return found


def long_modules(root: Path, tops=SCANNED, limit=MAX_MODULE_LINES) -> list[str]:
    return [f"{p.relative_to(root).as_posix()}: {n} lines"
            for p in python_files(root, tops)
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit]


def readme_too_long(path: Path, limit=MAX_README_LINES) -> str | None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    return f"{path.name} has {lines} lines, over {limit}: move the detail to docs/" if lines > limit else None


# --- the rules, on the repository ---------------------------------------------------------

def test_no_module_is_over_500_lines():
    assert not long_modules(ROOT), f"modules over {MAX_MODULE_LINES} lines: {long_modules(ROOT)}"


def test_no_private_name_is_used_outside_its_package():
    uses = private_uses(ROOT)
    assert not uses, "private names used outside their package (make them public where they " \
                     "are a real API between packages):\n" + "\n".join(uses)


def test_readme_is_at_most_150_lines():
    problem = readme_too_long(ROOT / "README.md")
    assert problem is None, problem


# --- the checkers, on planted violations --------------------------------------------------

def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_a_long_module_is_found(tmp_path):
    write(tmp_path, "data_prep/short.py", "x = 1\n" * MAX_MODULE_LINES)
    write(tmp_path, "emodarts_core/study/long.py", "x = 1\n" * (MAX_MODULE_LINES + 1))
    assert long_modules(tmp_path) == [f"emodarts_core/study/long.py: {MAX_MODULE_LINES + 1} lines"]


def test_each_form_of_a_foreign_private_use_is_found(tmp_path):
    write(tmp_path, "emodarts_core/__init__.py", "")
    write(tmp_path, "emodarts_core/perf/__init__.py", "")
    write(tmp_path, "emodarts_core/perf/bench.py", "def _build(): pass\ndef _inner(): pass\n")
    write(tmp_path, "emodarts_core/perf/step.py",          # same package: allowed
          "from .bench import _build\nfrom emodarts_core.perf import bench\nbench._inner()\n")
    write(tmp_path, "emodarts_core/darts/__init__.py", "")
    write(tmp_path, "emodarts_core/darts/search.py",
          "from emodarts_core.perf.bench import _build\n"
          "from emodarts_core.perf import bench as b\n"
          "import emodarts_core.perf.bench\n"
          "def f(x):\n"
          "    b._inner()\n"
          "    emodarts_core.perf.bench._build()\n"
          "    x._private, b.__doc__, b.public\n")      # not a module, a dunder, a public name
    write(tmp_path, "emodarts_core/darts/local.py", "from ..perf import bench\nbench._build()\n")
    write(tmp_path, "tools/tool.py", "from emodarts_core.perf import bench\nbench._build()\n")
    write(tmp_path, "data_prep/__init__.py", "def _helper(): pass\n")
    write(tmp_path, "data_prep/cli.py", "from data_prep import _helper\n")   # same package
    write(tmp_path, "emodarts_core/config.py", "import data_prep\ndata_prep._helper()\n")
    assert sorted(private_uses(tmp_path)) == sorted([
        "emodarts_core/darts/search.py:1: from emodarts_core.perf.bench import _build",
        "emodarts_core/darts/search.py:5: emodarts_core.perf.bench._inner",
        "emodarts_core/darts/search.py:6: emodarts_core.perf.bench._build",
        "emodarts_core/darts/local.py:2: emodarts_core.perf.bench._build",
        "tools/tool.py:2: emodarts_core.perf.bench._build",
        "emodarts_core/config.py:2: data_prep._helper",
    ])


def test_the_repository_copy_with_a_planted_private_use_fails(tmp_path):
    """The checker run on a copy of the real library finds the one use planted in it."""
    for top in SCANNED:
        shutil.copytree(ROOT / top, tmp_path / top, ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
    with (tmp_path / "tools" / "warm_up.py").open("a", encoding="utf-8") as tool:
        tool.write("\nfrom emodarts_core.training import rundir\nrundir._planted()\n")
    planted = [use for use in private_uses(tmp_path) if "_planted" in use]
    assert len(planted) == 1 and planted[0].startswith("tools/warm_up.py:")


def test_a_long_readme_is_found(tmp_path):
    write(tmp_path, "README.md", "line\n" * MAX_README_LINES)
    assert readme_too_long(tmp_path / "README.md") is None
    write(tmp_path, "README.md", "line\n" * (MAX_README_LINES + 1))
    assert readme_too_long(tmp_path / "README.md") == f"README.md has {MAX_README_LINES + 1} lines, " \
                                                      f"over {MAX_README_LINES}: move the detail to docs/"
