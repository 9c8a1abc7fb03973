"""The READMEs' EmoDB results cannot drift from the studies' generated tables: every measured
figure (a number with a decimal point) of README.md's "Results on EmoDB" section and of
results/emodb/README.md's results sections is found in results/emodb/tables.md, which
`python -m emodarts_core.results results/emodb --markdown` writes; the second study's README
(results/second_study/) is checked against its own tables the same way. Counts and design values
(15 cells, 10 speakers, 2 s, 300 α steps) are whole numbers and are not checked; the one
derived figure, the edge agreement of two random genotypes, is computed here exactly."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TABLES = REPO / "results" / "emodb" / "tables.md"
SECOND_TABLES = REPO / "results" / "second_study" / "emodb" / "tables.md"
#: The studies' README sections whose figures are measured by the study.
RESULT_SECTIONS = ("## Results (", "## How far the searches moved", "## What this says")
DIAGNOSIS_SECTIONS = ("## Less data or fewer updates", "## Why the search does not help")
NUMBER = re.compile(r"(?<![\w.])[-+−]?(\d+\.\d+)(?![\d])")


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def decimals(text: str) -> set[str]:
    return set(NUMBER.findall(text))


def random_agreement(profile: str = "study_emodb_v2") -> float:
    """The expected share of edges (cell, node, input, op) that two genotypes drawn by
    `space.sampling.random_genotype` share: a node's edge (j, op) is held by the other
    genotype when its node draws input j (2 of the node's 2 + i inputs) and the same op."""
    from emodarts_core.space.genotypes import CNN_PRIMITIVES, seq_primitives
    from emodarts_core.study.sweep import load_params

    net = load_params(profile).network_for("emodarts")
    cells = [(net.nodes, CNN_PRIMITIVES)] * 2 + [(net.seq_nodes, seq_primitives(net.scope))] * (net.seq_cells > 0)
    shared = sum(2 * (2 / (2 + i)) / len([p for p in ops if p != "none"]) for n, ops in cells for i in range(n))
    return shared / sum(2 * n for n, _ in cells)


def test_the_random_agreement_matches_sampled_pairs():
    import numpy as np

    from emodarts_core.darts.diagnostics import agreement
    from emodarts_core.space.sampling import random_genotype
    from emodarts_core.study.sweep import load_params

    net = load_params("study_emodb_v2").network_for("emodarts")
    rng = np.random.default_rng(0)
    pairs = [agreement(random_genotype(net, rng).to_dict(), random_genotype(net, rng).to_dict()) for _ in range(4000)]
    assert np.mean(pairs) == pytest.approx(random_agreement(), abs=0.006)  # 4 standard errors
    assert f"{random_agreement():.3f}" == "0.091"


@pytest.mark.parametrize("readme, headings, tables_file", [
    ("README.md", ("## Results on EmoDB",), TABLES),
    ("results/emodb/README.md", RESULT_SECTIONS + DIAGNOSIS_SECTIONS, TABLES),
    ("results/second_study/README.md", RESULT_SECTIONS, SECOND_TABLES),
])
def test_every_measured_figure_of_the_readmes_is_in_the_tables(readme, headings, tables_file):
    text = (REPO / readme).read_text(encoding="utf-8")
    tables = decimals(tables_file.read_text(encoding="utf-8")) | {f"{random_agreement():.3f}"}
    for heading in headings:
        found = decimals(section(text, heading))
        assert found, f"{readme}: no figure found under {heading!r}"
        missing = sorted(found - tables, key=float)
        assert not missing, f"{readme}, {heading!r}: figures not in {tables_file}: {missing}"


def test_the_check_finds_a_figure_that_is_not_in_the_tables():
    tables = decimals(TABLES.read_text(encoding="utf-8"))
    assert "0.085" not in tables and "0.085" in decimals("two random genotypes share about 0.085.")
    assert decimals("| 69.9 ± 8.1 | −3.6, +5.7 | 2 s | 0.00195; |") == {"69.9", "8.1", "3.6", "5.7", "0.00195"}
