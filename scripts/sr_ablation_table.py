#!/usr/bin/env python
"""Summarise the HDCN ablation (scripts/sr_experiments.sh ablation) as a markdown table.

Usage: .venv/bin/python scripts/sr_ablation_table.py [OUT]   (default OUT: runs/sr_abl)
Each OUT/NAME/ is a finished `densekit sr train` run. The PSNR columns are the validation rows
that `densekit sr train` logged in NAME/metrics.jsonl (the `densekit sr eval` protocol on each
folder of data.val); parameters and FLOPs per output pixel come from densekit.models.complexity
on the network described by NAME/weights.pt; the seconds per step from the training rows.
"""

import argparse
from pathlib import Path

import run_logs
import torch

from densekit.engine.logger import read_metrics
from densekit.models.complexity import count_params, flops_per_pixel
from densekit.models.sr import build_sr_model

ORDER = ["full", "full_seed1", "no_encdec", "no_dilation", "neither", "skips_none",
         "skips_local", "skips_long", "residual", "paper_init"]
LABEL = {
    "full": "HDCN (enc-dec, dilation, both skips), seed 0",
    "full_seed1": "HDCN, seed 1 (seed noise)",
    "no_encdec": "without encoder-decoder",
    "no_dilation": "without dilation (rates 1,1,1,1)",
    "neither": "without encoder-decoder and dilation",
    "skips_none": "no skip",
    "skips_local": "local skip only",
    "skips_long": "long skip only",
    "residual": "HDCN + global bicubic residual (not in the paper)",
    "paper_init": "HDCN, paper init N(0, 0.001) + 1e-3 L2",
}


def read_run(run: Path) -> dict:
    rows = read_metrics(run)
    w = torch.load(run / "weights.pt", map_location="cpu", weights_only=True)
    net = build_sr_model(w["model"], w["scale"], w["channels"], **w["options"])
    cfg = w["meta"]["config"]
    batch = cfg["train"]["batch_size"]
    return {"val": {r["step"]: r for r in rows if r["split"] == "val"},
            "options": w["options"], "params": count_params(net),
            "mflops": flops_per_pixel(net) / 1e6,
            "s_per_step": run_logs.seconds_per_step(rows, batch),
            "batch": batch, "threads": cfg["engine"]["threads"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="runs/sr_abl")
    args = ap.parse_args()
    out = Path(args.out)
    names = [n for n in ORDER if (out / n / "weights.pt").exists()]
    names += sorted(p.parent.name for p in out.glob("*/weights.pt") if p.parent.name not in ORDER)
    if not names:
        raise SystemExit(f"{out}: no finished runs (NAME/weights.pt)")
    runs = {n: read_run(out / n) for n in names}
    steps = sorted({s for r in runs.values() for s in r["val"]})
    sets = sorted({k[5:] for r in runs.values() for v in r["val"].values() for k in v
                   if k.startswith("psnr_")}, key=lambda s: (len(s), s))
    head = [f"{s} @{st}" for s in sets for st in steps]
    print("| variant | options | params | MFLOP/px | " + " | ".join(head) + " |")
    print("|---|---|---|---|" + "---|" * len(head))
    for n in names:
        r = runs[n]
        cells = [f"{r['val'][st][f'psnr_{s}']:.2f}" if f"psnr_{s}" in r["val"].get(st, {})
                 else "-" for s in sets for st in steps]
        opts = ", ".join(f"{k}={v}" for k, v in sorted(r["options"].items())) or "-"
        print(f"| {LABEL.get(n, n)} | {opts} | {r['params']:,} | {r['mflops']:.3f} | "
              + " | ".join(cells) + " |")
    print()
    print("Seconds per training step (median of the logged windows; batch, torch threads): "
          + ", ".join(f"{n} {r['s_per_step']:.2f} ({r['batch']}, {r['threads'] or 'default'})"
                      for n, r in runs.items()))


if __name__ == "__main__":
    main()
