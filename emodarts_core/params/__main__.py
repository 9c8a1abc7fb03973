"""`python -m emodarts_core.params [NAME ...]`: where the installed parameter files are."""

from emodarts_core.params import main

raise SystemExit(main())
