"""The sections of the study's tables.md that say why a search does or does not help:
how well its supernets rank architectures (`study.ranking`, from `<root>/ranking.csv`,
written by `python -m emodarts_core.study.ranking ROOT` after the sweep) and the optimism
of reporting the best test epoch (`study.optimism`, a measured bias, not a result). Each
section is left out where the study holds nothing for it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from emodarts_core.study.optimism import optimism_markdown, optimism_table
from emodarts_core.study.ranking import (ceiling_markdown, ceiling_table, n_classes_of, ranking_markdown, ranking_table,
                                        stand_alone_scores)


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
    if not study.empty:
        parts.append(optimism_markdown(optimism_table(study, root)))
    text = "\n".join(p for p in parts if p)
    return "\n" + text if text else ""


__all__ = ["diagnosis_sections"]
