"""``python -m data_prep``: see :mod:`data_prep.cli`."""

from .cli import main

raise SystemExit(main())
