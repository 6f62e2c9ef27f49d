#!/usr/bin/env python
"""The learning curve of a segmentation run: val mIoU against steps, epochs and training time.

Usage: .venv/bin/python scripts/seg_curve.py RUN [--batch 8] [--iters-per-epoch 46]
RUN is a `densekit seg train` folder. Training time is the busy time the trainer logged (each
window's samples / samples_per_s: data + step, validation and checkpoints excluded), summed up
to each validation, so a run that was stopped and resumed counts only the time it trained.
"""

import argparse
from pathlib import Path

import run_logs

from densekit.engine.logger import read_metrics


def curve(rows: list[dict], batch: int) -> list[dict]:
    return [{"step": r["step"], "miou": r["miou"], "pixel_acc": r["pixel_acc"],
             "hours": run_logs.busy_hours([w for w in rows if w["step"] <= r["step"]], batch)}
            for r in rows if r["split"] == "val"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters-per-epoch", type=int, default=46)
    a = ap.parse_args()
    print("| step | epoch | training hours | val mIoU % | pixel acc % |\n|---|---|---|---|---|")
    for p in curve(read_metrics(a.run), a.batch):
        print(f"| {p['step']:,} | {p['step'] / a.iters_per_epoch:.0f} | {p['hours']:.2f} | "
              f"{100 * p['miou']:.2f} | {100 * p['pixel_acc']:.2f} |")


if __name__ == "__main__":
    main()
