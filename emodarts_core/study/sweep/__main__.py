"""`python -m emodarts_core.study.sweep`: the same command as `python -m emodarts_core.sweep`."""

from emodarts_core.study.sweep.cli import main

raise SystemExit(main())
