"""Papermill's command line: a notebook stopped by a project error ends with that error's message alone.

In the kernel an `EmodartsError` (a missing corpus, a bad setting, bad data) already
shows as its message alone (`data_prep.errors.EmodartsError._render_traceback_`). The
papermill command then raises its own `PapermillExecutionError` at top level, and Python
prints papermill's frames (about 20 lines of click and papermill) above the message.
Those frames say nothing about the notebook, so for such an error this module prints
only which cell stopped and the message.

Papermill imports the modules of its `papermill.engine` entry points when it starts, so
the package registers `Engine` (papermill's usual nbclient engine under the name
`emodarts`) to be loaded there; loading it installs the exception hook. The hook acts
only on an uncaught `PapermillExecutionError` whose notebook traceback is a project
error's (it ends with `FULL_TRACEBACK_HINT`); everything else goes to the previous hook.
"""

from __future__ import annotations

import re
import sys

from data_prep.errors import ENV_TRACEBACK, FULL_TRACEBACK_HINT

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def __getattr__(name: str):
    """`Engine`: papermill's nbclient engine, unchanged (`--engine emodarts` selects it like the
    default). Looked up on demand, since papermill loads this module while it is itself
    being imported."""
    if name == "Engine":
        from papermill.engines import NBClientEngine

        return NBClientEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def project_error_lines(error) -> list[str] | None:
    """The lines to print for a `PapermillExecutionError` raised by a project error, else None."""
    lines = [_ANSI.sub("", line) for line in "\n".join(getattr(error, "traceback", None) or []).splitlines()]
    if not lines or lines[-1].strip() != FULL_TRACEBACK_HINT:
        return None
    return [f"The notebook stopped in cell In [{error.exec_count}]:", *lines[:-1],
            f"(the executed notebook holds the cell; the full traceback: {ENV_TRACEBACK}=1)"]


def _hook(etype, value, tb, previous=sys.excepthook):
    lines = project_error_lines(value) if etype.__name__ == "PapermillExecutionError" else None
    if lines is None:
        previous(etype, value, tb)
    else:
        print("\n".join(lines), file=sys.stderr)


if sys.excepthook is sys.__excepthook__:  # never replace a hook someone else installed
    sys.excepthook = _hook
