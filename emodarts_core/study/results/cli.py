"""`python -m emodarts_core.results RESULTS_DIR`: write and print a results folder's summary;
`... results pack RESULTS_DIR` and `... results unpack PACK DEST`: a study's run directories
as one file and back (`pack`, docs/SWEEPS.md "Packing a study")."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from .pack import PackError, PackRefused, find_runs, pack_study, study_folder_of, unpack_study
from .runs import atomic_csv, collect_runs, write_summary, write_text_atomic
from .study import study_row, wall_times, write_study


def pack_main(argv: list[str]) -> int:
    """`pack RESULTS_DIR [--force]` and `unpack PACK DEST [--force]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m emodarts_core.results",
                                     description="A study's run directories as one file (runs.parquet) and back.")
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="pack the run directories of a study folder into its runs.parquet")
    pack.add_argument("root", help="the study folder (e.g. results/emodb)")
    pack.add_argument("--force", action="store_true", help="replace packed runs even where the pack is newer")
    unpack = commands.add_parser("unpack", help="write a pack's runs back as run directories")
    unpack.add_argument("pack", help="a runs.parquet, or the study folder holding it")
    unpack.add_argument("dest", help="the folder to write the run directories into")
    unpack.add_argument("--force", action="store_true", help="overwrite files that differ")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            print(pack_study(args.root, force=args.force))
        else:
            count = unpack_study(study_folder_of(args.pack)[1], args.dest, force=args.force)
            print(f"wrote {count} files of run directories under {args.dest}")
    except (PackError, PackRefused, FileNotFoundError) as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m emodarts_core.results RESULTS_DIR [--out summary.csv]`: write and print the summary.

    RESULTS_DIR holds run directories, or a study's pack (runs.parquet), or is that pack.
    When it holds runs of the seeds/controls study (`config["study"]`), write study.csv and
    the study's summary.csv (`write_study`) and print the summary; otherwise write the
    per-fold summary of `write_summary`. Files that cannot be read are gaps, listed on stderr.
    """
    import argparse

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("pack", "unpack"):
        return pack_main(argv)
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", help="a results folder holding run directories or a pack (runs.parquet), or the pack")
    parser.add_argument("--out", default=None, help="where to write summary.csv (default ROOT/summary.csv)")
    parser.add_argument("--markdown", default=None, metavar="FILE",
                        help="study only: also write its tables as Markdown (emodarts_core/study/report.py)")
    parser.add_argument("--complete-cells", action="store_true",
                        help="study only: tables of a study still running, from the (fold, seed) cells in which "
                             "every model has finished (results.complete_cells); writes cells.csv beside study.csv")
    args = parser.parse_args(argv)
    try:
        return _summarise(args)
    except PackError as error:
        print(f"results: {error}", file=sys.stderr)
        return 1


def _summarise(args) -> int:
    args.root = str(study_folder_of(args.root)[0])
    rows = [study_row(run) for run in find_runs(args.root)]
    for problem in sorted({r["problem"] for r in rows if r is not None and r["problem"]}):
        print(f"gap: {problem}", file=sys.stderr)
    if any(row is not None for row in rows):
        study_path = Path(args.out).with_name("study.csv") if args.out else None
        study, summary, cells = write_study(args.root, summary_path=args.out, study_path=study_path,
                                            complete_only=args.complete_cells)
        times = wall_times(args.root)
        atomic_csv(times, Path(args.root) / "wall_time.csv")
        if args.markdown:
            from emodarts_core.study.report import markdown_report
            from emodarts_core.study.stability import search_stability

            root = Path(args.root)
            stability = search_stability(root.parent, dataset=root.name)
            from emodarts_core.study.diagnosis import diagnosis_sections  # ranking and optimism, where present
            from emodarts_core.study.settings_report import settings_sections  # the folds' own choices

            write_text_atomic(args.markdown, markdown_report(summary, study, stability, times, cells)
                              + settings_sections(root, study) + diagnosis_sections(root, study))
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            for protocol, part in summary.groupby("protocol", sort=True):
                print(f"protocol {protocol}:")
                print(part.drop(columns=["protocol"]).round(4).to_string(index=False))
            print("compute time per run (sum of epoch times):")
            print(times.round(1).to_string(index=False))
        return 0
    for problem in sorted(set(p for p in collect_runs(args.root)["problem"] if p)):
        print(f"gap: {problem}", file=sys.stderr)
    summary = write_summary(args.root, args.out)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summary.to_string(index=False))
    return 0
