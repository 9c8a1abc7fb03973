"""The sections of the study's tables.md that say why a search does or does not help:
how well its supernets rank architectures (`study.ranking`, from `<root>/ranking.csv`,
written by `python -m emodarts_core.study.ranking ROOT` after the sweep), how much the
seeds' genotypes agree under each selection rule, how their consensus relates to
them, and the optimism
of reporting the best test epoch (`study.optimism`, a measured bias, not a result). Each
section is left out where the study holds nothing for it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from emodarts_core.study.optimism import optimism_markdown, optimism_table
from emodarts_core.study.ranking import (ceiling_markdown, ceiling_table, n_classes_of, ranking_markdown, ranking_table,
                                        stand_alone_scores)
from emodarts_core.study.results.pack import run_files


#: The models whose genotype a rule chooses per (fold, seed): their seeds' agreement is reported.
SELECTED_MODELS = ("emodarts", "prior", "emodarts_pt", "prior_pt")


#: (rule, the α parse of the same supernets): how far each rule moves from reading α's size.
RULE_PAIRS = (("emodarts_pt", "emodarts"), ("prior_pt", "prior"), ("consensus", "emodarts"))


def retrained_genotypes(runs: dict, study: pd.DataFrame, model: str) -> dict[tuple[int, int], dict]:
    """{(fold, seed): genotype} of `model`'s retrainings (their `full` or else `paper`
    config.json; `runs` as `study.results.pack.run_files`)."""
    out = {}
    for row in study[study["model"] == model].sort_values("protocol").itertuples():
        run = runs.get(str(row.run_dir))
        if (row.fold, row.seed) not in out and run is not None and run.has("config.json"):
            genotype = run.json("config.json").get("model", {}).get("genotype")
            if genotype:
                out[(row.fold, row.seed)] = genotype
    return out


def seed_agreement_table(root, study: pd.DataFrame, models=SELECTED_MODELS) -> pd.DataFrame:
    """Per model and fold, the mean pairwise agreement of the seeds' retrained genotypes
    (`retrained_genotypes`, packed or not)."""
    from emodarts_core.study.stability import seed_agreement

    runs, rows = run_files(root), []
    for model in models:
        genotypes = retrained_genotypes(runs, study, model)
        for fold in sorted({f for f, _ in genotypes}):
            by_seed = [g for (f, _), g in sorted(genotypes.items()) if f == fold]
            if len(by_seed) > 1:
                rows.append({"model": model, "fold": fold, "seeds": len(by_seed),
                             "agreement": seed_agreement(by_seed)})
    return pd.DataFrame(rows, columns=["model", "fold", "seeds", "agreement"])


def rule_agreement_table(root, study: pd.DataFrame, pairs=RULE_PAIRS) -> pd.DataFrame:
    """Per (rule, fold), the mean over seeds of the share of edges the rule's genotype has
    in common with the α parse of the same (fold, seed)'s supernet."""
    from emodarts_core.darts.diagnostics import agreement

    runs, rows = run_files(root), []
    for rule, parse in pairs:
        chosen, parsed = retrained_genotypes(runs, study, rule), retrained_genotypes(runs, study, parse)
        common = sorted(set(chosen) & set(parsed))
        for fold in sorted({f for f, _ in common}):
            shares = [agreement(chosen[k], parsed[k]) for k in common if k[0] == fold]
            rows.append({"rule": rule, "parse": parse, "fold": fold, "seeds": len(shares),
                         "agreement": sum(shares) / len(shares)})
    return pd.DataFrame(rows, columns=["rule", "parse", "fold", "seeds", "agreement"])


def rule_agreement_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return ""
    folds = sorted(table["fold"].unique())
    lines = ["## How far each rule's genotype is from the α parse of the same supernet", "",
             "Mean over a fold's seeds of the share of edges (cell, node, input, op) that the rule's genotype has in "
             "common with the α parse of the same search (`emodarts` or `prior`); 1 = the rule keeps α's choice.", "",
             "| rule | against | " + " | ".join(f"fold {f}" for f in folds) + " | mean |",
             "| --- | --- |" + " --- |" * (len(folds) + 1)]
    for (rule, parse), g in table.groupby(["rule", "parse"], sort=False):
        cells = {r.fold: f"{r.agreement:.2f}" for r in g.itertuples()}
        lines.append(f"| {rule} | {parse} | " + " | ".join(cells.get(f, "") for f in folds)
                     + f" | {g['agreement'].mean():.3f} |")
    return "\n".join(lines) + "\n"


def seed_agreement_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return ""
    lines = ["## How much the seeds' genotypes agree, per selection rule", "",
             "Mean pairwise share of edges (cell, node, input, op) between the seeds' genotypes of a fold; two "
             "random genotypes of the study's space share 0.091.", "",
             "| model | " + " | ".join(f"fold {f}" for f in sorted(table["fold"].unique())) + " | mean |",
             "| --- |" + " --- |" * (table["fold"].nunique() + 1)]
    for model, g in table.groupby("model", sort=False):
        cells = {r.fold: f"{r.agreement:.2f}" for r in g.itertuples()}
        lines.append(f"| {model} | " + " | ".join(cells.get(f, "") for f in sorted(table["fold"].unique()))
                     + f" | {g['agreement'].mean():.3f} |")
    return "\n".join(lines) + "\n"


def consensus_table(root) -> pd.DataFrame:
    """Per fold, how the seeds' consensus genotype (`study.consensus`) relates to the seeds'
    own: its mean share of edges with each seed's genotype and the seeds' mean pairwise
    share (over all edges, and the SeqNN cells'), and how many of its SeqNN edges are
    `skip_connect`; read from the `consensus.json` and `genotype.json` the sweep wrote."""

    rows = {}
    for path, run in sorted(run_files(root).items()):
        parts = path.replace("\\", "/").split("/")
        if len(parts) < 3 or parts[-3] != "consensus" or not run.has("consensus.json"):
            continue
        fold = int(parts[-2].removeprefix("fold"))
        if fold in rows:
            continue  # every seed of a fold retrains the same consensus genotype
        report = run.json("consensus.json").get("report", {})
        seq = [op for op, _ in (run.json("genotype.json").get("seq") or [])] if run.has("genotype.json") else []
        mean, pairs = report.get("mean_with_seeds", {}), report.get("seed_pairs", {})
        rows[fold] = {"fold": fold, "with_seeds": mean.get("all"), "with_seeds_seq": mean.get("seq"),
                      "seed_pairs": pairs.get("all"), "seed_pairs_seq": pairs.get("seq"),
                      "seq_skips": f"{seq.count('skip_connect')} of {len(seq)}" if seq else ""}
    return pd.DataFrame([rows[f] for f in sorted(rows)])


def consensus_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return ""
    def num(v):
        return "" if v is None or pd.isna(v) else f"{v:.2f}"
    lines = ["## The seeds' consensus", "",
             "The genotype parsed from the mean of a fold's seeds' final softmax(α) (`study.consensus`): its mean "
             "share of edges with each seed's genotype, the seeds' mean pairwise share, over all edges and over the "
             "SeqNN cells', and its SeqNN edges that are `skip_connect`.", "",
             "| fold | consensus with seeds | seeds with each other | consensus with seeds, SeqNN | "
             "seeds with each other, SeqNN | SeqNN skip_connect |", "| --- | --- | --- | --- | --- | --- |"]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.fold} | {num(r.with_seeds)} | {num(r.seed_pairs)} | {num(r.with_seeds_seq)} | "
                     f"{num(r.seed_pairs_seq)} | {r.seq_skips} |")
    return "\n".join(lines) + "\n"


def diagnosis_sections(root, study: pd.DataFrame) -> str:
    """Markdown for tables.md: the ranking table and the optimism table, where available."""
    parts = []
    scores_path = Path(root) / "ranking.csv"
    if scores_path.is_file() and not study.empty:
        scores = pd.read_csv(scores_path)
        table = ranking_table(scores, stand_alone_scores(study, root), n_classes=n_classes_of(study))
        parts.append(ranking_markdown(table))
    if not study.empty and (study["model"] == "random_reseed").any():
        parts.append(ceiling_markdown(ceiling_table(study)))
    if not study.empty and study["model"].isin(["emodarts_pt", "prior_pt"]).any():
        parts.append(seed_agreement_markdown(seed_agreement_table(root, study)))
        parts.append(rule_agreement_markdown(rule_agreement_table(root, study)))
    if not study.empty and (study["model"] == "consensus").any():
        parts.append(consensus_markdown(consensus_table(root)))
    if not study.empty:
        parts.append(optimism_markdown(optimism_table(study, root)))
    text = "\n".join(p for p in parts if p)
    return "\n" + text if text else ""


__all__ = ["RULE_PAIRS", "SELECTED_MODELS", "retrained_genotypes", "rule_agreement_markdown", "rule_agreement_table", "consensus_markdown", "consensus_table", "diagnosis_sections", "seed_agreement_markdown", "seed_agreement_table"]
