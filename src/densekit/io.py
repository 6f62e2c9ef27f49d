"""How densekit writes: files atomically, and lines to the terminal clear of its progress bars.

Every file densekit writes (checkpoints, weights, images, label PNGs, ONNX models, reports) goes
through :func:`atomic_write`.

The content is written to a temporary file in the target folder (``.NAME.XXXXXXXX.tmp``),
flushed and fsynced, given the permissions of a normally created file, renamed over the target,
and the folder is fsynced. A reader never sees a half-written file under its final name, a crash
or a full disk leaves any file already at that path as it was, and a failed write leaves no
temporary file behind (one killed mid-write may: the run lock's holder deletes those, see
:mod:`densekit.engine.checkpoint`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from densekit.errors import DensekitError

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "write_above_bars"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], *,
                 what: str = "") -> Path:
    """Call ``write(f)`` on a binary file that becomes ``path`` once it is complete and on disk.

    An ``OSError`` (a full disk, a missing permission, a file where the folder should be) is
    raised as :class:`~densekit.errors.DensekitError`: ``"PATH: cannot write[ WHAT] (why)"``;
    any other exception of ``write`` propagates. Either way nothing is left at ``path`` that was
    not there before. Returns ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are normal files
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            why = (e.strerror or str(e) or type(e).__name__).splitlines()[0][:160]
            raise DensekitError(f"{path}: cannot write{' ' + what if what else ''} ({why})") \
                from None
        raise
    _fsync_folder(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, what: str = "") -> Path:
    """Write ``data`` to ``path`` with :func:`atomic_write`."""
    return atomic_write(path, lambda f: f.write(data), what=what)


def atomic_write_text(path: str | os.PathLike, text: str, *, what: str = "") -> Path:
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_write`."""
    return atomic_write_bytes(path, text.encode("utf-8"), what=what)


def write_above_bars(message: str, report=print) -> None:
    """``report(message)`` with the terminal's progress bars cleared first and redrawn after
    (stdout and stderr flushed in between), so the line never lands inside a bar."""
    with tqdm.external_write_mode():
        report(message)
        sys.stdout.flush()
        sys.stderr.flush()
