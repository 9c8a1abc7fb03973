"""Self-checks of notebook 02 (the mixed op's relaxation): why `none` is never parsed into
a genotype, the uniform mixture of a mixed op, and a cell's memory (paper eq. 2)."""

from __future__ import annotations

import copy

import numpy as np

from .marking import Marking, Verdict, as_integer, as_number, is_close, is_unset, self_check


@self_check("02.1 · `none` wins the softmax, yet is never parsed")
def check_none_never_parsed(m: Marking, alpha, target: str = "sep_conv_5x5") -> Verdict:
    """An α row whose softmax gives `none` the largest weight while the parsed edge (paper
    eq. 3, `space.genotypes.parse`) is `target`."""
    import torch
    import torch.nn.functional as F

    from emodarts_core.space.genotypes import parse
    from emodarts_core.space.search_space import CNN_PRIMITIVES

    if is_unset(alpha):
        m.absent("alpha")
        return m.verdict()
    values = np.asarray(alpha, dtype=np.float64).ravel()
    if values.size != len(CNN_PRIMITIVES) or not np.isfinite(values).all():
        m.wrong(f"`alpha` needs {len(CNN_PRIMITIVES)} finite numbers, one per op in CNN_PRIMITIVES order.")
        return m.verdict()
    weights = F.softmax(torch.as_tensor(values), dim=-1).numpy()
    uniform = np.full(len(CNN_PRIMITIVES), 1.0 / len(CNN_PRIMITIVES))
    (edge, _), _ = parse(np.stack([weights, uniform]), CNN_PRIMITIVES, nodes=1)  # a 1-node cell: row 0 = this edge
    parsed = edge[0]
    top = int(np.argmax(weights))
    shown = ", ".join(f"{p} {w:.3f}" for p, w in zip(CNN_PRIMITIVES, weights))
    none_wins = CNN_PRIMITIVES[top] == "none" and np.sum(weights == weights[top]) == 1
    if none_wins:
        m.right(f"`none` has the largest weight ({weights[top]:.3f}).")
    else:
        m.wrong(f"the largest weight is {CNN_PRIMITIVES[top]!r} ({weights[top]:.3f}), not `none` alone.")
    if parsed == target:
        m.right(f"the parsed edge is {parsed!r}.")
    else:
        m.wrong(f"the parsed edge is {parsed!r}, not {target!r}: parsing skips `none` and takes the strongest "
                "of the remaining ops.")
    m.note(f"softmax weights: {shown}")
    m.note("DARTS never keeps `none` (eq. 3 takes the argmax over the other ops): a dominant `none` only "
           "lowers the edge's strength when a node chooses its two best edges.")
    return m.verdict()


@self_check("02.2 · uniform α is the plain mean of the ops")
def check_uniform_mixture(m: Marking, mixed, x, uniform_output, mean_of_ops) -> Verdict:
    """`mixed(x, uniform weights)` and the mean of every candidate op's output (`none`
    included) on `x`; they are equal, as eq. 2 says for softmax(α) = 1/|O|."""
    import torch

    if is_unset(uniform_output):
        m.absent("uniform_output")
    if is_unset(mean_of_ops):
        m.absent("mean_of_ops")
    if is_unset(uniform_output) and is_unset(mean_of_ops):
        return m.verdict()
    state = copy.deepcopy(mixed.state_dict()) if mixed.training else None  # keep BatchNorm statistics as they were
    with torch.no_grad():
        outputs = {name: op(x) for name, op in mixed.ops.items()}
        n = len(outputs)
        ref_mean = torch.stack(list(outputs.values())).mean(dim=0)
        ref_mixed = mixed(x, torch.full((n,), 1.0 / n))
        without_none = torch.stack([o for name, o in outputs.items() if name != "none"]).mean(dim=0)
    if state is not None:
        mixed.load_state_dict(state)
    hint = ("recompute the ops' outputs now, under torch.no_grad(): the fast-form comparison above ran `mixed` "
            "in training mode, which moved its BatchNorm statistics, so `op_outputs` from the top of the "
            "notebook are stale.")
    for name, value, ref in (("uniform_output", uniform_output, ref_mixed), ("mean_of_ops", mean_of_ops, ref_mean)):
        if is_unset(value):
            continue
        given = torch.as_tensor(value, dtype=ref.dtype)
        if given.shape != ref.shape:
            m.wrong(f"`{name}` has shape {tuple(given.shape)}; the edge's output has shape {tuple(ref.shape)}.")
        elif torch.allclose(given, ref, rtol=1e-5, atol=1e-6):
            m.right(f"`{name}` is right.")
        elif name == "mean_of_ops" and torch.allclose(given, without_none, rtol=1e-5, atol=1e-6):
            m.wrong(f"`mean_of_ops` averages the {n - 1} ops without `none`; `none` is one of the {n} candidates: "
                    "its zeros are part of the mean, as its α is part of the softmax.")
        else:
            m.wrong(f"`{name}` differs from the reference by up to {(given - ref).abs().max():.2e}; {hint}")
    m.note(f"largest |mixed - mean| = {(ref_mixed - ref_mean).abs().max():.1e} (float rounding): with "
           f"softmax(α) = 1/{n} eq. 2 is the plain average of all {n} candidates, `none`'s zeros included.")
    return m.verdict()


@self_check("02.3 · the memory of a bigger cell")
def check_cell_memory(m: Marking, cnn_mem, nodes, edges, mib) -> Verdict:
    """Mixed edges of a search cell with `nodes` nodes (`space.cells.n_edges`), and the
    MiB its edges keep for the backward pass at the size of the memory table `cnn_mem`
    (each edge runs every CNN candidate)."""
    from emodarts_core.space.cells import n_edges

    nodes = as_integer(nodes, "nodes")
    ref_edges = n_edges(nodes)
    per_edge = float(cnn_mem["activation MiB"].sum())
    if is_unset(edges):
        m.absent("edges")
    else:
        given = as_integer(edges, "edges")
        if given == ref_edges:
            m.right(f"{ref_edges} edges: node j reads all 2 + j earlier states (2 + 3 + ... + {nodes + 1}).")
        elif given == 2 * nodes:
            m.wrong(f"{given} is the number of edges a *parsed* cell keeps (2 per node); during the search every "
                    "node is connected to every earlier state.")
        else:
            m.wrong(f"{given} edges is not it: node j of a cell reads the two cell inputs and the j earlier nodes.")
    if is_unset(mib):
        m.absent("mib")
    else:
        given = as_number(mib, "mib")
        if is_close(given, ref_edges * per_edge, 0.01 * ref_edges * per_edge):
            m.right(f"about {ref_edges * per_edge:.4g} MiB: {ref_edges} edges x {per_edge:.4g} MiB per edge.")
        elif is_close(given, 2 * nodes * per_edge, 0.01 * 2 * nodes * per_edge):
            m.wrong("that counts the 2 parsed edges per node; the supernet runs every edge.")
        else:
            m.wrong(f"{given:g} MiB is not it: one edge keeps the sum of the table's 'activation MiB' column, "
                    "and the cell has `edges` of them.")
    m.note("The edges grow quadratically with the nodes, and every edge holds all candidates at once: "
           "this is why the paper ran out of GPU memory with deeper cells (section 6.1).")
    return m.verdict()
