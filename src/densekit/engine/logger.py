"""Run logging: JSONL scalars (always), TensorBoard (optional), a text log, and messages.

Two kinds of log.txt line are read back by tools (the results scripts, the weights shipper):
the line that opens every start or resume of a run and the training command. Both are written
with :func:`start_message` / :func:`command_message` and read with :func:`run_starts` /
:func:`logged_command`, so the format lives here only.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from densekit.io import write_above_bars


class RunLogger:
    def __init__(self, out_dir: str | Path, tensorboard: bool = True, enabled: bool = True):
        self.enabled = enabled
        self.out_dir = Path(out_dir)
        self._tb = None
        self._jsonl = None
        self._text = None
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.out_dir / "metrics.jsonl", "a", buffering=1)
        self._text = open(self.out_dir / "log.txt", "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out_dir / "tb"))
            except ImportError:  # tensorboard not installed: JSONL still has everything
                self._tb = None

    def scalars(self, step: int, values: dict, prefix: str = "train") -> None:
        if not self.enabled:
            return
        row = {"step": step, "split": prefix, "time": round(time.time(), 3)}
        row.update({k: float(v) for k, v in values.items()})
        self._jsonl.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{prefix}/{k}", float(v), step)

    def info(self, message: str) -> None:
        if not self.enabled:
            return
        write_above_bars(message)
        self._text.write(time.strftime("%Y-%m-%d %H:%M:%S ") + message + "\n")

    def close(self) -> None:
        for f in (self._jsonl, self._text):
            if f is not None:
                f.close()
        if self._tb is not None:
            self._tb.close()


# ---- log.txt lines that are read back ---------------------------------------------------------
_STAMP = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} "  # RunLogger.info's time stamp
_START_RE = re.compile(_STAMP + r"run folder .*: steps (\d+)->(\d+), device (.+)$", re.M)
_COMMAND_RE = re.compile(_STAMP + r"(?:command: (?P<cmd>.+)|.*Resume with: (?P<resume>.+) "
                         r"--resume auto)$", re.M)


def start_message(folder: str | Path, step: int, total_steps: int, device: str) -> str:
    """The line that opens every start or resume of a run: where, from which step, on what."""
    return f"run folder {folder}: steps {step}->{total_steps}, device {device}"


def command_message(command: str) -> str:
    """The line that records the training command of a run (after its start line)."""
    return f"command: {command}"


def resume_hint(command: str) -> str:
    """The end of a stop message: how to continue the run."""
    return f"Resume with: {command} --resume auto"


def run_starts(log_text: str) -> list[tuple[int, int, str]]:
    """Every start or resume in a run's log.txt text, oldest first: (step, total steps, device
    description as written by :func:`start_message`)."""
    return [(int(a), int(b), d.strip()) for a, b, d in _START_RE.findall(log_text)]


def logged_command(log_text: str) -> str | None:
    """The newest training command in a run's log.txt text (a command line, or a stop
    message's resume hint without its ``--resume auto``), or None."""
    found = None
    for m in _COMMAND_RE.finditer(log_text):
        found = m.group("cmd") or m.group("resume")
    return found
