"""Whether a file written by `torch.save` is intact, checked before it is loaded.

`torch.save` writes a zip archive (the pickled structure in `data.pkl`, each tensor's
bytes in its own member) with a CRC-32 of every member, but `torch.load` does not check
them: flipped bytes in a tensor's data load silently as other weights, and flipped bytes
in `data.pkl` surface as a raw UnicodeDecodeError or UnpicklingError. `check_archive`
reads every member and compares its CRC (`zipfile.ZipFile.testzip`), so a damaged file is
named, with the member that is damaged, before anything is loaded from it.
"""

from __future__ import annotations

import os
import secrets
import zipfile
from pathlib import Path

from data_prep.errors import EmodartsError
from data_prep.store import write_atomic


class DamagedFileError(EmodartsError, RuntimeError):
    """A checkpoint or model file is damaged (a CRC mismatch, a truncated or foreign file);
    `path` is the file, `last_good_epoch` the epoch of the newest intact checkpoint (None: none)."""

    def __init__(self, message: str, *, path, last_good_epoch: int | None = None):
        super().__init__(message)
        self.path, self.last_good_epoch = Path(path), last_good_epoch


def archive_problem(path) -> str | None:
    """What is wrong with the `torch.save` archive at `path`, or None when every member
    has its recorded CRC-32. OSError (missing, unreadable) propagates."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        return f"it is not an intact archive ({exc}): truncated, overwritten, or not written by torch.save"
    except (EOFError, ValueError, NotImplementedError) as exc:
        return f"its archive cannot be read ({exc})"
    if bad is not None:
        return f"its member {bad} does not match its CRC-32 (bytes changed on disk since it was written)"
    return None


def keep_previous(current: Path, previous: Path) -> None:
    """Give `current` the second name `previous` (a hard link, or a copy where links are
    not possible) before a new file replaces `current`, which exists throughout. A planted
    link at `previous` is replaced, never followed; a link at `current` is not kept."""
    if current.is_symlink() or not current.is_file():
        return
    tmp = previous.with_name(f".{previous.name}.{secrets.token_hex(6)}.tmp")
    try:
        os.link(current, tmp, follow_symlinks=False)
    except OSError:
        write_atomic(previous, lambda fh: fh.write(current.read_bytes()), binary=True, suffix=".tmp")
        return
    os.replace(tmp, previous)


def damaged_checkpoint_error(exc: DamagedFileError, previous: Path, last_good_epoch: int | None) -> DamagedFileError:
    """`exc` (a damaged checkpoint) with the last good epoch, kept in `previous`, and how to
    resume from it; or, with none, what to do instead."""
    if last_good_epoch is not None:
        advice = (f"The last good epoch is {last_good_epoch}, kept in {previous}: to resume from there, move it "
                  f"over the damaged file (mv {previous} {exc.path}) and run the same command again with "
                  "resume=True (papermill: -p resume True); the epochs after it are computed again.")
    else:
        advice = (f"No intact earlier checkpoint is kept beside it ({previous.name}), so there is no last good "
                  "epoch to resume from: restore the file from a backup, or start the run again in a new run "
                  "directory (or after deleting this one).")
    return DamagedFileError(f"{exc} It was not loaded, since a resumed run would continue from wrong weights or "
                            f"states. {advice}", path=exc.path, last_good_epoch=last_good_epoch)
