"""`python -m emodarts_core.results RESULTS_DIR`: write and print a results folder's summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .runs import atomic_csv, find_run_dirs, write_summary
from .study import study_row, wall_times, write_study


def main(argv: list[str] | None = None) -> int:
    """`python -m emodarts_core.results RESULTS_DIR [--out summary.csv]`: write and print the summary.

    When the folder holds runs of the seeds/controls study (`config["study"]`), write
    study.csv and the study's summary.csv (`write_study`) and print the summary; otherwise
    write the per-fold summary of `write_summary`.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", help="a results folder holding run directories")
    parser.add_argument("--out", default=None, help="where to write summary.csv (default ROOT/summary.csv)")
    parser.add_argument("--markdown", default=None, metavar="FILE",
                        help="study only: also write its tables as Markdown (emodarts_core/study/report.py)")
    parser.add_argument("--complete-cells", action="store_true",
                        help="study only: tables of a study still running, from the (fold, seed) cells in which "
                             "every model has finished (results.complete_cells); writes cells.csv beside study.csv")
    args = parser.parse_args(argv)
    if any(study_row(d) is not None for d in find_run_dirs(args.root)):
        study_path = Path(args.out).with_name("study.csv") if args.out else None
        study, summary, cells = write_study(args.root, summary_path=args.out, study_path=study_path,
                                            complete_only=args.complete_cells)
        times = wall_times(args.root)
        atomic_csv(times, Path(args.root) / "wall_time.csv")
        if args.markdown:
            from emodarts_core.study.report import markdown_report
            from emodarts_core.study.stability import search_stability
            from emodarts_core.training.rundir import RunDir

            root = Path(args.root)
            stability = search_stability(root.parent, dataset=root.name)
            text = markdown_report(summary, study, stability, times, cells)
            out = Path(args.markdown)
            RunDir(out.parent).atomic_write_text(out.name, text)
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            for protocol, part in summary.groupby("protocol", sort=True):
                print(f"protocol {protocol}:")
                print(part.drop(columns=["protocol"]).round(4).to_string(index=False))
            print("compute time per run (sum of epoch times):")
            print(times.round(1).to_string(index=False))
        return 0
    summary = write_summary(args.root, args.out)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summary.to_string(index=False))
    return 0
