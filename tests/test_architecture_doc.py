"""docs/ARCHITECTURE.md's module map names every Python module of the library, the data
package and the tools, and names no module that is gone.

The map has a line per package folder (a backticked path ending in `/`, such as
`` `emodarts_core/study/sweep/` ``) followed by bullets whose backticked `*.py` names,
before the first "`:", are the modules of that folder.
"""

from __future__ import annotations

import re
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
