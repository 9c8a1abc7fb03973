"""Genotypes: the discrete architecture a search ends with, parsed from the alphas, stored
as JSON (never `eval`), and checked against the network configuration that will build it.

An edge is `(op_name, input_index)`; in a cell the inputs are numbered 0 and 1 (the two
previous cells) and 2.. (the intermediate nodes in order).  Node i keeps `k` = 2 incoming
edges, so a cell with n nodes has 2n edges, listed node by node.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.errors import EmodartsError
from data_prep.store import write_atomic
from emodarts_core.space.search_space import CNN_PRIMITIVES, SEQ_PRIMITIVES, seq_primitives

Edge = tuple[str, int]


class GenotypeError(EmodartsError, ValueError):
    """A genotype is malformed, names an unknown op, or does not fit a network configuration."""


@dataclass
class Genotype:
    """Chosen ops of the CNN normal cell, the CNN reduction cell and the SeqNN cell.

    `seq` and `seq_concat` are empty for a CNN-only network (`seq_cells == 0`).
    """

    normal: list[Edge]
    normal_concat: list[int]
    reduce: list[Edge]
    reduce_concat: list[int]
    seq: list[Edge] = field(default_factory=list)
    seq_concat: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {name: [list(e) for e in getattr(self, name)] if name in _CELLS else list(getattr(self, name))
                for name in _FIELDS}


_CELLS = {"normal": CNN_PRIMITIVES, "reduce": CNN_PRIMITIVES, "seq": SEQ_PRIMITIVES}
_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat", "seq", "seq_concat")
METADATA = "metadata"  # a JSON genotype's optional record of where it came from; not part of the genotype


def nodes_from_edges(n_edge_rows: int) -> int:
    """Intermediate nodes of a DARTS cell whose alpha has `n_edge_rows` rows (2 + 3 + ...)."""
    nodes, total = 0, 0
    while total < n_edge_rows:
        total += 2 + nodes
        nodes += 1
    if total != n_edge_rows:
        raise GenotypeError(f"{n_edge_rows} alpha rows is not 2 + 3 + ... for any number of nodes")
    return nodes


def parse(probs, primitives: tuple[str, ...], nodes: int | None = None, k: int = 2) -> tuple[list[Edge], list[int]]:
    """Discretise one cell's op probabilities [n_edges, len(primitives)] the DARTS way.

    For each node, every incoming edge is scored by its strongest op other than `none`;
    the `k` best edges are kept, each with that op.  `none` is never chosen, even where it
    dominates.  Returns (edges, concat) with concat = the intermediate node indices.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(primitives):
        raise GenotypeError(f"probs must be [n_edges, {len(primitives)}], got shape {probs.shape}")
    nodes = nodes_from_edges(probs.shape[0]) if nodes is None else nodes
    if probs.shape[0] != sum(2 + i for i in range(nodes)):
        raise GenotypeError(f"{probs.shape[0]} alpha rows do not fit a cell of {nodes} nodes")
    candidates = [i for i, name in enumerate(primitives) if name != "none"]
    edges: list[Edge] = []
    start = 0
    for i in range(nodes):
        rows = probs[start:start + 2 + i][:, candidates]
        best_op = rows.argmax(axis=1)
        strength = rows.max(axis=1)
        keep = sorted(np.argsort(-strength, kind="stable")[:k])
        edges += [(primitives[candidates[best_op[j]]], int(j)) for j in keep]
        start += 2 + i
    return edges, list(range(2, 2 + nodes))


def _check_cell(name: str, edges, concat, valid: tuple[str, ...]) -> tuple[list[Edge], list[int]]:
    if not isinstance(edges, list) or len(edges) % 2:
        raise GenotypeError(f"{name}: expected a list of 2 edges per node, got {edges!r}")
    allowed = [p for p in valid if p != "none"]
    out = []
    for n, edge in enumerate(edges):
        if not (isinstance(edge, (list, tuple)) and len(edge) == 2 and isinstance(edge[0], str)
                and isinstance(edge[1], int) and not isinstance(edge[1], bool)):
            raise GenotypeError(f"{name}[{n}]: an edge is [op_name, input_index], got {edge!r}")
        op, src = edge
        if op not in allowed:
            raise GenotypeError(f"{name}[{n}]: unknown op {op!r}; valid ops: {', '.join(allowed)}")
        node = n // 2
        if not 0 <= src < 2 + node:
            raise GenotypeError(f"{name}[{n}]: node {node} can read inputs 0..{1 + node}, got {src}")
        out.append((op, src))
    nodes = len(edges) // 2
    if not isinstance(concat, list) or not all(isinstance(c, int) and 0 <= c < 2 + nodes for c in concat) \
            or (edges and not concat):
        raise GenotypeError(f"{name}_concat: expected state indices in 0..{1 + nodes}, got {concat!r}")
    return out, list(concat)


def validate(genotype: Genotype) -> Genotype:
    """Check op names, input indices and concats; returns the genotype with tuple edges."""
    cells = {}
    for name, valid in _CELLS.items():
        cells[name], cells[name + "_concat"] = _check_cell(
            name, list(getattr(genotype, name)), list(getattr(genotype, name + "_concat")), valid)
    if not genotype.normal or not genotype.reduce:
        raise GenotypeError("normal and reduce cells need at least one node")
    return Genotype(**cells)


def from_dict(data) -> Genotype:
    if not isinstance(data, dict):
        raise GenotypeError(f"a genotype is a JSON object with keys {', '.join(_FIELDS)}; got {type(data).__name__}")
    missing = [f for f in _FIELDS[:4] if f not in data]
    unknown = sorted(set(data) - set(_FIELDS) - {METADATA})
    if missing or unknown:
        raise GenotypeError(f"genotype keys: missing {missing}, unknown {unknown}; valid keys: {', '.join(_FIELDS)}")
    return validate(Genotype(**{f: data.get(f, []) for f in _FIELDS}))


def to_json(genotype: Genotype, metadata: dict | None = None) -> str:
    """The genotype as JSON; `metadata` (e.g. a search's verdict on its α) goes under the
    key "metadata", which reading ignores."""
    data = validate(genotype).to_dict()
    if metadata is not None:
        data[METADATA] = metadata
    return json.dumps(data)


def from_json(text: str) -> Genotype:
    """Parse and validate a genotype from JSON text; errors say what is wrong and what is valid."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenotypeError(f"genotype is not valid JSON: {exc}") from None
    return from_dict(data)


def _text_cell(edges: list[Edge]) -> str:
    nodes = [edges[i:i + 2] for i in range(0, len(edges), 2)]
    return "[" + ", ".join("[" + ", ".join(f"({op!r}, {src})" for op, src in node) + "]" for node in nodes) + "]"


def _text_concat(concat: list[int]) -> str:
    if concat and concat == list(range(concat[0], concat[-1] + 1)):
        return f"range({concat[0]}, {concat[-1] + 1})"
    return repr(list(concat))


def to_text(genotype: Genotype) -> str:
    """The genotype in pt.darts' form, ``Genotype(normal=[[('sep_conv_3x3', 0), ...], ...],
    normal_concat=range(2, 6), reduce=..., reduce_concat=...)``, plus ``seq`` and
    ``seq_concat`` for the SeqNN cell: edges grouped per node, concats as ranges."""
    g = validate(genotype)
    parts = []
    for name in ("normal", "reduce", "seq"):
        if name == "seq" and not g.seq:
            continue
        parts += [f"{name}={_text_cell(getattr(g, name))}", f"{name}_concat={_text_concat(getattr(g, name + '_concat'))}"]
    return "Genotype(" + ", ".join(parts) + ")"


def _literal(node: ast.expr, key: str):
    """A keyword's value: a literal, or range(a, b) for a concat (never evaluated code)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
            and not node.keywords and 1 <= len(node.args) <= 2:
        return list(range(*(ast.literal_eval(a) for a in node.args)))
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise GenotypeError(f"Genotype text: {key}= is not a literal list (or range(a, b))") from None


def from_text(text: str) -> Genotype:
    """Read pt.darts' ``Genotype(...)`` form (`to_text`, or pt.darts' own genotypes, which
    have no SeqNN cell) without `eval`: the text is parsed, and only literals and
    ``range(a, b)`` are accepted."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise GenotypeError(f"Genotype text does not parse: {exc.msg}") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"
            and not tree.args and all(k.arg for k in tree.keywords)):
        raise GenotypeError("Genotype text must be Genotype(normal=..., normal_concat=..., reduce=..., "
                            "reduce_concat=...[, seq=..., seq_concat=...]) with keyword arguments only")
    data = {k.arg: _literal(k.value, k.arg) for k in tree.keywords}
    for name in ("normal", "reduce", "seq"):  # pt.darts groups edges per node; flatten
        cell = data.get(name)
        if isinstance(cell, list) and cell and all(isinstance(n, list) for n in cell):
            data[name] = [list(edge) for node in cell for edge in node]
        elif isinstance(cell, list):
            data[name] = [list(edge) if isinstance(edge, tuple) else edge for edge in cell]
    return from_dict(data)


def save(genotype: Genotype, path) -> None:
    """Write `genotype` as JSON to `path` through the suite's safe writer (a temporary file
    renamed into place: never half written, never written through a planted link)."""
    write_atomic(path, lambda fh: fh.write(to_json(genotype) + "\n"))


def load(path) -> Genotype:
    return from_json(Path(path).read_text())


def check_compatible(genotype: Genotype, net_cfg) -> None:
    """Raise GenotypeError unless `genotype` fits `net_cfg`: node counts and SeqNN scope."""
    genotype = validate(genotype)
    problems = []
    for name, nodes in (("normal", net_cfg.nodes), ("reduce", net_cfg.nodes)):
        if len(getattr(genotype, name)) != 2 * nodes:
            problems.append(f"{name} cell has {len(getattr(genotype, name)) // 2} nodes, config nodes={nodes}")
    if net_cfg.seq_cells == 0:
        if genotype.seq:
            problems.append("genotype has a SeqNN cell but config seq_cells=0")
    else:
        if len(genotype.seq) != 2 * net_cfg.seq_nodes:
            problems.append(f"seq cell has {len(genotype.seq) // 2} nodes, config seq_nodes={net_cfg.seq_nodes}")
        scope_ops = seq_primitives(net_cfg.scope)
        outside = sorted({op for op, _ in genotype.seq if op not in scope_ops})
        if outside:
            problems.append(f"seq ops {outside} are outside scope {net_cfg.scope!r} "
                            f"({', '.join(p for p in scope_ops if p != 'none')})")
    if problems:
        raise GenotypeError("genotype does not fit the network config: " + "; ".join(problems))


__all__ = ["Edge", "Genotype", "GenotypeError", "parse", "nodes_from_edges", "validate", "from_dict",
           "to_json", "from_json", "to_text", "from_text", "save", "load", "check_compatible"]
