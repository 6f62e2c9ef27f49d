"""What the *_table.py scripts read from a training run folder's metrics.jsonl."""

import json
import statistics
from pathlib import Path


def read_rows(run: Path) -> list[dict]:
    """The rows `densekit ... train` logged in RUN/metrics.jsonl."""
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def seconds_per_step(rows: list[dict], batch_size: int) -> float:
    """Median over the logged training windows of batch_size / samples_per_s (busy time)."""
    rates = [batch_size / r["samples_per_s"] for r in rows
             if r["split"] == "train" and r.get("samples_per_s")]
    return statistics.median_high(rates) if rates else float("nan")
