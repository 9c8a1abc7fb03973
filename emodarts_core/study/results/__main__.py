"""`python -m emodarts_core.study.results`: the same command as `python -m emodarts_core.results`."""

from emodarts_core.study.results.cli import main

raise SystemExit(main())
