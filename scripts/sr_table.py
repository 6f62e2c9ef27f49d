#!/usr/bin/env python
"""Evaluate trained SR runs on Set5/Set14 with `densekit sr eval` and print a markdown table.

Usage: .venv/bin/python scripts/sr_table.py RUN_DIR... [--data DIR ...] [--self-ensemble]
Each RUN_DIR must hold weights.pt (from `densekit sr train`); a weights file (e.g. the shipped
src/densekit/weights/hdcn_x2.pt) also works. Published numbers come from
docs/protocols.md 1.5 (densekit.metrics.published, for the side-by-side columns).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from densekit.metrics.published import PUBLISHED_SR


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="*", help="run folders holding weights.pt, weights files, "
                                            "or 'bicubicN' for Bicubic at scale N")
    ap.add_argument("--data", action="append",
                    default=None, help="test folders (default ../shared/data/sr/Set5, Set14)")
    ap.add_argument("--self-ensemble", action="store_true",
                    help="evaluate with densekit sr eval --self-ensemble (model name gets a +)")
    args = ap.parse_args()
    data = args.data or ["../shared/data/sr/Set5", "../shared/data/sr/Set14"]
    print("| run | model | x | steps | " + " | ".join(f"{Path(d).name} ours | {Path(d).name} "
                                                     "published" for d in data) + " |")
    print("|---|---|---|---|" + "---|---|" * len(data))
    for run in args.runs:
        if run.startswith("bicubic"):
            model, scale, weights, steps = "bicubic", int(run[7:]), [], "-"
        else:
            path = Path(run) if Path(run).is_file() else Path(run) / "weights.pt"
            w = torch.load(path, map_location="cpu", weights_only=True)
            model, scale, steps = w["model"], w["scale"], w["meta"].get("steps", "?")
            weights = ["--weights", str(path)]
        cmd = [sys.executable, "-m", "densekit", "sr", "eval", "--model", model, "--scale",
               str(scale), "--json", "--precision", "fp32", *weights]
        if args.self_ensemble:
            cmd.append("--self-ensemble")
        for d in data:
            cmd += ["--data", d]
        rows = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                         text=True).stdout)
        cells = []
        for r in rows:
            pub = PUBLISHED_SR.get((model, scale), {}).get(r["dataset"])
            cells += [f"{r['psnr']:.2f} / {r['ssim']:.4f}",
                      f"{pub[0]:.2f} / {pub[1]:.4f}" if pub else "-"]
        name = model + ("+" if args.self_ensemble else "")
        print(f"| {Path(run).name} | {name} | {scale} | {steps} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
