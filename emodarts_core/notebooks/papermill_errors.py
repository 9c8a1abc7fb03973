"""Papermill's command line: a notebook stopped by a project error ends with that error's message alone.

In the kernel an `EmodartsError` (a missing corpus, a bad setting, bad data) already
shows as its message alone (`data_prep.errors.EmodartsError._render_traceback_`). The
papermill command then raises its own `PapermillExecutionError` at top level, and Python
prints papermill's frames (about 20 lines of click and papermill) above the message.
Those frames say nothing about the notebook, so for such an error this module prints
only which cell stopped and the message.

Papermill imports the modules of its `papermill.engine` entry points when it starts, so
the package registers `Engine` to be loaded there; loading it installs the exception hook.
The hook acts only on an uncaught `PapermillExecutionError` whose notebook traceback is a
project error's (it ends with `FULL_TRACEBACK_HINT`); everything else goes to the previous
hook.

Two more things keep papermill's output about the notebook alone. `Engine` (papermill's
nbclient engine, made the default when papermill loads it) passes the kernel's own stderr
through `KernelNoise`, which drops what the kernel process prints about itself and not
about the notebook: a traceback that ends in pyzmq's "Socket operation on non-socket"
(a socket closed under a sender while the kernel shuts down), the warning that a local
kernel talks over TCP, and the KeyboardInterrupt the kernel logs when it is stopped;
every other line goes through as it comes. And it sets `EMODARTS_PROGRESS=text` for the
kernels papermill starts, so that the progress bars are text that `--log-output` shows
(`emodarts_core.training.loop.progress`), not widgets whose updates it never sees.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

from data_prep.errors import ENV_TRACEBACK, FULL_TRACEBACK_HINT

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def __getattr__(name: str):
    """`Engine`: papermill's nbclient engine with the kernel's stderr filtered (`KernelNoise`),
    registered as papermill's default engine. Built on demand, since papermill loads this
    module while it is itself being imported."""
    if name == "Engine":
        global Engine
        Engine = _make_engine()
        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The last line of a traceback the kernel prints about its own sockets while it stops.
_SOCKET_CLOSED = re.compile(r"ZMQError: (Socket operation on non-socket|Context was terminated)")
#: Lines the kernel logs about itself: the local-TCP warning, the interrupt that stops it.
_KERNEL_CHATTER = re.compile(r"Kernel is running over TCP without encryption|KeyboardInterrupt caught in kernel")
#: Lines that may introduce a traceback (asyncio's, tornado's, atexit's, a logger's).
_PREAMBLE = re.compile(r"^(Exception in callback|Error in atexit|Exception ignored in|handle: <|"
                       r"ERROR:|\[E |\S.* ERROR \| |\[IPKernelApp\] ERROR)")
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


class KernelNoise:
    """Filters the kernel's stderr line by line: `feed` returns the lines to show now.

    A traceback (with the line before it that announces it) is held until its last line;
    it is dropped when that line says a socket was closed under the kernel while it
    stopped, shown whole otherwise. Any other line is shown at once, unless it is the
    kernel's note about itself (`_KERNEL_CHATTER`)."""

    def __init__(self):
        self.held: list[str] = []
        self.in_traceback = False

    def feed(self, line: str) -> list[str]:
        text = line.rstrip("\n")
        if self.in_traceback:
            self.held.append(line)
            ended = text and not text[0].isspace() and not text.startswith(("Traceback", *_CHAINED))
            if not ended:
                return []
            self.in_traceback = False
            block, self.held = self.held, []
            return [] if _SOCKET_CLOSED.search(text) else block
        if text.startswith("Traceback (most recent call last)"):
            self.held.append(line)
            self.in_traceback = True
            return []
        if _PREAMBLE.match(text) and not _KERNEL_CHATTER.search(text):
            shown, self.held = self.held[:-2], self.held[-2:] + [line]  # at most three lines announce one
            return shown
        shown, self.held = self.held, []
        return shown if _KERNEL_CHATTER.search(text) else [*shown, line]

    def close(self) -> list[str]:
        """What is still held when the stream ends (an unfinished traceback is shown)."""
        shown, self.held, self.in_traceback = self.held, [], False
        return shown


@contextlib.contextmanager
def filtered_kernel_stderr(out=None):
    """A file descriptor for a kernel's stderr whose lines reach `out` (default: this
    process's stderr) through `KernelNoise`; the reader stops when every writer has closed it."""
    out = out or sys.stderr
    read_end, write_end = os.pipe()
    noise = KernelNoise()

    def forward():
        with open(read_end, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                out.writelines(noise.feed(line))
                out.flush()
        out.writelines(noise.close())
        out.flush()

    reader = threading.Thread(target=forward, name="kernel-stderr", daemon=True)
    reader.start()
    try:
        yield write_end
    finally:
        os.close(write_end)
        reader.join(timeout=10)  # a process the kernel started may still hold the pipe open


def _make_engine():
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class Client(PapermillNotebookClient):
        """Papermill's client, starting its kernel with stderr on `kernel_stderr`."""

        kernel_stderr = None

        def start_new_kernel(self, **kwargs):
            return super().start_new_kernel(**{"stderr": self.kernel_stderr, **kwargs})

    class FilteredEngine(NBClientEngine):
        """Papermill's nbclient engine (`papermill.engines.NBClientEngine`), with the
        kernel's stderr filtered through `KernelNoise`."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kwargs = remove_args(["input_path"], **kwargs)
            final_kwargs = merge_kwargs(remove_args(["timeout", "startup_timeout"], **kwargs),
                                        timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                                        startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
                                        log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
            with filtered_kernel_stderr() as kernel_stderr:
                client = Client(nb_man, **final_kwargs)
                client.kernel_stderr = kernel_stderr
                return client.execute()

    papermill_engines.register(None, FilteredEngine)  # papermill's default engine from now on
    os.environ.setdefault("EMODARTS_PROGRESS", "text")  # inherited by the kernels papermill starts
    return FilteredEngine


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
