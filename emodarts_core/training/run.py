"""One run's lifecycle, shared by the search (`darts.search.run_search`) and retraining
(`training.train.run_retrain`).

Whatever network a run trains, it goes through the same stages, and this module owns
each of them, so that the two loops hold only what differs between them:

1. `validated`: the configurations and the fold (`validate_fold`) are checked once, at
   the boundary, before any feature is touched or any step is taken (ConfigError lists
   the valid values);
2. `Run(kind, run_dir, settings)`: the device and precision the settings ask for, and
   `Run.seed` for the random generators before the network is built;
3. `Run.claim(Run.config(fold_data, sections), resume)`: config.json (the run's kind and
   settings, the fold, the software's versions), the run directory's writer lock and, on
   resume, the match of the stored configuration (`loop.claim_run_dir`); True for a
   finished run, which the caller returns as stored;
4. `Run.restore(stateful, normaliser)`: the normalisation the run trains with, the last
   checkpoint loaded back into the model, optimisers, schedulers and random generators,
   the metric files cut back to its history, and the TensorBoard writer (`tblog.RunLog`);
5. `Run.epochs(start, total)`: the epochs, with a progress bar, under the process
   settings of `emodarts_core.runtime` (heap and threads) on CPU; a non-finite loss inside
   an epoch stops the run with NonFiniteLossError naming the last good checkpoint;
6. `Run.end_epoch(record, **state)`: the checkpoint (every epoch: `resume=True` continues
   bit for bit on CPU), the metrics line, then the callbacks registered with `on_epoch`
   (TensorBoard, the α history, any per-epoch file), then the printed line;
7. `Run.finish(summary)`: the FINISHED file. Leaving the `with Run(...)` block gives the
   lock back and closes the event file however the run ends.

The run directory's files and their formats are `training.rundir`'s (docs/DATA.md, "Run
directories"); the invariants are in docs/ARCHITECTURE.md ("Atomic writes, resume, no
overwrite", "Configurations validated before work").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np

from emodarts_core.config import ConfigError
from emodarts_core.runtime import tuned_run
from emodarts_core.training.data import features
from emodarts_core.training.device import Precision, resolve_device, seed_everything
from emodarts_core.training.loop import (NonFiniteLossError, claim_run_dir, describe_fold, epoch_line, progress,
                                         restore_training_state, software_versions, stop_message, training_state)
from emodarts_core.training.normalise import NORMALISATION
from emodarts_core.training.tblog import RunLog


def validated(fold_data, net_cfg, run_cfg, splits: tuple[str, ...]):
    """`(net_cfg, run_cfg)` validated, after checking that `fold_data` has `splits` shaped and
    labelled for the network: the one check of a run's configuration, before any work."""
    net_cfg, run_cfg = net_cfg.validate(), run_cfg.validate()
    validate_fold(fold_data, net_cfg, splits)
    return net_cfg, run_cfg


def validate_fold(fold_data, net_cfg, splits: tuple[str, ...]) -> None:
    """Check that `fold_data` has the named splits, shaped and labelled for `net_cfg`."""
    if net_cfg.in_channels != 1:
        raise ConfigError(f"fold features are single-channel [N, F, T] but NetworkConfig.in_channels="
                          f"{net_cfg.in_channels}; valid: in_channels=1")
    classes = getattr(fold_data, "classes", None)
    if classes is not None and len(classes) != net_cfg.n_classes:
        raise ConfigError(f"the fold has {len(classes)} classes {tuple(classes)} but the network "
                          f"is configured for n_classes={net_cfg.n_classes}")
    for name in splits:
        split = getattr(fold_data, name, None)
        if split is None:
            raise ConfigError(f"fold data has no {name!r} split; expected .search, .train and .test")
        X, y = features(split), np.asarray(split.y)
        if X.ndim != 3 or tuple(X.shape[1:]) != tuple(net_cfg.input_size):
            raise ConfigError(f"{name} split features have shape {X.shape}; the network expects "
                              f"[N, {net_cfg.input_size[0]}, {net_cfg.input_size[1]}] (NetworkConfig.input_size)")
        if len(X) == 0 or len(X) != len(y):
            raise ConfigError(f"{name} split has {len(X)} feature rows and {len(y)} labels; need a non-empty, "
                              "equal number")
        if y.min() < 0 or y.max() >= net_cfg.n_classes:
            raise ConfigError(f"{name} split has labels outside 0..{net_cfg.n_classes - 1}")


class Run:
    """One search or retraining run in `run_dir`, from its claim to its FINISHED file.

    `kind` ("search" or "retrain") names the run in its progress bar and printed lines;
    `settings` is its validated SearchConfig or TrainConfig (device, amp, progress,
    tensorboard). Use it as a context manager: see the module's docstring for the stages.
    """

    def __init__(self, kind: str, run_dir, settings):
        self.kind, self.run_dir, self.settings = kind, run_dir, settings
        self.device = resolve_device(settings.device)
        self.precision = Precision(self.device, settings.amp)
        self.rd = self.tb = None
        self.history: list[dict] = []
        self._stateful: dict = {}
        self._callbacks: list[Callable[[dict], None]] = []
        self._tuning = contextlib.ExitStack()
        self._bar = None
        self._resuming = False
        self._epoch: int | None = None  # the epoch being computed, until its record is kept
        self._total = 0
        self._began = 0.0

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        stopped = None
        if isinstance(exc, NonFiniteLossError) and self._epoch is not None and self.rd is not None:
            stopped = NonFiniteLossError(stop_message(self.rd, self._epoch + 1, exc))
        try:
            self._tuning.close()
        finally:
            if self.tb is not None:
                self.tb.close()
            if self.rd is not None:
                self.rd.release()
        if stopped is not None:
            raise stopped from None
        return False

    def seed(self, seed: int) -> None:
        """Seed every random generator (`device.seed_everything`) before the network is built."""
        seed_everything(seed)

    def config(self, fold_data, sections: dict, after_data: dict | None = None) -> dict:
        """The run's config.json: its kind, `sections` (the network's and the run's settings),
        the fold (`loop.describe_fold`), `after_data`, and the software's versions."""
        return {"kind": self.kind, **sections, "data": describe_fold(fold_data), **(after_data or {}),
                "environment": software_versions()}

    def claim(self, config: dict, resume: bool) -> bool:
        """Claim the run directory for `config` (`loop.claim_run_dir`); True when it holds a
        finished run (returned as stored, never rewritten)."""
        self.rd, mode = claim_run_dir(self.run_dir, config, resume)
        self._resuming = mode == "resume"
        return mode == "finished"

    def restore(self, stateful: dict, normaliser) -> dict | None:
        """Write the normalisation, load the last checkpoint (on resume) into `stateful`
        (name -> module, optimiser, scheduler, scaler, generator or a dict of them), cut the
        metric files back to its history and open TensorBoard; returns the checkpoint."""
        self.rd.atomic_write_json(NORMALISATION, normaliser.to_dict())
        self._stateful = stateful
        ckpt = self.rd.load_checkpoint() if self._resuming else None  # on CPU: RNG states must stay there
        if ckpt is not None:
            restore_training_state(ckpt, stateful)
            self.history = ckpt["history"]
        self.rd.rewrite_epochs(self.history)  # drops lines of an epoch the checkpoint did not reach
        self.tb = RunLog(self.rd.path, self.settings.tensorboard)  # <run>/tb/, rewritten from the history
        return ckpt

    def on_epoch(self, callback: Callable[[dict], None]) -> None:
        """Call `callback(record)` after each epoch's checkpoint and metrics line are written."""
        self._callbacks.append(callback)

    def epochs(self, start: int, total: int) -> Iterator[int]:
        """The indices of the epochs left (`start` .. `total` - 1), run under the process
        settings of `emodarts_core.runtime` and shown with a progress bar."""
        self._tuning.enter_context(tuned_run(self.device.type == "cpu"))
        self._total = total
        self._bar = progress(range(start, total), enabled=self.settings.progress, desc=self.kind,
                             total=total - start, leave=True)
        for epoch in self._bar:
            self._epoch, self._began = epoch, time.perf_counter()
            yield epoch

    def batches(self, loader, total: int | None = None):
        """The batches of the current epoch, with a progress bar of their own."""
        return progress(loader, enabled=self.settings.progress, desc=f"epoch {self._epoch + 1}", total=total)

    def elapsed(self) -> float:
        """Seconds since the current epoch began."""
        return time.perf_counter() - self._began

    def end_epoch(self, record: dict, postfix: dict | None = None, **state) -> None:
        """Keep the epoch: its record in the history, the checkpoint (`record["epoch"]`, the
        training state, the history and `state`), the metrics line, the `on_epoch`
        callbacks, and with progress on, `postfix` on the bar and a printed line."""
        self.history.append(record)
        self.rd.save_checkpoint({"epoch": record["epoch"], **training_state(self._stateful),
                                 "history": self.history, **state})
        self.rd.append_epoch(record)
        self._epoch = None
        for callback in self._callbacks:
            callback(record)
        if self.settings.progress:
            if postfix:
                self._bar.set_postfix(**postfix)
            self._bar.write(epoch_line(self.kind, record, self._total))

    def finish(self, summary: dict) -> None:
        """Mark the run finished with `summary` (FINISHED, after "kind"); releases the lock."""
        self.rd.mark_finished({"kind": self.kind, **summary})


__all__ = ["Run", "validate_fold", "validated"]
