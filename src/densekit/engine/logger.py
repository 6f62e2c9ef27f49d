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
        self._tensorboard = tensorboard
        self._purge_step: int | None = None

    def _writer(self):
        """The TensorBoard writer, opened at the first scalars (after a resume has set the purge
        step); None without TensorBoard."""
        if self._tb is None and self._tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out_dir / "tb"), purge_step=self._purge_step)
            except ImportError:  # tensorboard not installed: JSONL still has everything
                self._tensorboard = False
        return self._tb

    def restart_at(self, step: int) -> None:
        """The run continues from its step-``step`` checkpoint (a resume or a rollback): what it
        logged after that step is superseded. TensorBoard hides those events (its purge step);
        metrics.jsonl stays append-only and :func:`read_metrics` drops them."""
        if not self.enabled:
            return
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        self._purge_step = step + 1

    def scalars(self, step: int, values: dict, prefix: str = "train") -> None:
        if not self.enabled:
            return
        row = {"step": step, "split": prefix, "time": round(time.time(), 3)}
        row.update({k: float(v) for k, v in values.items()})
        self._jsonl.write(json.dumps(row) + "\n")
        if (tb := self._writer()) is not None:
            for k, v in values.items():
                tb.add_scalar(f"{prefix}/{k}", float(v), step)

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


def read_metrics(out_dir: str | Path) -> list[dict]:
    """The rows of a run folder's metrics.jsonl that describe the run as it went on, oldest
    first. A run resumed or rolled back to its step-c checkpoint logs the steps after c again:
    each such row supersedes the rows logged before it at a later step, or at its own step in
    its own split (a validation at step c, logged before the checkpoint, stays). Event rows (a
    rollback) record what happened and always stay."""
    kept: list[tuple[int, dict]] = []  # (line, row), sorted by step
    events: list[tuple[int, dict]] = []
    lines = (Path(out_dir) / "metrics.jsonl").read_text().splitlines()
    for i, row in enumerate(json.loads(x) for x in lines if x.strip()):
        if row["split"] == "event":
            events.append((i, row))
            continue
        j = len(kept)
        while j and kept[j - 1][1]["step"] >= row["step"]:
            j -= 1
        kept[j:] = [k for k in kept[j:] if k[1]["step"] == row["step"] and
                    k[1]["split"] != row["split"]] + [(i, row)]
    return [row for _, row in sorted(kept + events, key=lambda k: k[0])]


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
