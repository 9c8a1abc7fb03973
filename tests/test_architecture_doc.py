"""docs/ARCHITECTURE.md's module map names every Python module of the library, the data
package and the tools, and names no module that is gone.

The map has a line per package folder (a backticked path ending in `/`, such as
`` `emodarts_core/study/sweep/` ``) followed by bullets whose backticked `*.py` names,
before the first "`:", are the modules of that folder.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"
PACKAGES = ("emodarts_core", "data_prep", "tools")


def modules_on_disk() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for top in PACKAGES for p in (ROOT / top).rglob("*.py")
            if "__pycache__" not in p.parts}


def modules_in_map(text: str) -> set[str]:
    """Every `folder/module.py` the module map names."""
    section = text.split("## Module map", 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.M)[0]
    named, folder = set(), None
    for line in section.splitlines():
        heading = re.match(r"^`([\w./]+/)`", line)
        if heading:
            folder = heading.group(1)
        elif line.startswith("- ") and folder is not None:
            names = line.split("`:", 1)[0]
            named |= {folder + name for name in re.findall(r"`([\w]+\.py)`", names + "`")}
    return named


def test_the_module_map_parser_reads_folders_and_bullets():
    text = "## Module map\n\n`pkg/`: words\n- `a.py`, `b.py`: what `c.py` does\n`pkg/sub/`\n- `d.py`: x\n## Next\n- `e.py`: y"
    assert modules_in_map(text) == {"pkg/a.py", "pkg/b.py", "pkg/sub/d.py"}


def test_every_module_is_in_the_map_and_every_mapped_module_exists():
    named, present = modules_in_map(DOC.read_text(encoding="utf-8")), modules_on_disk()
    assert not sorted(present - named), f"modules missing from {DOC.name}'s module map: {sorted(present - named)}"
    assert not sorted(named - present), f"{DOC.name}'s module map names modules that do not exist: " \
                                        f"{sorted(named - present)}"


def import_rule_block(text: str) -> str:
    """The bash block of ARCHITECTURE.md's section "The import rule", as written there."""
    section = text.split("### The import rule", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def test_every_import_rule_of_the_doc_holds():
    """The doc's greps, run as they stand in the doc: each must print nothing."""
    block = import_rule_block(DOC.read_text(encoding="utf-8"))
    greps = [line for line in block.splitlines() if line.startswith("grep ")]
    assert len(greps) >= 11, "the import rule lost greps: every layer needs its own"
    done = subprocess.run(["bash", "-c", block], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert not done.stderr, done.stderr
    assert not done.stdout, f"imports that break {DOC.name}'s import rule:\n{done.stdout}"


def test_a_broken_rule_is_caught_by_its_grep(tmp_path):
    """The greps see a function-local import of a higher layer (the rule counts those too)."""
    block = import_rule_block(DOC.read_text(encoding="utf-8"))
    (tmp_path / "emodarts_core" / "space").mkdir(parents=True)
    (tmp_path / "emodarts_core" / "space" / "bad.py").write_text("def f():\n    from emodarts_core.darts import x\n")
    for folder in ("data_prep", "emodarts_core/fast", "emodarts_core/runtime", "emodarts_core/training",
                   "emodarts_core/darts", "emodarts_core/perf", "emodarts_core/study", "emodarts_core/plots",
                   "emodarts_core/params"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    for name in ("config.py", "networks.py"):
        (tmp_path / "emodarts_core" / name).write_text("")
    done = subprocess.run(["bash", "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "space/bad.py:2" in done.stdout


def package_of(module: str) -> str | None:
    """The unit a module counts as: `data_prep`, or emodarts_core's top-level package or module."""
    parts = module.split(".")
    if parts[0] == "data_prep":
        return "data_prep"
    return parts[1] if parts[0] == "emodarts_core" and len(parts) > 1 else None


def package_imports() -> dict[str, set[str]]:
    """Package -> the packages its modules import (at any depth, function-local included);
    the package root `emodarts_core` itself is not a package here (it imports only `runtime`,
    and imports nothing else eagerly)."""
    graph: dict[str, set[str]] = {}
    for top in ("emodarts_core", "data_prep"):
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            unit = package_of(name)
            if unit is None:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets = ([f"{node.module}.{alias.name}" for alias in node.names] if node.module == "emodarts_core"
                               else [node.module])
                else:
                    continue
                for target in targets:
                    other = package_of(target)
                    if other is not None and other != unit:
                        graph.setdefault(unit, set()).add(other)
    return graph


def find_loop(graph: dict[str, set[str]]) -> list[str] | None:
    """A loop in `graph` as the list of its nodes (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_loop_finder_finds_a_loop_and_only_a_loop():
    assert find_loop({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_loop({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_two_packages_import_each_other_in_a_loop():
    loop = find_loop(package_imports())
    assert loop is None, f"a package-level import loop: {' -> '.join(loop)}"
