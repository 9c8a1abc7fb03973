"""A project error in a notebook shows as its message alone, in the notebook and in papermill's output.

And papermill's output holds nothing the kernel prints about itself while it stops (a
pyzmq traceback from a socket closed at shutdown), while what a notebook's code prints to
the kernel's stderr still shows.

The literal case: `papermill NOTEBOOK out.ipynb -p dataset iemocap` on a machine where
IEMOCAP was never registered. The kernel renders the `CorpusNotFoundError` through
`EmodartsError._render_traceback_`, and papermill's command (through the hook of
`emodarts_core.notebooks.papermill_errors`) prints which cell stopped and the message,
without its own frames.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import nbformat
import pytest

from data_prep.errors import ENV_TRACEBACK, FULL_TRACEBACK_HINT, DataError, EmodartsError
from emodarts_core.config import ConfigError, SearchConfig
from emodarts_core.notebooks.papermill_errors import KernelNoise, project_error_lines

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tiny_notebook(path):
    """A parameters cell, then the notebooks' first data call (`data_prep.resolve`)."""
    parameters = nbformat.v4.new_code_cell('dataset = "synthetic"\ndata_dir = None')
    parameters.metadata["tags"] = ["parameters"]
    cells = [parameters, nbformat.v4.new_code_cell("import data_prep\n\nlocation = data_prep.resolve(dataset, data_dir)"),
             nbformat.v4.new_code_cell('print("not reached")')]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_missing_corpus_in_papermill_shows_its_message_alone(tmp_path):
    source, executed = tmp_path / "nb.ipynb", tmp_path / "out.ipynb"
    _tiny_notebook(source)
    env = {k: v for k, v in os.environ.items() if k not in ("EMODARTS_IEMOCAP_ROOT", ENV_TRACEBACK)}
    env["EMODARTS_CONFIG_DIR"] = str(tmp_path / "config")  # no corpus registered
    run = subprocess.run([sys.executable, "-m", "papermill", str(source), str(executed), "-p", "dataset", "iemocap",
                          "-k", "python3", "--log-output", "--no-progress-bar"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Traceback" not in output and "File \"" not in output, output

    error = next(o for c in nbformat.read(executed, 4).cells for o in c.get("outputs", []) if o.output_type == "error")
    assert error.ename == "CorpusNotFoundError"
    message = error.evalue.splitlines()
    assert "EMODARTS_IEMOCAP_ROOT" in error.evalue and "python -m data_prep register iemocap" in error.evalue
    # in the notebook: the message and one line on how to see the full traceback
    shown = [ANSI.sub("", line) for line in "\n".join(error.traceback).splitlines()]
    assert shown == [f"CorpusNotFoundError: {message[0]}", *message[1:], FULL_TRACEBACK_HINT]
    # papermill's output ends with the cell, the message and that line, nothing of papermill's frames
    tail = output.splitlines()[-(len(message) + 2):]
    assert tail[0].startswith("The notebook stopped in cell")
    assert tail[1:-1] == [f"CorpusNotFoundError: {message[0]}", *message[1:]]
    assert ENV_TRACEBACK in tail[-1]


def test_project_errors_render_as_their_message_and_on_request_as_a_traceback(monkeypatch):
    monkeypatch.delenv(ENV_TRACEBACK, raising=False)
    with pytest.raises(ConfigError) as raised:
        SearchConfig(batch_size=0).validate()
    lines = [ANSI.sub("", line) for line in raised.value._render_traceback_()]
    assert lines[0] == f"ConfigError: {raised.value}" and lines[1:] == [FULL_TRACEBACK_HINT]
    assert isinstance(raised.value, EmodartsError) and isinstance(raised.value, ValueError)
    bad = DataError("not a WAV file", "/data/x.wav")
    assert ANSI.sub("", bad._render_traceback_()[0]) == "DataError: /data/x.wav: not a WAV file"
    monkeypatch.setenv(ENV_TRACEBACK, "1")  # on request, the usual traceback, down to the raising line
    full = raised.value._render_traceback_()
    assert full[0] == "Traceback (most recent call last):" and full[-1] == f"emodarts_core.config.ConfigError: {raised.value}"
    assert any("_require" in line for line in full)


def test_papermill_hook_leaves_other_errors_to_the_usual_traceback():
    from papermill.exceptions import PapermillExecutionError

    other = PapermillExecutionError(1, 3, "1/0", "ZeroDivisionError", "division by zero",
                                    ["-----", "ZeroDivisionError    Traceback (most recent call last)",
                                     "Cell In[3], line 1", "ZeroDivisionError: division by zero"])
    assert project_error_lines(other) is None
    ours = PapermillExecutionError(1, 3, "x", "DataError", "bad", ["\x1b[0;31mDataError\x1b[0m: bad", FULL_TRACEBACK_HINT])
    assert project_error_lines(ours)[:2] == ["The notebook stopped in cell In [3]:", "DataError: bad"]


#: What ipykernel's shutdown printed into papermill's output at load: tornado's report of a
#: socket closed under its event loop.
SHUTDOWN_TRACEBACK = """Exception in callback BaseAsyncIOLoop._handle_events(12, 1)
handle: <Handle BaseAsyncIOLoop._handle_events(12, 1)>
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/zmq/eventloop/zmqstream.py", line 614, in _handle_events
    zmq_events = self.socket.EVENTS
  File "zmq/backend/cython/checkrc.pxd", line 28, in zmq.backend.cython.checkrc._check_rc
zmq.error.ZMQError: Socket operation on non-socket
"""
OTHER_TRACEBACK = """Error in atexit._run_exitfuncs:
Traceback (most recent call last):
  File "<string>", line 3, in bye
ValueError: a real problem

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "<string>", line 5, in bye
RuntimeError: still real
"""


def _filtered(text: str) -> str:
    noise = KernelNoise()
    shown = [line for raw in text.splitlines(keepends=True) for line in noise.feed(raw)]
    return "".join(shown + noise.close())


def test_kernel_noise_drops_the_shutdown_socket_traceback_and_keeps_everything_else():
    chatter = ("[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication ...\n"
               "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.\n")
    before, after = "a line the notebook printed\n", "ERROR: something the notebook logged\nthe end\n"
    text = before + chatter + SHUTDOWN_TRACEBACK + OTHER_TRACEBACK + SHUTDOWN_TRACEBACK + after
    assert _filtered(text) == before + OTHER_TRACEBACK + after
    unfinished = "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
    assert _filtered(before + unfinished) == before + unfinished  # the stream ended inside it: shown


def test_papermill_output_has_no_shutdown_traceback_but_what_the_kernel_printed(tmp_path):
    """A kernel that writes, as it exits, a line and then the shutdown traceback to its
    stderr (file descriptor 2, as ipykernel's own logging does)."""
    source = tmp_path / "nb.ipynb"
    at_exit = ("import atexit, os\n\n"
               f"atexit.register(lambda: os.write(2, {('kernel says goodbye' + chr(10) + SHUTDOWN_TRACEBACK).encode()!r}))")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(at_exit)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, source)
    run = subprocess.run([sys.executable, "-m", "papermill", str(source), str(tmp_path / "out.ipynb"), "-k", "python3",
                          "--log-output", "--no-progress-bar"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "kernel says goodbye" in output  # the kernel's stderr reaches papermill's output
    assert "Traceback" not in output and "ZMQError" not in output and "without encryption" not in output, output
