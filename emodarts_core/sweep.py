"""`python -m emodarts_core.sweep`: the documented command name for `emodarts_core.study.sweep`."""

from emodarts_core.study.sweep import main

if __name__ == "__main__":
    raise SystemExit(main())
