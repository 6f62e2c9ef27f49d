"""Atomic checkpoints: written with :func:`densekit.io.atomic_write` (a temporary file, fsynced,
then renamed into place).

A reader never sees a half-written checkpoint under its final name, and a crash during a write
leaves the previous checkpoint intact. ``find_resume`` picks the newest checkpoint that loads.
A run holds :func:`run_lock` on its folder, so two runs never write the same checkpoints, and
the run that holds it may delete the temporary files of a writer that was killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from pathlib import Path

import torch

from densekit.engine import faults
from densekit.errors import DensekitError
from densekit.io import atomic_write

CKPT_RE = re.compile(r"^step_(\d{8})\.pt$")
TEMP_RE = re.compile(r"^\..+\.pt\.[A-Za-z0-9_]+\.tmp$")  # atomic_write's temporary .pt files
LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_lock(folder: str | Path):
    """Hold an exclusive advisory lock (``flock``) on run folder ``folder`` while in the block.

    A second run on the same folder is refused with a one-line error. The kernel drops the lock
    when its process ends in any way (SIGKILL included), so it never goes stale."""
    folder = Path(folder)
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")
    except OSError as e:
        raise DensekitError(f"{folder}: cannot use as run folder ({e.strerror or e})") from None
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            raise DensekitError(f"{folder}: another run is using this folder"
                                f"{f' (pid {holder})' if holder.isdigit() else ''}; wait for it "
                                "to end or choose another engine.out_dir") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield path
    finally:
        f.close()


def remove_stale_temps(folder: str | Path) -> int:
    """Delete the temporary files of checkpoint writes that never finished (a killed run).
    Only call this while holding the folder's :func:`run_lock`. Returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if TEMP_RE.match(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def atomic_torch_save(obj, path: str | Path, *, what: str = "checkpoint") -> None:
    """``torch.save(obj)`` to ``path`` with :func:`densekit.io.atomic_write`; a failed write
    raises DensekitError and keeps every earlier file (``what`` names the file in it)."""

    def write(f) -> None:
        try:
            torch.save(obj, f)
        except RuntimeError as e:  # torch.save reports a full disk so, from its zip writer
            raise OSError(str(e).splitlines()[0] if str(e) else "torch.save failed") from None
        faults.point("kill_in_save")  # tests only: see densekit.engine.faults

    try:
        atomic_write(path, write, what=what)
    except DensekitError as e:
        raise DensekitError(f"{e}; the previous {what} is kept") from None


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DensekitError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated / not a torch file / pickle error
        raise DensekitError(f"{path}: not a valid checkpoint ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:120] if str(e) else 'corrupt'})") from None
    if not isinstance(state, dict):
        raise DensekitError(f"{path}: not a densekit checkpoint")
    return state


def list_checkpoints(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if CKPT_RE.match(p.name))


def checkpoint_step(path: Path) -> int:
    return int(CKPT_RE.match(Path(path).name).group(1))


def find_resume(folder: str | Path, before: int | None = None) -> Path | None:
    """Newest checkpoint in ``folder`` that loads (and is older than step ``before``, if
    given); corrupt ones are skipped."""
    for path in reversed(list_checkpoints(folder)):
        if before is not None and checkpoint_step(path) >= before:
            continue
        try:
            load_checkpoint(path)
            return path
        except DensekitError:
            continue
    return None


def prune(folder: str | Path, keep: int) -> None:
    for path in list_checkpoints(folder)[:-keep]:
        path.unlink(missing_ok=True)


def checkpoint_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}.pt"
