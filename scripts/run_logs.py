"""What the results scripts compute from a training run folder's metrics.jsonl rows (read with
densekit.engine.logger.read_metrics)."""

import statistics


def seconds_per_step(rows: list[dict], batch_size: int) -> float:
    """Median over the logged training windows of batch_size / samples_per_s (busy time)."""
    rates = [batch_size / r["samples_per_s"] for r in rows
             if r["split"] == "train" and r.get("samples_per_s")]
    return statistics.median_high(rates) if rates else float("nan")


def busy_hours(rows: list[dict], batch_size: int) -> float:
    """Hours the logged training windows took (steps x batch_size / samples_per_s, summed)."""
    hours, last = 0.0, 0
    for r in rows:
        if r["split"] == "train" and r.get("samples_per_s"):
            hours += (r["step"] - last) * batch_size / r["samples_per_s"] / 3600
            last = r["step"]
    return hours
