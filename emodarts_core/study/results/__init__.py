"""Results folders as tables: the per-run part, the study part, and the command line.

- `runs`: one row per run directory (`collect_runs`), then mean ± std over folds per
  dataset, model and scope (`summarise`), as the paper's Tables 3-7 report them;
- `study`: the seeds/controls study (`collect_study`, `compare_study`, `summarise_study`,
  `write_study`, and `complete_cells` for a study still running), with paired comparisons and pooled confidence intervals;
- `pack`: a study's run directories as one file (`runs.parquet`), read alike
  (`find_runs`), and the study committed with the repository (`repository_study`);
- `cli`: `python -m emodarts_core.results RESULTS_DIR`, which writes whichever applies,
  and `... results pack DIR` / `unpack PACK DEST`.

Missing data is a gap, never an error; UA and WA are in percent, like the paper's tables.
"""

from .cli import main
from .pack import PACK_NAME, PackError, RunFiles, find_runs, pack_study, repository_study, unpack_study
from .runs import (BASELINES, CORPORA, EXPECTED_MODELS, RUN_COLUMNS, SUMMARY_COLUMNS, atomic_csv, collect_runs,
                   find_run_dirs,
                   format_mean_std, per_fold, side_by_side, summarise, write_summary)
from .study import (COMPARISON_COLUMNS, STUDY_COLUMNS, STUDY_SUMMARY_COLUMNS, collect_study, compare_study,
                    complete_cells, summarise_study, wall_times, write_study)

__all__ = ["BASELINES", "COMPARISON_COLUMNS", "CORPORA", "EXPECTED_MODELS", "PACK_NAME", "PackError", "RUN_COLUMNS",
           "RunFiles", "STUDY_COLUMNS", "atomic_csv", "find_runs", "pack_study", "repository_study", "unpack_study",
           "STUDY_SUMMARY_COLUMNS", "SUMMARY_COLUMNS", "collect_runs", "collect_study", "compare_study",
           "complete_cells",
           "find_run_dirs", "format_mean_std", "main", "per_fold", "side_by_side", "summarise", "summarise_study",
           "wall_times", "write_study", "write_summary"]
