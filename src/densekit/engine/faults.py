"""Test-only fault injection, switched on by the ``DENSEKIT_FAULT`` environment variable.

Unset (normal use), :func:`point` does nothing. ``DENSEKIT_FAULT=NAME:N`` makes the N-th call
of ``point(NAME)`` in this process act out the fault:

- ``kill_in_save:N``: SIGKILL inside the N-th checkpoint/weights write, after the data went to
  the temporary file and before it is flushed and renamed into place.
"""

from __future__ import annotations

import os
import signal

_calls: dict[str, int] = {}


def point(name: str) -> None:
    spec = os.environ.get("DENSEKIT_FAULT")
    if not spec:
        return
    want, _, nth = spec.partition(":")
    if want != name:
        return
    _calls[name] = _calls.get(name, 0) + 1
    if _calls[name] == int(nth or 1) and name.startswith("kill_"):
        os.kill(os.getpid(), signal.SIGKILL)
