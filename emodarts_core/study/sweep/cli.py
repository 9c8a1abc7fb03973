"""`python -m emodarts_core.sweep ...` (or `python -m emodarts_core.study.sweep`): run a
sweep from the command line; docs/SWEEPS.md shows its use."""

from __future__ import annotations

import argparse
import sys

from emodarts_core.config import PROTOCOLS, ConfigError
from emodarts_core.training.rundir import RunExistsError

from .cluster import ClusterAuthError
from .driver import run_sweep
from .parameters import SEARCH_SCOPES
from .plan import BASELINE_NAMES, CONTROLS


def _data_dir_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected DATASET=PATH, got {text!r}")
    return name, path


def main(argv: list[str] | None = None) -> int:
    """`python -m emodarts_core.sweep ...`: run a sweep; exit status 1 if any task failed."""
    parser = argparse.ArgumentParser(prog="python -m emodarts_core.sweep",
                                     description="Run emoDARTS searches/retrainings, baselines and random-"
                                                 "architecture controls over datasets x folds x seeds on Ray, "
                                                 "resumably.")
    parser.add_argument("--datasets", nargs="+", required=True, help="corpus names, e.g. iemocap emodb synthetic")
    parser.add_argument("--folds", nargs="+", type=int, required=True, help="1-based fold numbers")
    parser.add_argument("--scopes", nargs="*", default=[], help=f"search scopes: {', '.join(SEARCH_SCOPES)}")
    parser.add_argument("--baselines", nargs="*", default=[], help=f"baselines: {', '.join(BASELINE_NAMES)}")
    parser.add_argument("--controls", nargs="*", default=[], help=f"random-architecture controls: {', '.join(CONTROLS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds of every search and retraining")
    parser.add_argument("--protocols", nargs="+", default=["paper"],
                        help=f"retraining protocols: {', '.join(PROTOCOLS)} (emodarts_core.training.protocols)")
    parser.add_argument("--params", required=True,
                        help="YAML file with network/search/train settings, or the name of an installed one "
                             "(python -m emodarts_core.params lists them)")
    parser.add_argument("--results", required=True, help="the results folder (shared by all nodes)")
    parser.add_argument("--address", default=None, help="an existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT")
    parser.add_argument("--workers", type=int, default=None, help="at most this many tasks at once "
                        "(and the CPUs of the local Ray instance)")
    parser.add_argument("--gpus-per-task", default="auto", help="auto (1 if the cluster has GPUs) "
                        "or a number, e.g. 0.5 to share a GPU between two tasks")
    parser.add_argument("--data-dir", type=_data_dir_arg, nargs="+", action="extend", default=[],
                        metavar="DATASET=PATH", help="feature store or corpus root of each dataset that needs one")
    parser.add_argument("--no-resume", action="store_true", help="refuse a results folder that holds these runs")
    parser.add_argument("--stack", type=int, default=1, metavar="K", help="run each fold's searches (seeds and "
                        "prior) K at a time in one stacked network first (docs/PERFORMANCE.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress table")
    args = parser.parse_args(argv)
    try:
        report = run_sweep(args.datasets, args.folds, args.scopes, args.baselines, args.params, args.results,
                           seeds=args.seeds, protocols=args.protocols, controls=args.controls, address=args.address,
                           num_workers=args.workers, gpus_per_task=args.gpus_per_task,
                           data_dirs=dict(args.data_dir), resume=not args.no_resume, progress=not args.quiet,
                           stack=args.stack)
    except (ConfigError, RunExistsError, ClusterAuthError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for st in report.failures:
        print(f"\nFAILED {st.task.key}: {st.error}\n{st.traceback or ''}", file=sys.stderr)
    print(f"\nmanifest: {report.manifest}", flush=True)
    return 0 if report.ok else 1
