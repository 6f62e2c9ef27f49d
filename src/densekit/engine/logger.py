"""Run logging: JSONL scalars (always), TensorBoard (optional), a text log, and messages."""

from __future__ import annotations

import json
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
