"""The project's errors: one base for every problem a user can cause, and the data error.

Every problem a user can cause (a corrupt file, an unknown corpus name, a missing root,
a store from another version, a bad setting) ends in an exception whose message names
the file or setting and says what is wrong, instead of a bare traceback from deep inside
a library. Those exceptions derive from :class:`EmodartsError`, which lives here because
``data_prep`` is the bottom layer (docs/ARCHITECTURE.md): every other layer may import
this one module.

In a notebook an ``EmodartsError`` shows as its message alone, not as a traceback through
the library: IPython asks an exception for ``_render_traceback_()`` before formatting
one. The message is what a user needs; the frames are the library's. With
``EMODARTS_TRACEBACK=1`` in the environment (in a notebook: ``%env EMODARTS_TRACEBACK=1``,
then ``%tb`` for the last error) IPython shows the usual traceback.
"""

from __future__ import annotations

import os

#: Set to 1 to see a project error's full traceback in a notebook.
ENV_TRACEBACK = "EMODARTS_TRACEBACK"
#: The last line of a project error in a notebook (papermill's hook recognises it by this line).
FULL_TRACEBACK_HINT = f"(the full traceback: %env {ENV_TRACEBACK}=1, then %tb)"


class EmodartsError(Exception):
    """A problem the user can fix, whose message says what and where; shown alone in a notebook."""

    def _render_traceback_(self) -> list[str]:
        """The lines IPython shows for this error: its class name and message, and how to see more.

        With ``EMODARTS_TRACEBACK=1``: the usual Python traceback instead."""
        if os.environ.get(ENV_TRACEBACK, "") not in ("", "0"):
            import traceback

            return "".join(traceback.format_exception(type(self), self, self.__traceback__)).splitlines()
        red, plain = "\x1b[0;31m", "\x1b[0m"
        lines = str(self).splitlines() or [""]
        return [f"{red}{type(self).__name__}{plain}: {lines[0]}", *lines[1:], FULL_TRACEBACK_HINT]


class DataError(EmodartsError):
    """Bad input data: the message names the path (when there is one) and the problem."""

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        super().__init__(problem if self.path is None else f"{self.path}: {problem}")

    def __reduce__(self):
        # Keep it picklable across process-pool boundaries.
        return (type(self), (self.problem, self.path))
