"""`python -m emodarts_core.results`: the documented command name for `emodarts_core.study.results`."""

from emodarts_core.study.results import main

if __name__ == "__main__":
    raise SystemExit(main())
