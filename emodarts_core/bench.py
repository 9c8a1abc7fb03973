"""`python -m emodarts_core.bench`: the documented command name for `emodarts_core.darts.bench`."""

from emodarts_core.darts.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
