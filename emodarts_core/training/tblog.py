"""TensorBoard event files in a run directory (`<run>/tb/`), as pt.darts writes them.

pt.darts, the DARTS code the paper's authors forked, logs its runs to TensorBoard, so
users coming from it expect `tensorboard --logdir runs/` to work. The JSON/CSV records of
`training.rundir.RunDir` stay the source of truth: nothing in this project reads the
event files back. `RunLog` writes, at the moment a loop appends an epoch record
(`RunDir.append_epoch`), with the step = the record's 1-based "epoch":

- the record's scalars (`SCALARS`): losses (train, val, and the α loss of the search),
  WA (accuracy) and UA, learning rate, drop-path, selected epoch, epoch seconds, and the
  α share on parameter-free ops per cell type (the early sign of the collapse of paper
  section VI-B), the α updates taken so far, and per cell type whether the α moved
  (`CELL_SCALARS`: lift over uniform, normalised entropy, margin of the two strongest ops,
  agreement of the genotype with the previous epoch's and the initial α's;
  `emodarts_core.darts.diagnostics`);
- search: softmax(α) per edge (rows) and candidate op (columns) as one image per cell type
  (`alpha/normal`, `alpha/reduce`, `alpha/seq`: CNN normal, CNN reduction, SeqNN),
  coloured like the notebooks' heatmap (`plots.plot_alpha_heatmap`): white is the
  uniform weight 1/K, red above it, blue below, scaled to that image's largest deviation;
  the op order of the columns is the text `alpha/legend` (step 0);
- the genotype as text in pt.darts' `Genotype(...)` form (`space.genotypes.to_text`):
  every epoch of a search; once (step 0) for retraining, or the baseline's name;
- retraining: the test UA and WA (`test/UA`, `test/WA`) at the last epoch's step.

Resume. A resumed run continues from its checkpoint, and its metric files are rewritten
from the checkpoint's history (`RunDir.rewrite_epochs`). The event files are rewritten
the same way: a writer opens a new event file, logs the checkpoint's history into it
(`begin_search` / `begin_retrain`), flushes it, and only then deletes the event files
that were in `tb/` before. So after a resume `tb/` holds one event file in which each
epoch the checkpoint holds appears exactly once, however the earlier run ended (an epoch
logged after its checkpoint, one lost with the killed process, or none logged because
TensorBoard was off). Until the older files are gone (a kill in between, or a
TensorBoard server that read them already), TensorBoard's own mechanism for restarts
hides their scalars and images: the writer opens with `SummaryWriter(purge_step=0)`,
whose SessionLog.START event makes TensorBoard drop every earlier event of step 0 or
more ("any events whose global_step larger or equal to T will be purged and hidden from
TensorBoard", torch.utils.tensorboard.SummaryWriter), and TensorBoard's data server
drops a tag's values from a step on when that step is written again.

Each epoch is flushed to disk, so a killed run loses at most the epoch being logged. The
event files are append-only logs, not results: `.gitignore` keeps them out of commits.

Switch: `SearchConfig.tensorboard` / `TrainConfig.tensorboard` (default True). Without
the `tensorboard` package the loops run as before, log nothing, and warn once.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from emodarts_core.space import genotypes
from emodarts_core.training.rundir import make_real_subdir

TB_DIR = "tb"
#: (record key, TensorBoard tag) of the scalars logged from an epoch record, where present
#: and not None. WA is the accuracy (emodarts_core.training.metrics).
SCALARS = (("train_loss", "loss/train"), ("val_loss", "loss/val"), ("alpha_loss", "loss/alpha"),
           ("train_acc", "WA/train"), ("val_acc", "WA/val"), ("val_ua", "UA/val"),
           ("lr", "lr"), ("drop_path_prob", "drop_path_prob"), ("best_epoch", "best_epoch"),
           ("seconds", "epoch_seconds"), ("alpha_updates", "alpha/steps"))
#: Per-cell-type scalars of an epoch record ({cell type: value}), logged as "<tag>/<cell type>":
#: the α share on parameter-free ops, and the α diagnostics of emodarts_core.darts.diagnostics.
CELL_SCALARS = (("param_free", "param_free"), ("lift", "alpha_lift"), ("entropy", "alpha_entropy"),
                ("margin", "alpha_margin"), ("agreement_previous", "genotype_agreement/previous"),
                ("agreement_initial", "genotype_agreement/initial"))
CELL_NAMES = {"normal": "CNN normal cell", "reduce": "CNN reduction cell", "seq": "SeqNN cell"}
PIXELS = 12  # each (edge, op) entry of an α image is a PIXELS x PIXELS block
EVENT_FILES = "events.out.tfevents.*"  # the names SummaryWriter gives its files
# Ends of the blue-white-red ramp: ColorBrewer RdBu's second-darkest blue and red (the notebooks use RdBu_r).
_BLUE, _WHITE, _RED = np.array([33, 102, 172.0]), np.array([255, 255, 255.0]), np.array([178, 24, 43.0])

_warned = False


class TensorBoardUnavailableWarning(UserWarning):
    """The tensorboard package is missing: run directories get no event files."""


def _summary_writer():
    """torch's SummaryWriter class, or None (with one warning per process) without tensorboard."""
    global _warned
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        if not _warned:
            _warned = True
            warnings.warn(f"TensorBoard logging is off: {exc}. Install it with `pip install tensorboard` "
                          "(it is a dependency of this package), or pass tensorboard=False in the "
                          "SearchConfig/TrainConfig to silence this warning.",
                          TensorBoardUnavailableWarning, stacklevel=3)
        return None
    return SummaryWriter


def alpha_image(probs, pixels: int = PIXELS) -> np.ndarray:
    """softmax(α) [edges, ops] as an RGB image [edges*pixels, ops*pixels, 3] (uint8).

    White is the uniform weight 1/K; red is above it and blue below, scaled so that the
    largest deviation from uniform reaches the end of the ramp (the colour scale of
    `plots.plot_alpha_heatmap`), so small differences early in a search still show.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.size == 0:
        raise ValueError(f"alpha probabilities must be a non-empty [edges, ops] matrix, got shape {p.shape}")
    uniform = 1.0 / p.shape[1]
    spread = max(float(np.abs(p - uniform).max()), 1e-9)
    t = np.clip((p - uniform) / spread, -1.0, 1.0)[..., None]  # -1 blue, 0 white, +1 red
    rgb = np.where(t >= 0, _WHITE + t * (_RED - _WHITE), _WHITE - t * (_BLUE - _WHITE))
    image = np.rint(rgb).astype(np.uint8)
    return image.repeat(pixels, axis=0).repeat(pixels, axis=1)


def _scalars(record: dict) -> list[tuple[str, float]]:
    out = [(tag, float(record[key])) for key, tag in SCALARS if record.get(key) is not None]
    for key, tag in CELL_SCALARS:
        for cell, value in (record.get(key) or {}).items():
            if value is not None:
                out.append((f"{tag}/{cell}", float(value)))
    return out


class RunLog:
    """The TensorBoard writer of one run directory; does nothing when disabled or unavailable.

    Open it after the run directory is claimed for writing (never for a finished run,
    which stays untouched), call `begin_search` or `begin_retrain` with the checkpoint's
    history (empty for a fresh run), log each epoch where the loop appends its record,
    and close it however the run ends.
    """

    def __init__(self, run_dir, enabled: bool = True):
        self.log_dir = Path(run_dir) / TB_DIR
        self._writer = None
        self._older: list[Path] = []
        writer_class = _summary_writer() if enabled else None
        if writer_class is not None:
            make_real_subdir(run_dir, TB_DIR)  # never a planted link: the events stay in the run
            self._older = sorted(self.log_dir.glob(EVENT_FILES))  # replaced once the history is logged again
            self._writer = writer_class(log_dir=str(self.log_dir), purge_step=0)

    @property
    def active(self) -> bool:
        """True while event files are being written."""
        return self._writer is not None

    def _replace_older_files(self) -> None:
        """Delete the event files that were in tb/ before this writer, now that its own file
        holds the history they showed (see the module's docstring)."""
        self._writer.flush()
        for path in self._older:
            try:
                path.unlink()
            except OSError:  # gone already, or not deletable: the purge at step 0 still hides it
                pass
        self._older = []

    # -- search --------------------------------------------------------------------------
    def begin_search(self, primitives: dict, history: list[dict], alpha_history: list[dict]) -> None:
        """Before a search's first epoch: the op order of the α images (step 0), then the
        epochs the checkpoint holds (none for a fresh run), replacing older event files."""
        if self._writer is None:
            return
        lines = [f"{CELL_NAMES.get(kind, kind)} (alpha/{kind}): rows are edges in order, columns are "
                 + ", ".join(ops) for kind, ops in primitives.items()]
        lines.append("White: the uniform weight 1/K; red above it, blue below, scaled to each image's "
                     "largest deviation from uniform.")
        self._writer.add_text("alpha/legend", "\n\n".join(lines), 0)
        for record, entry in zip(history, alpha_history):
            self.search_epoch(record, entry)
        self._replace_older_files()

    def search_epoch(self, record: dict, alpha_entry: dict) -> None:
        """One search epoch: the record's scalars, the α images and the genotype text."""
        if self._writer is None:
            return
        step = int(record["epoch"])
        self._add_scalars(record, step)
        for kind, probs in alpha_entry["probs"].items():
            if np.size(probs):
                self._writer.add_image(f"alpha/{kind}", alpha_image(probs), step, dataformats="HWC")
        genotype = genotypes.from_dict(alpha_entry["genotype"])
        self._writer.add_text("genotype", genotypes.to_text(genotype), step)
        self._writer.flush()

    # -- retraining ----------------------------------------------------------------------
    def begin_retrain(self, model_spec, history: list[dict]) -> None:
        """Before retraining's first epoch: what is retrained (step 0: the genotype's text,
        or the baseline's name), then the epochs the checkpoint holds, replacing older files."""
        if self._writer is None:
            return
        if isinstance(model_spec, genotypes.Genotype):
            self._writer.add_text("genotype", genotypes.to_text(model_spec), 0)
        else:
            self._writer.add_text("baseline", str(model_spec), 0)
        for record in history:
            self.retrain_epoch(record)
        self._replace_older_files()

    def retrain_epoch(self, record: dict) -> None:
        """One retraining epoch: the record's scalars."""
        if self._writer is None:
            return
        self._add_scalars(record, int(record["epoch"]))
        self._writer.flush()

    def test_scores(self, ua: float, wa: float, step: int) -> None:
        """The test speakers' UA and WA, scored once after training."""
        if self._writer is None:
            return
        self._writer.add_scalar("test/UA", float(ua), step)
        self._writer.add_scalar("test/WA", float(wa), step)
        self._writer.flush()

    # -- common --------------------------------------------------------------------------
    def _add_scalars(self, record: dict, step: int) -> None:
        for tag, value in _scalars(record):
            self._writer.add_scalar(tag, value, step)

    def close(self) -> None:
        """Flush and close the event file (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


__all__ = ["TB_DIR", "SCALARS", "CELL_SCALARS", "RunLog", "TensorBoardUnavailableWarning", "alpha_image"]
