"""`python -m emodarts_core.bench`: the documented command name for `emodarts_core.perf.bench`."""

from emodarts_core.perf.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
