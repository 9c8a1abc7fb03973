"""Self-checks for the exercises at the end of notebooks 01-05.

Each notebook ends with an "Exercises" section (in the manner of d2l.ai's sections): per
exercise a task, a cell where the student sets one or more answer variables (``None``
until answered), and a self-check cell that calls one function of this module with the
notebook's objects and the answers. The function returns a :class:`Verdict`, which the
notebook displays: correct, not yet right (with a hint that says what to reconsider),
not answered yet, or cannot be checked here (e.g. notebook 05 on a folder without a
study). A check never raises on an unanswered or malformed answer, so the notebooks still
run headless (papermill, nbval) with every answer left as ``None``; it computes its
reference only once something is answered, so an unanswered check costs nothing.

Every reference answer is computed from the library at check time (the feature settings,
the fold protocol, the genotype parser, the run directories, the statistics), never
written down here, so a change in the library cannot leave a stale number behind. The
worked solutions live outside the student notebooks, in ``notebooks/solutions/``;
``tests/test_exercises.py`` runs them against these checks.

The multiple-choice questions are in :data:`CHOICES`; the notebooks print the same
option texts (a test keeps the two in step).
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CORRECT, INCORRECT, UNANSWERED, INCOMPLETE, UNCHECKABLE = (
    "correct", "incorrect", "unanswered", "incomplete", "uncheckable")

_HEADLINES = {CORRECT: "✅ correct", INCORRECT: "❌ not right yet", UNANSWERED: "… not answered yet",
              INCOMPLETE: "… partly answered", UNCHECKABLE: "⚠ cannot be checked here"}


@dataclass(frozen=True)
class Verdict:
    """What a self-check found: `status` (one of the module's five constants) and the
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


class _Marking:
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


def _check(title: str):
    """Give a check its exercise title, and turn an answer of the wrong form (a string
    where a number is asked, a path that is not a run directory) into a verdict instead
    of an exception."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(_Marking(title), *args, **kwargs)
            except (TypeError, ValueError, KeyError, IndexError, AttributeError, OSError) as exc:
                return Verdict(title, INCORRECT, (f"✗ your answer could not be checked ({type(exc).__name__}: {exc}); "
                                                  "see the task above for the form it should take.",))
        run.title = title
        signature = inspect.signature(fn)  # what the notebook calls: without the marking
        run.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
        return run
    return wrap


# --------------------------------------------------------------------------- answer parsing

def _unset(value) -> bool:
    return value is None or value is Ellipsis


def _number(value, name: str) -> float:
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


def _integer(value, name: str) -> int:
    out = _number(value, name)
    if out != int(out):
        raise ValueError(f"`{name}` should be a whole number, got {out}")
    return int(out)


def _names(value, name: str) -> list[str]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    try:
        return sorted({str(v) for v in value})
    except TypeError:
        raise TypeError(f"`{name}` should be a list of names, got {type(value).__name__}") from None


def _flag(value, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"`{name}` should be True or False, got {value!r}")


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol


def _run_dir(value, name: str) -> Path:
    """A run directory given as a path, a string, or a SearchResult (its `run_dir`)."""
    path = Path(getattr(value, "run_dir", value))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"`{name}` = {str(path)!r} is not a run directory (it has no config.json)")
    return path


def _read(path: Path, name: str) -> dict:
    return json.loads((path / name).read_text())


def _finished(path: Path) -> bool:
    from emodarts_core.training.rundir import FINISHED

    return (path / FINISHED).is_file()


# --------------------------------------------------------------------------- multiple choice

#: The multiple-choice questions: the options the notebooks print, the right letter, and
#: feedback for each letter.
CHOICES: dict[str, dict] = {
    "test_speakers": {
        "question": "Why must a fold's test speakers never reach training (nor the choice of an epoch)?",
        "options": {
            "a": "Because the test split would otherwise be too small to score.",
            "b": "Because a network that has heard a speaker learns that voice: the score would then measure "
                 "how well it recognises emotions of speakers it already knows, not of new speakers, and would "
                 "be too optimistic.",
            "c": "Because the test speakers' recordings are of lower quality.",
        },
        "answer": "b",
        "feedback": {
            "a": "size is not the reason: the protocol holds out whole speakers even when that makes the test "
                 "split smaller than a random split would.",
            "c": "nothing marks the test speakers as different: every speaker is a test speaker in one fold.",
        },
    },
    "epoch_selection": {
        "question": "Why is the epoch chosen by its UA on the search split and not on the test speakers?",
        "options": {
            "a": "Choosing the epoch is part of fitting the model: if the test speakers chose it, the test "
                 "score would be the best of many tries on those speakers and would overstate how well the "
                 "model does on new speakers. The search split holds training speakers only.",
            "b": "Because the search split is larger than the test split, so its UA is less noisy; otherwise "
                 "either would do.",
            "c": "Because the search split contains the test speakers' utterances too.",
        },
        "answer": "a",
        "feedback": {
            "b": "size is not the point: even a large test split must not choose anything, or its score is no "
                 "longer an unbiased estimate (docs/REFERENCE_CODE.md, defect 4).",
            "c": "no: the search split holds training speakers only; the test speakers are in no split but test.",
        },
    },
    "p_value": {
        "question": "What does the paired permutation p-value of emoDARTS vs random architectures say, "
                    "with 5 (fold) pairs?",
        "options": {
            "a": "It is the probability that emoDARTS is better than random architectures.",
            "b": "It is the share of the 2^n sign flips of the paired differences whose mean is at least as far "
                 "from 0 as the observed one, i.e. how surprising the observed difference would be if the two "
                 "models were exchangeable in every pair. With 5 pairs it cannot fall below 2/2^5 = 0.0625, so "
                 "missing p < 0.05 says the study has too few pairs yet, not that the models are equal.",
            "c": "Since p is above 0.05, emoDARTS and random architectures perform the same.",
        },
        "answer": "b",
        "feedback": {
            "a": "a p-value is computed assuming there is no difference; it is not the probability of a "
                 "hypothesis.",
            "c": "a p-value above 0.05 is absence of evidence, not evidence of no difference, all the more "
                 "when the smallest possible p is above 0.05.",
        },
    },
}


def choice_text(key: str) -> str:
    """The question and its options as markdown, as the notebooks show them."""
    item = CHOICES[key]
    return "\n".join([item["question"], ""] + [f"- ({letter}) {text}" for letter, text in item["options"].items()])


def _mark_choice(m: _Marking, key: str, value, name: str) -> None:
    item = CHOICES[key]
    if _unset(value):
        m.absent(name)
        return
    letter = str(value).strip().strip("()").lower()
    if letter not in item["options"]:
        m.wrong(f"`{name}` should be one of {', '.join(repr(k) for k in item['options'])}, got {value!r}")
    elif letter == item["answer"]:
        m.right(f"({letter}) is right.")
    else:
        m.wrong(f"({letter}): {item['feedback'][letter]}")


# =========================================================================== 01 · features

@_check("01.1 · time resolution of the MFCC image")
def check_column_time(m: _Marking, feature_cfg, utterance_s, column_ms, audio_columns) -> Verdict:
    """Milliseconds of audio per column of the 128 x 128 image, and how many columns an
    utterance of `utterance_s` seconds reaches (a column counts when the first of its
    `time_pool` frames is centred on a sample of the utterance).

    Reference: `data_prep.features.FeatureConfig`: the hop is `hop_length` samples
    (`n_samples // (n_frames * time_pool - 1)`), a column pools `time_pool` frames, and
    the audio is cut to `duration_s`."""
    cfg = feature_cfg
    step = cfg.hop_length * cfg.time_pool  # samples between the first frames of two columns
    ref_ms = 1000.0 * step / cfg.sample_rate
    seconds = _number(utterance_s, "utterance_s")
    length = min(int(round(seconds * cfg.sample_rate)), cfg.n_samples)
    ref_columns = min(cfg.n_frames, math.ceil(length / step))
    if _unset(column_ms):
        m.absent("column_ms")
    else:
        given = _number(column_ms, "column_ms")
        naive = 1000.0 * cfg.duration_s / cfg.n_frames
        if _close(given, ref_ms, 0.01):
            m.right(f"a column covers {ref_ms:.3f} ms: hop {cfg.hop_length} samples x {cfg.time_pool} frames "
                    f"at {cfg.sample_rate} Hz.")
        elif _close(given, naive, 0.01) and not _close(naive, ref_ms, 0.01):
            m.wrong(f"{given:g} ms is duration / {cfg.n_frames}; but the hop is a whole number of samples, "
                    f"n_samples // (n_frames * time_pool - 1) = `feature_cfg.hop_length`, and a column pools "
                    f"`time_pool` hops.")
        elif _close(given, ref_ms / cfg.time_pool, 0.01):
            m.wrong(f"{given:g} ms is one hop; a column max-pools `time_pool` = {cfg.time_pool} frames.")
        else:
            m.wrong(f"{given:g} ms is not it: how many samples lie between two columns "
                    "(`feature_cfg.hop_length`, `feature_cfg.time_pool`), and how long is that at the sample rate?")
    if _unset(audio_columns):
        m.absent("audio_columns")
    else:
        given = _integer(audio_columns, "audio_columns")
        if given == ref_columns:
            m.right(f"{ref_columns} of {cfg.n_frames} columns hold the {seconds:g} s utterance; "
                    f"the other {cfg.n_frames - ref_columns} are zero padding.")
        elif abs(given - ref_columns) == 1:
            m.wrong(f"off by one: column k starts at sample k x {step}; count the columns whose start lies "
                    f"before the utterance's last sample (a ceiling, not a floor).")
        elif seconds > cfg.duration_s and given != cfg.n_frames:
            m.wrong(f"the utterance is longer than `duration_s` = {cfg.duration_s:g} s: what happens to the "
                    "audio beyond it?")
        else:
            m.wrong(f"{given} columns is not it: the utterance has {length} samples (after cutting to "
                    f"{cfg.duration_s:g} s); how many column steps of {step} samples start inside it?")
    m.note(f"Every utterance becomes {cfg.n_frames} columns: a shorter one is zero-padded to "
           f"{cfg.duration_s:g} s, a longer one is cut (paper section 4.A).")
    return m.verdict()


@_check("01.2 · the test speakers of a fold")
def check_fold_test_speakers(m: _Marking, store, k, seed, test_speakers, why) -> Verdict:
    """The held-out speakers of fold `k` (as `data_prep.folds.make_folds` makes them), and
    why they never reach training (multiple choice `test_speakers`)."""
    from data_prep.folds import make_folds

    if _unset(test_speakers):
        m.absent("test_speakers")
    else:
        folds = make_folds(store, seed=seed)
        k = _integer(k, "k")
        if not 1 <= k <= len(folds):
            m.wrong(f"fold {k} does not exist for {store.corpus}: valid folds are 1..{len(folds)}.")
        else:
            ref = sorted(folds[k - 1].test_speakers)
            given = _names(test_speakers, "test_speakers")
            other = [f.index for f in folds if sorted(f.test_speakers) == given]
            if given == ref:
                train = sorted({s for s in store.speakers if s not in set(ref)})
                m.right(f"fold {k} holds out {', '.join(ref)}; the other {len(train)} speakers train and select.")
            elif other:
                m.wrong(f"those are the test speakers of fold {other[0]}, not of fold {k}.")
            else:
                m.wrong(f"not the test speakers of fold {k}: look at `folds[k - 1]` or the fold table above.")
    _mark_choice(m, "test_speakers", why, "why")
    return m.verdict()


@_check("01.3 · a classifier that never listens")
def check_majority_baseline(m: _Marking, fold_data, wa_percent, ua_percent) -> Verdict:
    """WA and UA (%) on the fold's test split of a classifier that always answers the most
    frequent class of the training speakers' utterances (search + training splits; a tie
    goes to the first class in `fold_data.classes`). Reference: `training.metrics`."""
    from emodarts_core.training.metrics import unweighted_accuracy, weighted_accuracy

    if _unset(wa_percent):
        m.absent("wa_percent")
    if _unset(ua_percent):
        m.absent("ua_percent")
    if _unset(wa_percent) and _unset(ua_percent):
        return m.verdict()
    classes = list(fold_data.classes)
    seen = np.concatenate([np.asarray(fold_data.search.y), np.asarray(fold_data.train.y)])
    majority = int(np.bincount(seen, minlength=len(classes)).argmax())
    test_y = np.asarray(fold_data.test.y)
    always = np.full(len(test_y), majority)
    ref = {"wa_percent": 100.0 * weighted_accuracy(test_y, always),
           "ua_percent": 100.0 * unweighted_accuracy(test_y, always)}
    for name, value in (("wa_percent", wa_percent), ("ua_percent", ua_percent)):
        if _unset(value):
            continue
        given = _number(value, name)
        if _close(given, ref[name], 0.05):
            m.right(f"{name[:2].upper()} = {ref[name]:.2f} %.")
        elif _close(100.0 * given, ref[name], 0.05):
            m.wrong(f"`{name}` looks like a fraction ({given:g}); give it in percent.")
        else:
            m.wrong(f"`{name}` = {given:g} % is not it: the classifier always answers "
                    f"{classes[majority]!r} (the most frequent class among the training speakers).")
    m.note(f"UA = 100 / {len(np.unique(test_y))} classes whatever the class balance, while WA rewards "
           "answering the frequent class: that is why the paper reports UA beside WA.")
    return m.verdict()


# =========================================================================== 02 · the mixed op

@_check("02.1 · `none` wins the softmax, yet is never parsed")
def check_none_never_parsed(m: _Marking, alpha, target: str = "sep_conv_5x5") -> Verdict:
    """An α row whose softmax gives `none` the largest weight while the parsed edge (paper
    eq. 3, `space.genotypes.parse`) is `target`."""
    import torch
    import torch.nn.functional as F

    from emodarts_core.space.genotypes import parse
    from emodarts_core.space.search_space import CNN_PRIMITIVES

    if _unset(alpha):
        m.absent("alpha")
        return m.verdict()
    values = np.asarray(alpha, dtype=np.float64).ravel()
    if values.size != len(CNN_PRIMITIVES) or not np.isfinite(values).all():
        m.wrong(f"`alpha` needs {len(CNN_PRIMITIVES)} finite numbers, one per op in CNN_PRIMITIVES order.")
        return m.verdict()
    weights = F.softmax(torch.as_tensor(values), dim=-1).numpy()
    uniform = np.full(len(CNN_PRIMITIVES), 1.0 / len(CNN_PRIMITIVES))
    (edge, _), _ = parse(np.stack([weights, uniform]), CNN_PRIMITIVES, nodes=1)  # a 1-node cell: row 0 = this edge
    parsed = edge[0]
    top = int(np.argmax(weights))
    shown = ", ".join(f"{p} {w:.3f}" for p, w in zip(CNN_PRIMITIVES, weights))
    none_wins = CNN_PRIMITIVES[top] == "none" and np.sum(weights == weights[top]) == 1
    if none_wins:
        m.right(f"`none` has the largest weight ({weights[top]:.3f}).")
    else:
        m.wrong(f"the largest weight is {CNN_PRIMITIVES[top]!r} ({weights[top]:.3f}), not `none` alone.")
    if parsed == target:
        m.right(f"the parsed edge is {parsed!r}.")
    else:
        m.wrong(f"the parsed edge is {parsed!r}, not {target!r}: parsing skips `none` and takes the strongest "
                "of the remaining ops.")
    m.note(f"softmax weights: {shown}")
    m.note("DARTS never keeps `none` (eq. 3 takes the argmax over the other ops): a dominant `none` only "
           "lowers the edge's strength when a node chooses its two best edges.")
    return m.verdict()


@_check("02.2 · uniform α is the plain mean of the ops")
def check_uniform_mixture(m: _Marking, mixed, x, uniform_output, mean_of_ops) -> Verdict:
    """`mixed(x, uniform weights)` and the mean of every candidate op's output (`none`
    included) on `x`; they are equal, as eq. 2 says for softmax(α) = 1/|O|."""
    import torch

    if _unset(uniform_output):
        m.absent("uniform_output")
    if _unset(mean_of_ops):
        m.absent("mean_of_ops")
    if _unset(uniform_output) and _unset(mean_of_ops):
        return m.verdict()
    state = copy.deepcopy(mixed.state_dict()) if mixed.training else None  # keep BatchNorm statistics as they were
    with torch.no_grad():
        outputs = {name: op(x) for name, op in mixed.ops.items()}
        n = len(outputs)
        ref_mean = torch.stack(list(outputs.values())).mean(dim=0)
        ref_mixed = mixed(x, torch.full((n,), 1.0 / n))
        without_none = torch.stack([o for name, o in outputs.items() if name != "none"]).mean(dim=0)
    if state is not None:
        mixed.load_state_dict(state)
    hint = ("recompute the ops' outputs now, under torch.no_grad(): the fast-form comparison above ran `mixed` "
            "in training mode, which moved its BatchNorm statistics, so `op_outputs` from the top of the "
            "notebook are stale.")
    for name, value, ref in (("uniform_output", uniform_output, ref_mixed), ("mean_of_ops", mean_of_ops, ref_mean)):
        if _unset(value):
            continue
        given = torch.as_tensor(value, dtype=ref.dtype)
        if given.shape != ref.shape:
            m.wrong(f"`{name}` has shape {tuple(given.shape)}; the edge's output has shape {tuple(ref.shape)}.")
        elif torch.allclose(given, ref, rtol=1e-5, atol=1e-6):
            m.right(f"`{name}` is right.")
        elif name == "mean_of_ops" and torch.allclose(given, without_none, rtol=1e-5, atol=1e-6):
            m.wrong(f"`mean_of_ops` averages the {n - 1} ops without `none`; `none` is one of the {n} candidates: "
                    "its zeros are part of the mean, as its α is part of the softmax.")
        else:
            m.wrong(f"`{name}` differs from the reference by up to {(given - ref).abs().max():.2e}; {hint}")
    m.note(f"largest |mixed - mean| = {(ref_mixed - ref_mean).abs().max():.1e} (float rounding): with "
           f"softmax(α) = 1/{n} eq. 2 is the plain average of all {n} candidates, `none`'s zeros included.")
    return m.verdict()


@_check("02.3 · the memory of a bigger cell")
def check_cell_memory(m: _Marking, cnn_mem, nodes, edges, mib) -> Verdict:
    """Mixed edges of a search cell with `nodes` nodes (`space.reference.n_edges`), and the
    MiB its edges keep for the backward pass at the size of the memory table `cnn_mem`
    (each edge runs every CNN candidate)."""
    from emodarts_core.space.reference import n_edges

    nodes = _integer(nodes, "nodes")
    ref_edges = n_edges(nodes)
    per_edge = float(cnn_mem["activation MiB"].sum())
    if _unset(edges):
        m.absent("edges")
    else:
        given = _integer(edges, "edges")
        if given == ref_edges:
            m.right(f"{ref_edges} edges: node j reads all 2 + j earlier states (2 + 3 + ... + {nodes + 1}).")
        elif given == 2 * nodes:
            m.wrong(f"{given} is the number of edges a *parsed* cell keeps (2 per node); during the search every "
                    "node is connected to every earlier state.")
        else:
            m.wrong(f"{given} edges is not it: node j of a cell reads the two cell inputs and the j earlier nodes.")
    if _unset(mib):
        m.absent("mib")
    else:
        given = _number(mib, "mib")
        if _close(given, ref_edges * per_edge, 0.01 * ref_edges * per_edge):
            m.right(f"about {ref_edges * per_edge:.4g} MiB: {ref_edges} edges x {per_edge:.4g} MiB per edge.")
        elif _close(given, 2 * nodes * per_edge, 0.01 * 2 * nodes * per_edge):
            m.wrong("that counts the 2 parsed edges per node; the supernet runs every edge.")
        else:
            m.wrong(f"{given:g} MiB is not it: one edge keeps the sum of the table's 'activation MiB' column, "
                    "and the cell has `edges` of them.")
    m.note("The edges grow quadratically with the nodes, and every edge holds all candidates at once: "
           "this is why the paper ran out of GPU memory with deeper cells (section 6.1).")
    return m.verdict()


# =========================================================================== 03 · search

@_check("03.1 · how many architecture weights")
def check_alpha_count(m: _Marking, net_cfg, n_alpha) -> Verdict:
    """The number of α values of the supernet for `net_cfg` (`SearchNetwork`'s `alpha_*`)."""
    from emodarts_core.config import reduction_positions
    from emodarts_core.space.reference import n_edges
    from emodarts_core.space.search_network import SearchNetwork

    if _unset(n_alpha):
        m.absent("n_alpha")
        return m.verdict()
    given = _integer(n_alpha, "n_alpha")
    import torch

    with torch.random.fork_rng():  # building the supernet draws random numbers: leave the notebook's RNG alone
        model = SearchNetwork(net_cfg)
    shapes = {name: tuple(p.shape) for name, p in model.named_alphas() if name.startswith("alpha_")}
    ref = sum(int(np.prod(s)) for s in shapes.values())
    breakdown = ", ".join(f"{name} {r} x {c}" for name, (r, c) in shapes.items())
    n_reduce = len(reduction_positions(net_cfg.cnn_cells))
    per_cell = ((net_cfg.cnn_cells - n_reduce) * int(np.prod(shapes["alpha_normal"]))
                + n_reduce * int(np.prod(shapes["alpha_reduce"]))
                + net_cfg.seq_cells * int(np.prod(shapes.get("alpha_seq", (0, 0)))))
    if given == ref:
        m.right(f"{ref} α values.")
    elif given == per_cell and per_cell != ref:
        m.wrong(f"{given} counts an α per cell; all cells of one kind share theirs (one alpha_normal, one "
                "alpha_reduce, one alpha_seq).")
    else:
        m.wrong(f"{given} is not it: each cell kind has one α matrix, one row per edge "
                f"({n_edges(net_cfg.nodes)} for {net_cfg.nodes} CNN nodes) and one column per candidate op "
                f"(the SeqNN's columns depend on the scope {net_cfg.scope!r}).")
    m.note(f"{breakdown}: the whole architecture is these few numbers, against "
           f"{sum(p.numel() for p in model.weights()):,} network weights.")
    return m.verdict()


_IGNORED = ("progress", "num_workers", "device", "amp", "checkpointing")  # change no result on CPU


def _differing(a: dict, b: dict, ignore=()) -> list[str]:
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))


@_check("03.2 · searching the RNN-only scope")
def check_rnn_only_search(m: _Marking, main_run_dir, rnn_run_dir, rnn_seq_ops, rnn_collapsed) -> Verdict:
    """A finished search of the `rnn_only` scope (paper Table 6) that differs from the
    notebook's search (`main_run_dir`) only in its scope, the SeqNN ops its genotype chose,
    and whether they are all skip_connect (`darts.search.seq_collapsed`)."""
    from emodarts_core.darts.search import GENOTYPE, seq_collapsed
    from emodarts_core.space import genotypes
    from emodarts_core.space.search_space import seq_primitives

    if _unset(rnn_run_dir):
        m.absent("rnn_run_dir")
        if _unset(rnn_seq_ops):
            m.absent("rnn_seq_ops")
        if _unset(rnn_collapsed):
            m.absent("rnn_collapsed")
        return m.verdict()
    path = _run_dir(rnn_run_dir, "rnn_run_dir")
    config = _read(path, "config.json")
    scope = config.get("network", {}).get("scope")
    if config.get("kind") != "search" or not _finished(path):
        m.wrong(f"{path} is not a finished search run (run_search writes FINISHED at the end).")
        return m.verdict()
    if scope != "rnn_only":
        m.wrong(f"that search used scope {scope!r}, not 'rnn_only'.")
        return m.verdict()
    main = None if _unset(main_run_dir) else _run_dir(main_run_dir, "run_path")
    if main is not None and main.resolve() != path.resolve():
        base = _read(main, "config.json")
        changed = (["network." + k for k in _differing(base["network"], config["network"], ("scope",))]
                   + ["search." + k for k in _differing(base["search"], config["search"], _IGNORED)])
        if base["data"].get("test_speakers") != config["data"].get("test_speakers") or \
                base["data"].get("splits", {}).get("search", {}).get("ids") != \
                config["data"].get("splits", {}).get("search", {}).get("ids"):
            changed.append("data (fold or seed)")
        if changed:
            m.wrong(f"besides the scope, the search differs from the notebook's in {', '.join(changed)}; change "
                    "only `scope`, so that the comparison says what the scope does.")
        else:
            m.right("only the scope differs from the notebook's search.")
    genotype = genotypes.load(path / GENOTYPE)
    ref_ops = sorted({op for op, _ in genotype.seq})
    allowed = [p for p in seq_primitives("rnn_only") if p != "none"]
    if _unset(rnn_seq_ops):
        m.absent("rnn_seq_ops")
    elif _names(rnn_seq_ops, "rnn_seq_ops") == ref_ops:
        m.right(f"the SeqNN cell chose {', '.join(ref_ops)}.")
    else:
        m.wrong(f"not the ops in {path / GENOTYPE}: read `genotype.seq` (a list of (op, input) edges).")
    if _unset(rnn_collapsed):
        m.absent("rnn_collapsed")
    elif _flag(rnn_collapsed, "rnn_collapsed") == seq_collapsed(genotype):
        m.right("collapsed to skip_connect: " + ("yes." if seq_collapsed(genotype) else "no."))
    else:
        m.wrong("look again: the SeqNN cell has collapsed when every chosen op is skip_connect.")
    m.note(f"In rnn_only the SeqNN can only choose among {', '.join(allowed)} (and `none`, which is never "
           "parsed): no LSTM and no attention can appear, whatever the data; the CNN cells search the same "
           "ops as before.")
    if main is not None and (main / GENOTYPE).is_file():
        main_ops = sorted({op for op, _ in genotypes.load(main / GENOTYPE).seq})
        m.note(f"The notebook's search ({_read(main, 'config.json')['network']['scope']}) chose "
               f"{', '.join(main_ops) or 'no SeqNN ops'}.")
    return m.verdict()


_REMEDY_KEYS = ("collapse_remedy", "darts_minus_beta", "skip_cap", "skip_stop", "beta_decay_weight")


@_check("03.3 · make the SeqNN collapse, then fix it")
def check_collapse_and_fix(m: _Marking, collapsed_dir, fixed_dir) -> Verdict:
    """Two finished searches that differ only in their collapse remedy: the first (plain
    DARTS, `collapse_remedy="none"`) ends with an all-skip_connect SeqNN cell, the second
    (a remedy of `darts.collapse`) does not. The first must not be the notebook's demo
    configuration (`collapse.DEMO_NETWORK`, `DEMO_SEARCH` on `demo_fold()`)."""
    from emodarts_core.config import SearchConfig, preset, to_dict
    from emodarts_core.darts.collapse import DEMO_NETWORK, DEMO_SEARCH, REMEDIES, demo_fold
    from emodarts_core.darts.search import GENOTYPE, seq_collapsed
    from emodarts_core.space import genotypes
    from emodarts_core.training.loop import describe_fold

    if _unset(collapsed_dir):
        m.absent("collapsed_dir")
    if _unset(fixed_dir):
        m.absent("fixed_dir")
    if _unset(collapsed_dir) or _unset(fixed_dir):
        return m.verdict()
    runs = {}
    for name, value in (("collapsed_dir", collapsed_dir), ("fixed_dir", fixed_dir)):
        path = _run_dir(value, name)
        config = _read(path, "config.json")
        if config.get("kind") != "search" or not _finished(path):
            m.wrong(f"`{name}` ({path}) is not a finished search run.")
            return m.verdict()
        if not config["network"].get("seq_cells"):
            m.wrong(f"`{name}` searched no SeqNN cell (seq_cells = 0): nothing can collapse there.")
            return m.verdict()
        runs[name] = (path, config, genotypes.load(path / GENOTYPE))
    (_, plain, plain_genotype), (_, fixed, fixed_genotype) = runs["collapsed_dir"], runs["fixed_dir"]
    if plain["search"]["collapse_remedy"] != "none":
        m.wrong(f"`collapsed_dir` used the remedy {plain['search']['collapse_remedy']!r}; make plain DARTS "
                "(collapse_remedy='none') collapse.")
    elif not seq_collapsed(plain_genotype):
        m.wrong(f"`collapsed_dir` did not collapse: its SeqNN cell chose {sorted({o for o, _ in plain_genotype.seq})}. "
                "More SeqNN cells/nodes (the paper: more than 3), a larger alpha_lr or more epochs push "
                "skip_connect ahead.")
    else:
        m.right(f"plain DARTS collapsed: every SeqNN edge is skip_connect ({len(plain_genotype.seq)} edges).")
    demo = (to_dict(preset("smoke", **DEMO_NETWORK)), to_dict(SearchConfig(**DEMO_SEARCH)))
    same_data = plain["data"].get("splits") == describe_fold(demo_fold())["splits"]
    if plain["network"] == demo[0] and not _differing(plain["search"], demo[1], _IGNORED) and same_data:
        m.wrong("that is the notebook's demo configuration; change at least one setting of DEMO_NETWORK or "
                "DEMO_SEARCH (seed, epochs, alpha_lr, scope, nodes, ...) and make that collapse.")
    remedy = fixed["search"]["collapse_remedy"]
    if remedy not in REMEDIES or remedy == "none":
        m.wrong("`fixed_dir` used no remedy: set collapse_remedy to one of "
                f"{', '.join(r for r in REMEDIES if r != 'none')}.")
    elif seq_collapsed(fixed_genotype):
        m.wrong(f"with {remedy!r} the SeqNN cell still collapsed; try another remedy or its setting.")
    else:
        m.right(f"with {remedy!r} the SeqNN cell chose {', '.join(o for o, _ in fixed_genotype.seq)}.")
    changed = (["network." + k for k in _differing(plain["network"], fixed["network"])]
               + ["search." + k for k in _differing(plain["search"], fixed["search"], _IGNORED + _REMEDY_KEYS)])
    if plain["data"].get("splits") != fixed["data"].get("splits"):
        changed.append("data")
    if changed:
        m.wrong(f"the two searches differ in more than the remedy ({', '.join(changed)}): keep everything else "
                "equal, so that the remedy is what made the difference.")
    m.note("Parameter-free skip_connect passes the gradient most easily early on, so plain DARTS ranks it first "
           "(paper section 6.2); DARTS- gives every edge that residual path outside the softmax, β-DARTS "
           "keeps the softmax from saturating, the P-DARTS cap edits the parsed cell.")
    return m.verdict()


# =========================================================================== 04 · retraining

@_check("04.1 · the searched genotype against a baseline")
def check_baseline_comparison(m: _Marking, run_path, baseline_dir, ua_difference) -> Verdict:
    """A finished baseline retraining on the same fold with the same training settings as
    the genotype's run `run_path`, and the test UA difference genotype - baseline in
    points (read from both runs' result.json)."""
    from emodarts_core.space.baselines import BASELINES

    if _unset(baseline_dir):
        m.absent("baseline_dir")
    if _unset(ua_difference):
        m.absent("ua_difference")
    if _unset(baseline_dir):
        return m.verdict()
    ours = _run_dir(run_path, "run_path")
    ours_config = _read(ours, "config.json")
    if "genotype" not in ours_config.get("model", {}):
        m.cannot(f"this notebook trained a baseline ({ours_config.get('model')}), not a searched genotype: run it "
                 "with model='genotype' to compare the two.")
        return m.verdict()
    path = _run_dir(baseline_dir, "baseline_dir")
    config = _read(path, "config.json")
    baseline = config.get("model", {}).get("baseline")
    if config.get("kind") != "retrain" or baseline not in BASELINES:
        m.wrong(f"{path} is not a baseline retraining (model {config.get('model')!r}); train one of "
                f"{', '.join(BASELINES)} with run_retrain.")
        return m.verdict()
    if not _finished(path):
        m.wrong(f"the baseline run in {path} has not finished.")
        return m.verdict()
    if config["data"].get("test_speakers") != ours_config["data"].get("test_speakers"):
        m.wrong(f"the baseline was tested on {config['data'].get('test_speakers')}, the genotype on "
                f"{ours_config['data'].get('test_speakers')}: compare on the same fold.")
    changed = _differing(ours_config["train"], config["train"], _IGNORED)
    if changed:
        m.wrong(f"the two trainings differ in {', '.join(changed)}: train the baseline with the same `train_cfg`.")
    else:
        m.right(f"{baseline} trained like the genotype, on the same test speakers.")
    ref = 100.0 * (_read(ours, "result.json")["test_ua"] - _read(path, "result.json")["test_ua"])
    if not _unset(ua_difference):
        given = _number(ua_difference, "ua_difference")
        if _close(given, ref, 0.01):
            m.right(f"genotype - {baseline} = {ref:+.2f} UA points.")
        elif _close(100.0 * given, ref, 0.01):
            m.wrong("`ua_difference` looks like a difference of fractions; give it in UA points (percent).")
        elif _close(-given, ref, 0.01):
            m.wrong("the sign is reversed: the difference asked for is genotype minus baseline.")
        else:
            m.wrong(f"{given:g} is not it: subtract the baseline's test UA from the genotype's (both in %; "
                    "`result.test_ua` and the baseline's result).")
    m.note("One fold and one seed: a difference of a few points is within the spread between folds; "
           "notebook 05 pairs the models over folds and seeds before it calls a difference real.")
    return m.verdict()


@_check("04.2 · which epoch, chosen by whom")
def check_epoch_selection(m: _Marking, run_path, fold_data, selected_epoch, selection_speakers, why) -> Verdict:
    """The epoch whose weights were kept (result.json's `best_epoch`, the first epoch with
    the best UA on the selection split), the speakers of that split (config.json's
    `protocol.select`), and why it is not the test speakers (multiple choice)."""
    path = _run_dir(run_path, "run_path")
    result = _read(path, "result.json")
    select = _read(path, "config.json")["protocol"]["select"]
    ref_speakers = [] if select is None else sorted(select["speakers"])
    test = sorted(fold_data.fold.test_speakers)
    if _unset(selected_epoch):
        m.absent("selected_epoch")
    else:
        given = _integer(selected_epoch, "selected_epoch")
        from emodarts_core.training.rundir import RunDir

        history = RunDir(path).read_epochs()
        best_train = 1 + int(np.argmax([r["train_acc"] for r in history])) if history else None
        if given == result["best_epoch"]:
            how = ("the last epoch (protocol 'full' selects nothing)" if select is None
                   else "the first epoch with the highest `val_ua`")
            m.right(f"epoch {given}: {how}.")
        elif given == best_train and select is not None:
            m.wrong("that is the epoch with the best *training* accuracy; the kept epoch is the one with the best "
                    "`val_ua` on the selection split.")
        else:
            m.wrong(f"epoch {given} is not the one kept: look for the highest `val_ua` in `history` "
                    "(the first, if several tie).")
    if _unset(selection_speakers):
        m.absent("selection_speakers")
    else:
        given = _names(selection_speakers, "selection_speakers")
        if given == ref_speakers:
            m.right(f"selected on {len(ref_speakers)} training speakers ({', '.join(ref_speakers) or 'none'}); "
                    f"none of them is a test speaker ({', '.join(test)}).")
        elif set(given) & set(test):
            m.wrong(f"{sorted(set(given) & set(test))} are test speakers: they reach neither training nor selection.")
        else:
            m.wrong("not the selection split's speakers: under protocol 'paper' the epoch is chosen on the fold's "
                    "search split (`fold_data.search.speakers`).")
    _mark_choice(m, "epoch_selection", why, "why")
    return m.verdict()


@_check("04.3 · UA and WA from the confusion matrix")
def check_confusion_scores(m: _Marking, result, ua_percent, wa_percent) -> Verdict:
    """Test UA (mean per-class recall) and WA (accuracy) in percent, computed from
    `result.confusion` (rows: true class). Reference: `study.stats.unweighted_accuracy_from_confusion`
    and the run's own `test_ua` / `test_wa`."""
    from emodarts_core.study.stats import unweighted_accuracy_from_confusion

    conf = np.asarray(result.confusion, dtype=float)
    ref = {"ua_percent": 100.0 * unweighted_accuracy_from_confusion(conf),
           "wa_percent": 100.0 * float(np.trace(conf) / conf.sum())}
    for name, value in (("ua_percent", ua_percent), ("wa_percent", wa_percent)):
        if _unset(value):
            m.absent(name)
            continue
        given = _number(value, name)
        other = ref["wa_percent" if name == "ua_percent" else "ua_percent"]
        if _close(given, ref[name], 0.01):
            m.right(f"{name[:2].upper()} = {ref[name]:.2f} %.")
        elif _close(100.0 * given, ref[name], 0.01):
            m.wrong(f"`{name}` looks like a fraction ({given:g}); give it in percent.")
        elif _close(given, other, 0.01) and not _close(other, ref[name], 0.01):
            m.wrong(f"`{name}` is the other metric: UA averages each true class's recall (diagonal / row sum), "
                    "WA divides the whole diagonal by all utterances.")
        else:
            m.wrong(f"`{name}` = {given:g} % is not it (rows of the confusion matrix are the true classes).")
    m.note(f"the run's own scores: test UA {100 * result.test_ua:.2f} %, WA {100 * result.test_wa:.2f} %.")
    return m.verdict()


# =========================================================================== 05 · statistics

@_check("05.1 · a permutation test by hand")
def check_permutation_p(m: _Marking, differences, p_by_hand) -> Verdict:
    """The two-sided sign-flip permutation p of the paired `differences` (reference:
    `study.stats.paired_permutation_p`, exact for up to 20 pairs)."""
    from emodarts_core.study import stats

    if _unset(p_by_hand):
        m.absent("p_by_hand")
        return m.verdict()
    d = np.asarray(differences, dtype=float).ravel()
    ref = stats.paired_permutation_p(d, np.zeros_like(d))
    smallest = stats.paired_permutation_p(np.ones_like(d), np.zeros_like(d))
    given = _number(p_by_hand, "p_by_hand")
    if _close(given, ref, 1e-9):
        m.right(f"p = {ref:g}: {round(ref * 2 ** d.size)} of the {2 ** d.size} sign flips are at least as extreme.")
    elif _close(given, ref / 2, 1e-9):
        m.wrong("that is one-sided; count the sign flips whose mean is at least as far from 0 on either side "
                "(|mean| >= |observed mean|).")
    else:
        m.wrong(f"p = {given:g} is not it: flip the sign of each difference in every one of the 2^{d.size} "
                "ways, and count the flips whose |mean| is at least the observed |mean| (the observed signs "
                "count too).")
    m.note(f"with {d.size} pairs the smallest possible p is 2 / 2^{d.size} = {smallest:g} "
           "(every difference of the same sign).")
    return m.verdict()


@_check("05.2 · how many seeds until p < 0.05 is possible")
def check_seeds_needed(m: _Marking, folds, seeds_needed, level: float = 0.05) -> Verdict:
    """The fewest seeds per fold for which a paired permutation test over folds x seeds
    cells can reach p < `level` at all (every difference of one sign)."""
    from emodarts_core.study import stats

    if _unset(seeds_needed):
        m.absent("seeds_needed")
        return m.verdict()
    folds = _integer(folds, "folds")

    def smallest_p(seeds: int) -> float:
        n = folds * seeds
        return stats.paired_permutation_p(np.ones(n), np.zeros(n))

    ref = next(s for s in range(1, 64) if smallest_p(s) < level)
    given = _integer(seeds_needed, "seeds_needed")
    if given == ref:
        m.right(f"{ref} seed(s): {folds * ref} pairs, smallest p = {smallest_p(ref):g}.")
    elif given > ref:
        m.wrong(f"{given} would do, but fewer suffice: compute the smallest p for {folds} x s pairs for s = 1, 2, ...")
    else:
        m.wrong(f"with {given} seed(s) the smallest possible p is {smallest_p(given):g}, not below {level}.")
    m.note(f"with {folds} pairs (one seed) no test can reach {level}: the smallest p is {smallest_p(1):g}. "
           "Power comes from the number of paired cells.")
    return m.verdict()


@_check("05.3 · reading the paired p of searched vs random architectures")
def check_study_p(m: _Marking, study, p_random, meaning, protocol: str = "full") -> Verdict:
    """The permutation p (`p_perm`) of emoDARTS vs the random architectures under
    `protocol`, from `study.results.compare_study(study)`, and what it means (multiple
    choice `p_value`)."""
    if _unset(p_random):
        m.absent("p_random")
    elif study is None or len(study) == 0:
        m.cannot("this results folder holds no study: run the notebook with results_dir='results/emodb' "
                 "(or a sweep's results) to check `p_random`.")
    else:
        from emodarts_core.study import results

        comparisons = results.compare_study(study)
        rows = comparisons[(comparisons["model"] == "random") & (comparisons["protocol"] == protocol)]
        if rows.empty:
            m.cannot(f"no comparison with random architectures under protocol {protocol!r} in this study "
                     f"(protocols: {', '.join(sorted(set(comparisons['protocol']))) or 'none'}).")
        else:
            main = rows[rows["reference_scope"] == "emodarts"]
            row = (main if not main.empty else rows).iloc[0]
            given = _number(p_random, "p_random")
            if _close(given, row["p_perm"], 1e-3):
                m.right(f"p_perm = {row['p_perm']:g} over n = {row['n']} (fold, seed) pairs; emoDARTS - random = "
                        f"{row['mean_diff']:+.2f} points [{row['diff_low']:.2f}, {row['diff_high']:.2f}].")
            elif _close(given, row["p_boot"], 1e-3):
                m.wrong("that is the bootstrap p (`p_boot`); the question asks for the permutation p (`p_perm`).")
            elif _close(given, row["p_perm_holm"], 1e-3):
                m.wrong("that is the Holm-adjusted p; the question asks for the plain permutation p (`p_perm`).")
            else:
                m.wrong(f"p = {given:g} is not it: take `p_perm` of the row with model 'random' and protocol "
                        f"{protocol!r} of the comparison table.")
    _mark_choice(m, "p_value", meaning, "meaning")
    return m.verdict()


#: The checks of each notebook, in the order of its exercises.
CHECKS = {
    "01_features": (check_column_time, check_fold_test_speakers, check_majority_baseline),
    "02_mixed_op_relaxation": (check_none_never_parsed, check_uniform_mixture, check_cell_memory),
    "03_search": (check_alpha_count, check_rnn_only_search, check_collapse_and_fix),
    "04_retrain": (check_baseline_comparison, check_epoch_selection, check_confusion_scores),
    "05_paper_figures": (check_permutation_p, check_seeds_needed, check_study_p),
}

__all__ = ["Verdict", "CHOICES", "CHECKS", "choice_text", "CORRECT", "INCORRECT", "UNANSWERED", "INCOMPLETE",
           "UNCHECKABLE", *(fn.__name__ for fns in CHECKS.values() for fn in fns)]
