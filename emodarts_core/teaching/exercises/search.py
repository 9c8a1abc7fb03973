"""Self-checks of notebook 03 (the search): how many architecture weights a network has,
a search of the RNN-only scope (paper Table 6), and a collapsed search and its remedy."""

from __future__ import annotations

import numpy as np

from .marking import (RESULT_NEUTRAL, Marking, Verdict, as_flag, as_integer, as_names, as_run_dir, differing,
                      is_finished, is_unset, read_json, self_check)


@self_check("03.1 · how many architecture weights")
def check_alpha_count(m: Marking, net_cfg, n_alpha) -> Verdict:
    """The number of α values of the supernet for `net_cfg` (`SearchNetwork`'s `alpha_*`)."""
    from emodarts_core.config import reduction_positions
    from emodarts_core.space.cells import n_edges
    from emodarts_core.space.search_network import SearchNetwork

    if is_unset(n_alpha):
        m.absent("n_alpha")
        return m.verdict()
    given = as_integer(n_alpha, "n_alpha")
    import torch

    with torch.random.fork_rng():  # building the supernet draws random numbers: leave the notebook's RNG alone
        model = SearchNetwork(net_cfg)
    shapes = {name: tuple(p.shape) for name, p in model.named_alphas() if name.startswith("alpha_")}
    ref = sum(int(np.prod(s)) for s in shapes.values())
    breakdown = ", ".join(f"{name} {r} x {c}" for name, (r, c) in shapes.items())
    n_reduce = len(reduction_positions(net_cfg.cnn_cells))
    per_cell = ((net_cfg.cnn_cells - n_reduce) * int(np.prod(shapes["alpha_normal"]))
                + n_reduce * int(np.prod(shapes["alpha_reduce"]))
                + net_cfg.seq_cells * int(np.prod(shapes.get("alpha_seq", (0, 0)))))
    if given == ref:
        m.right(f"{ref} α values.")
    elif given == per_cell and per_cell != ref:
        m.wrong(f"{given} counts an α per cell; all cells of one kind share theirs (one alpha_normal, one "
                "alpha_reduce, one alpha_seq).")
    else:
        m.wrong(f"{given} is not it: each cell kind has one α matrix, one row per edge "
                f"({n_edges(net_cfg.nodes)} for {net_cfg.nodes} CNN nodes) and one column per candidate op "
                f"(the SeqNN's columns depend on the scope {net_cfg.scope!r}).")
    m.note(f"{breakdown}: the whole architecture is these few numbers, against "
           f"{sum(p.numel() for p in model.weights()):,} network weights.")
    return m.verdict()


@self_check("03.2 · searching the RNN-only scope")
def check_rnn_only_search(m: Marking, main_run_dir, rnn_run_dir, rnn_seq_ops, rnn_collapsed) -> Verdict:
    """A finished search of the `rnn_only` scope (paper Table 6) that differs from the
    notebook's search (`main_run_dir`) only in its scope, the SeqNN ops its genotype chose,
    and whether they are all skip_connect (`darts.search.seq_collapsed`)."""
    from emodarts_core.darts.search import GENOTYPE, seq_collapsed
    from emodarts_core.space import genotypes
    from emodarts_core.space.search_space import seq_primitives

    if is_unset(rnn_run_dir):
        m.absent("rnn_run_dir")
        if is_unset(rnn_seq_ops):
            m.absent("rnn_seq_ops")
        if is_unset(rnn_collapsed):
            m.absent("rnn_collapsed")
        return m.verdict()
    path = as_run_dir(rnn_run_dir, "rnn_run_dir")
    config = read_json(path, "config.json")
    scope = config.get("network", {}).get("scope")
    if config.get("kind") != "search" or not is_finished(path):
        m.wrong(f"{path} is not a finished search run (run_search writes FINISHED at the end).")
        return m.verdict()
    if scope != "rnn_only":
        m.wrong(f"that search used scope {scope!r}, not 'rnn_only'.")
        return m.verdict()
    main = None if is_unset(main_run_dir) else as_run_dir(main_run_dir, "run_path")
    if main is not None and main.resolve() != path.resolve():
        base = read_json(main, "config.json")
        changed = (["network." + k for k in differing(base["network"], config["network"], ("scope",))]
                   + ["search." + k for k in differing(base["search"], config["search"], RESULT_NEUTRAL)])
        if base["data"].get("test_speakers") != config["data"].get("test_speakers") or \
                base["data"].get("splits", {}).get("search", {}).get("ids") != \
                config["data"].get("splits", {}).get("search", {}).get("ids"):
            changed.append("data (fold or seed)")
        if changed:
            m.wrong(f"besides the scope, the search differs from the notebook's in {', '.join(changed)}; change "
                    "only `scope`, so that the comparison says what the scope does.")
        else:
            m.right("only the scope differs from the notebook's search.")
    genotype = genotypes.load(path / GENOTYPE)
    ref_ops = sorted({op for op, _ in genotype.seq})
    allowed = [p for p in seq_primitives("rnn_only") if p != "none"]
    if is_unset(rnn_seq_ops):
        m.absent("rnn_seq_ops")
    elif as_names(rnn_seq_ops, "rnn_seq_ops") == ref_ops:
        m.right(f"the SeqNN cell chose {', '.join(ref_ops)}.")
    else:
        m.wrong(f"not the ops in {path / GENOTYPE}: read `genotype.seq` (a list of (op, input) edges).")
    if is_unset(rnn_collapsed):
        m.absent("rnn_collapsed")
    elif as_flag(rnn_collapsed, "rnn_collapsed") == seq_collapsed(genotype):
        m.right("collapsed to skip_connect: " + ("yes." if seq_collapsed(genotype) else "no."))
    else:
        m.wrong("look again: the SeqNN cell has collapsed when every chosen op is skip_connect.")
    m.note(f"In rnn_only the SeqNN can only choose among {', '.join(allowed)} (and `none`, which is never "
           "parsed): no LSTM and no attention can appear, whatever the data; the CNN cells search the same "
           "ops as before.")
    if main is not None and (main / GENOTYPE).is_file():
        main_ops = sorted({op for op, _ in genotypes.load(main / GENOTYPE).seq})
        m.note(f"The notebook's search ({read_json(main, 'config.json')['network']['scope']}) chose "
               f"{', '.join(main_ops) or 'no SeqNN ops'}.")
    return m.verdict()


_REMEDY_KEYS = ("collapse_remedy", "darts_minus_beta", "skip_cap", "skip_stop", "beta_decay_weight")


@self_check("03.3 · make the SeqNN collapse, then fix it")
def check_collapse_and_fix(m: Marking, collapsed_dir, fixed_dir) -> Verdict:
    """Two finished searches that differ only in their collapse remedy: the first (plain
    DARTS, `collapse_remedy="none"`) ends with an all-skip_connect SeqNN cell, the second
    (a remedy of `darts.collapse`) does not. The first must not be the notebook's demo
    configuration (`collapse.DEMO_NETWORK`, `DEMO_SEARCH` on `demo_fold()`)."""
    from emodarts_core.config import SearchConfig, preset, to_dict
    from emodarts_core.darts.collapse import DEMO_NETWORK, DEMO_SEARCH, REMEDIES, demo_fold
    from emodarts_core.darts.search import GENOTYPE, seq_collapsed
    from emodarts_core.space import genotypes
    from emodarts_core.training.loop import describe_fold

    if is_unset(collapsed_dir):
        m.absent("collapsed_dir")
    if is_unset(fixed_dir):
        m.absent("fixed_dir")
    if is_unset(collapsed_dir) or is_unset(fixed_dir):
        return m.verdict()
    runs = {}
    for name, value in (("collapsed_dir", collapsed_dir), ("fixed_dir", fixed_dir)):
        path = as_run_dir(value, name)
        config = read_json(path, "config.json")
        if config.get("kind") != "search" or not is_finished(path):
            m.wrong(f"`{name}` ({path}) is not a finished search run.")
            return m.verdict()
        if not config["network"].get("seq_cells"):
            m.wrong(f"`{name}` searched no SeqNN cell (seq_cells = 0): nothing can collapse there.")
            return m.verdict()
        runs[name] = (path, config, genotypes.load(path / GENOTYPE))
    (_, plain, plain_genotype), (_, fixed, fixed_genotype) = runs["collapsed_dir"], runs["fixed_dir"]
    if plain["search"]["collapse_remedy"] != "none":
        m.wrong(f"`collapsed_dir` used the remedy {plain['search']['collapse_remedy']!r}; make plain DARTS "
                "(collapse_remedy='none') collapse.")
    elif not seq_collapsed(plain_genotype):
        m.wrong(f"`collapsed_dir` did not collapse: its SeqNN cell chose {sorted({o for o, _ in plain_genotype.seq})}. "
                "More SeqNN cells/nodes (the paper: more than 3), a larger alpha_lr or more epochs push "
                "skip_connect ahead.")
    else:
        m.right(f"plain DARTS collapsed: every SeqNN edge is skip_connect ({len(plain_genotype.seq)} edges).")
    demo = (to_dict(preset("smoke", **DEMO_NETWORK)), to_dict(SearchConfig(**DEMO_SEARCH)))
    same_data = plain["data"].get("splits") == describe_fold(demo_fold())["splits"]
    if plain["network"] == demo[0] and not differing(plain["search"], demo[1], RESULT_NEUTRAL) and same_data:
        m.wrong("that is the notebook's demo configuration; change at least one setting of DEMO_NETWORK or "
                "DEMO_SEARCH (seed, epochs, alpha_lr, scope, nodes, ...) and make that collapse.")
    remedy = fixed["search"]["collapse_remedy"]
    if remedy not in REMEDIES or remedy == "none":
        m.wrong("`fixed_dir` used no remedy: set collapse_remedy to one of "
                f"{', '.join(r for r in REMEDIES if r != 'none')}.")
    elif seq_collapsed(fixed_genotype):
        m.wrong(f"with {remedy!r} the SeqNN cell still collapsed; try another remedy or its setting.")
    else:
        m.right(f"with {remedy!r} the SeqNN cell chose {', '.join(o for o, _ in fixed_genotype.seq)}.")
    changed = (["network." + k for k in differing(plain["network"], fixed["network"])]
               + ["search." + k for k in differing(plain["search"], fixed["search"], RESULT_NEUTRAL + _REMEDY_KEYS)])
    if plain["data"].get("splits") != fixed["data"].get("splits"):
        changed.append("data")
    if changed:
        m.wrong(f"the two searches differ in more than the remedy ({', '.join(changed)}): keep everything else "
                "equal, so that the remedy is what made the difference.")
    m.note("Parameter-free skip_connect passes the gradient most easily early on, so plain DARTS ranks it first "
           "(paper section 6.2); DARTS- gives every edge that residual path outside the softmax, β-DARTS "
           "keeps the softmax from saturating, the P-DARTS cap edits the parsed cell.")
    return m.verdict()
