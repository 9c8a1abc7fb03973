"""The one exception data preparation raises for bad input.

Every problem a user can cause (a corrupt file, an unknown corpus name, a missing root,
a store from another version) ends in a ``DataError`` whose message names the file or
folder and says what is wrong, instead of a bare traceback from deep inside a library.
"""

from __future__ import annotations

import os


class DataError(Exception):
    """Bad input data: the message names the path (when there is one) and the problem."""

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        super().__init__(problem if self.path is None else f"{self.path}: {problem}")

    def __reduce__(self):
        # Keep it picklable across process-pool boundaries.
        return (type(self), (self.problem, self.path))
