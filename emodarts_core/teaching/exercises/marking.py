"""The marking core of the exercises' self-checks: a `Verdict`, the `Marking` that
collects a check's findings part by part, the `self_check` decorator that gives a check
its title and turns a malformed answer into a verdict, and the readers of answers.

A check never raises on an unanswered or malformed answer, so the notebooks still run
headless (papermill, nbval) with every answer left as ``None``.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .choices import CHOICES

CORRECT, INCORRECT, UNANSWERED, INCOMPLETE, UNCHECKABLE = (
    "correct", "incorrect", "unanswered", "incomplete", "uncheckable")

_HEADLINES = {CORRECT: "✅ correct", INCORRECT: "❌ not right yet", UNANSWERED: "… not answered yet",
              INCOMPLETE: "… partly answered", UNCHECKABLE: "⚠ cannot be checked here"}


@dataclass(frozen=True)
class Verdict:
    """What a self-check found: `status` (one of this module's five constants) and the
    lines of feedback shown to the student. Displayed as text in a notebook."""

    exercise: str
    status: str
    lines: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status == CORRECT

    def __str__(self) -> str:
        return "\n".join([f"{_HEADLINES[self.status]} · {self.exercise}", *(f"  {line}" for line in self.lines)])

    __repr__ = __str__


class Marking:
    """Collects the findings of one check, part by part, and turns them into a Verdict."""

    def __init__(self, exercise: str):
        self.exercise = exercise
        self.good: list[str] = []
        self.bad: list[str] = []
        self.missing: list[str] = []
        self.unverifiable: list[str] = []
        self.notes: list[str] = []

    def right(self, message: str) -> None:
        self.good.append("✓ " + message)

    def wrong(self, message: str) -> None:
        self.bad.append("✗ " + message)

    def absent(self, name: str) -> None:
        self.missing.append(name)

    def cannot(self, message: str) -> None:
        self.unverifiable.append("⚠ " + message)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def verdict(self) -> Verdict:
        if self.missing and not (self.good or self.bad or self.unverifiable):
            names = " and ".join(f"`{n}`" for n in self.missing)
            return Verdict(self.exercise, UNANSWERED,
                           (f"not answered yet: set {names} in the cell above, then run this cell again.",))
        lines = self.bad + self.good + self.unverifiable
        if self.missing:
            lines.append("still to answer: " + ", ".join(f"`{n}`" for n in self.missing))
        if self.bad:
            status = INCORRECT
        elif self.missing:
            status = INCOMPLETE
        elif self.unverifiable:
            status = UNCHECKABLE
        else:
            status = CORRECT
        if status in (CORRECT, UNCHECKABLE):
            lines += self.notes
        return Verdict(self.exercise, status, tuple(lines))


def self_check(title: str):
    """Give a check its exercise title, and turn an answer of the wrong form (a string
    where a number is asked, a path that is not a run directory) into a verdict instead
    of an exception."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(Marking(title), *args, **kwargs)
            except (TypeError, ValueError, KeyError, IndexError, AttributeError, OSError) as exc:
                return Verdict(title, INCORRECT, (f"✗ your answer could not be checked ({type(exc).__name__}: {exc}); "
                                                  "see the task above for the form it should take.",))
        run.title = title
        signature = inspect.signature(fn)  # what the notebook calls: without the marking
        run.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
        return run
    return wrap


# --------------------------------------------------------------------------- answer parsing

def is_unset(value) -> bool:
    return value is None or value is Ellipsis


def as_number(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or isinstance(value, str):
        raise TypeError(f"`{name}` should be a number, got {value!r}")
    try:
        array = np.asarray(value, dtype=float)  # numbers, numpy scalars, one-element arrays and tensors
        if array.size != 1:
            raise ValueError
        out = float(array.reshape(()))
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` should be a number, got {type(value).__name__}") from None
    if not math.isfinite(out):
        raise ValueError(f"`{name}` is {out}")
    return out


def as_integer(value, name: str) -> int:
    out = as_number(value, name)
    if out != int(out):
        raise ValueError(f"`{name}` should be a whole number, got {out}")
    return int(out)


def as_names(value, name: str) -> list[str]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    try:
        return sorted({str(v) for v in value})
    except TypeError:
        raise TypeError(f"`{name}` should be a list of names, got {type(value).__name__}") from None


def as_flag(value, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"`{name}` should be True or False, got {value!r}")


def is_close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol


def as_run_dir(value, name: str) -> Path:
    """A run directory given as a path, a string, or a SearchResult (its `run_dir`)."""
    path = Path(getattr(value, "run_dir", value))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"`{name}` = {str(path)!r} is not a run directory (it has no config.json)")
    return path


def read_json(path: Path, name: str) -> dict:
    return json.loads((path / name).read_text())


def is_finished(path: Path) -> bool:
    from emodarts_core.training.rundir import FINISHED

    return (path / FINISHED).is_file()


def mark_choice(m: Marking, key: str, value, name: str) -> None:
    item = CHOICES[key]
    if is_unset(value):
        m.absent(name)
        return
    letter = str(value).strip().strip("()").lower()
    if letter not in item["options"]:
        m.wrong(f"`{name}` should be one of {', '.join(repr(k) for k in item['options'])}, got {value!r}")
    elif letter == item["answer"]:
        m.right(f"({letter}) is right.")
    else:
        m.wrong(f"({letter}): {item['feedback'][letter]}")


#: Settings that change no result on a CPU: two runs that differ only in these are the same run.
RESULT_NEUTRAL = ("progress", "num_workers", "device", "amp", "checkpointing")


def differing(a: dict, b: dict, ignore=()) -> list[str]:
    """The keys whose values differ between two settings sections, less those in `ignore`."""
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))
