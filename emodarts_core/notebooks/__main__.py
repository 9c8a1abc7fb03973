"""`python -m emodarts_core.notebooks copy DEST`: a working copy of the notebooks."""

from emodarts_core.notebooks import main

raise SystemExit(main())
