"""The settings each fold of a study chose, as a section of its tables.md.

A study that chooses its settings inside each fold (`study.nested`; results/emodb/README.md)
records them in two places: every fold's nested choices (`nested/fold<k>/choices.json`:
the network baselines' optimiser and normalisation, the search space's normalisation, who
trained and who judged them) and every classic run's own choice (its `result.json`'s
`choice`: family, C and, for the MFCC statistics, the number of coefficients, chosen by
leave-one-speaker-out over the run's training speakers). This module reads both, on disk
or packed (`study.results.pack.find_runs`), so that the README copies the settings from the
generated tables rather than retyping them. A study without such records gets no section.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from emodarts_core.study.results.pack import run_files
from emodarts_core.training.classic import candidate_key

#: The classic baselines whose runs choose their own settings.
CLASSIC_MODELS = ("classic", "egemaps")


def nested_choices_table(root, runs=None) -> pd.DataFrame:
    """One row per fold: its test speakers, who judged, its inner groups, the search
    space's normalisation and each network baseline's setting (`choices.json`; `runs` as
    `study.results.pack.run_files(root)`)."""
    rows = []
    for run in (runs if runs is not None else run_files(root)).values():
        if not run.has("choices.json"):
            continue
        record = run.json("choices.json")
        prov = record.get("provenance", {})
        groups = prov.get("groups", {})
        row = {"fold": int(record["fold"]), "test_speakers": ", ".join(prov.get("test_speakers", [])),
               "judged_by": ", ".join(prov.get("judged_by", [])),
               "groups": "; ".join(" + ".join(groups[g]) for g in sorted(groups, key=int)),
               "search_space": record.get("search_space", {}).get("normalise", "")}
        row.update({name: choice.get("setting", "") for name, choice in record.get("baselines", {}).items()})
        rows.append(row)
    return pd.DataFrame(rows).sort_values("fold", ignore_index=True) if rows else pd.DataFrame()


def classic_choices_table(study: pd.DataFrame, root, runs=None) -> pd.DataFrame:
    """One row per (model, protocol, fold) of the classic baselines: the chosen family, C
    and number of MFCC coefficients, the leave-one-speaker-out UA (%) it won with, the
    speakers that judged it, and how many of the cell's seeds chose the same (a classic run
    is deterministic, so all of them should). `runs` as `study.results.pack.run_files(root)`."""
    files = runs if runs is not None else run_files(root)
    rows = []
    part = study[study["model"].isin(CLASSIC_MODELS)]
    for (model, protocol, fold), group in part.groupby(["model", "protocol", "fold"], sort=True):
        chosen = []
        for row in group.sort_values("seed").itertuples():
            run = files.get(str(row.run_dir))
            if run is not None and run.has("result.json"):
                choice = run.json("result.json").get("choice") or {}
                if "model" in choice:  # runs from before the family was chosen record C alone: not listed
                    chosen.append(choice)
        if not chosen:
            continue
        first = chosen[0]
        score = (first.get("loso_ua") or {}).get(candidate_key(first))
        same = sum(c.get("model") == first.get("model") and c.get("C") == first.get("C")
                   and c.get("n_mfcc") == first.get("n_mfcc") for c in chosen)
        rows.append({"model": model, "protocol": protocol, "fold": int(fold), "family": first.get("model"),
                     "C": first.get("C"), "n_mfcc": first.get("n_mfcc"),
                     "loso_ua": None if score is None else 100 * score,
                     "judged_by": ", ".join(first.get("judged_by", [])), "seeds_agreeing": f"{same} of {len(chosen)}"})
    return pd.DataFrame(rows)


def settings_markdown(nested: pd.DataFrame, classic: pd.DataFrame) -> str:
    """The two tables as a tables.md section (empty where neither has a row)."""
    if nested.empty and classic.empty:
        return ""
    lines = ["## Settings chosen inside each fold", ""]
    if not nested.empty:
        names = [c for c in nested.columns if c not in ("fold", "test_speakers", "judged_by", "groups", "search_space")]
        lines += ["Nested choices (`nested/fold<k>/choices.json`): the inner held-out groups of training speakers "
                  "listed judge each setting by mean held-out UA (two seeds can draw the same group); no fold's "
                  "test speakers are among them.", "",
                  "| " + " | ".join(["fold", "test speakers", "judged by", "inner groups",
                                     "search space normalisation", *names]) + " |", "| --- " * (5 + len(names)) + "|"]
        for r in nested.to_dict("records"):
            cells = [r["fold"], r["test_speakers"], r["judged_by"], r["groups"], r["search_space"],
                     *(r[n] for n in names)]
            lines.append("| " + " | ".join("" if pd.isna(c) else str(c) for c in cells) + " |")
        lines.append("")
    if not classic.empty:
        lines += ["Classic baselines (each run's `result.json`, `choice`): family, C and MFCC coefficients chosen "
                  "by leave-one-speaker-out over the run's training speakers; the UA is that choice's "
                  "leave-one-speaker-out UA.", "",
                  "| model | protocol | fold | family | C | MFCC coefficients | LOSO UA % | seeds agreeing |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in classic.itertuples(index=False):
            ua = "" if r.loso_ua is None or pd.isna(r.loso_ua) else f"{r.loso_ua:.1f}"
            coeffs = "" if r.n_mfcc is None or pd.isna(r.n_mfcc) else int(r.n_mfcc)
            lines.append(f"| {r.model} | {r.protocol} | {r.fold} | {r.family} | {r.C:g} | {coeffs} | {ua} | "
                         f"{r.seeds_agreeing} |")
        lines.append("")
    return "\n".join(lines)


def settings_sections(root, study: pd.DataFrame) -> str:
    """Markdown for tables.md: the folds' nested choices and the classic runs' choices."""
    root = Path(root)
    runs = run_files(root)
    classic = classic_choices_table(study, root, runs) if not study.empty else pd.DataFrame()
    text = settings_markdown(nested_choices_table(root, runs), classic)
    return "\n" + text if text else ""


__all__ = ["CLASSIC_MODELS", "classic_choices_table", "nested_choices_table", "settings_markdown", "settings_sections"]
