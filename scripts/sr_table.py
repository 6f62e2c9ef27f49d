#!/usr/bin/env python
"""Evaluate trained SR runs on Set5/Set14 with `densekit sr eval` and print a markdown table.

Usage: .venv/bin/python scripts/sr_table.py RUN_DIR... [--data DIR ...] [--self-ensemble]
Each RUN_DIR must hold weights.pt (from `densekit sr train`); a weights file (e.g. the shipped
src/densekit/weights/hdcn_x2.pt) also works. Published numbers come from
shared/docs/protocols.md (typed in PUBLISHED below for the side-by-side columns).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

PUBLISHED = {  # (method, scale) -> {set: (psnr, ssim)}, shared/docs/protocols.md
    ("bicubic", 2): {"Set5": (33.66, 0.9299), "Set14": (30.24, 0.8688)},
    ("bicubic", 3): {"Set5": (30.39, 0.8682), "Set14": (27.55, 0.7742)},
    ("bicubic", 4): {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027)},
    ("srcnn", 2): {"Set5": (36.66, 0.9542), "Set14": (32.42, 0.9063)},
    ("srcnn", 3): {"Set5": (32.75, 0.9090), "Set14": (29.28, 0.8209)},
    ("srcnn", 4): {"Set5": (30.48, 0.8628), "Set14": (27.49, 0.7503)},
    ("vdsr", 2): {"Set5": (37.53, 0.9587), "Set14": (33.03, 0.9124)},
    ("vdsr", 3): {"Set5": (33.66, 0.9213), "Set14": (29.77, 0.8314)},
    ("vdsr", 4): {"Set5": (31.35, 0.8838), "Set14": (28.01, 0.7674)},
    ("rednet", 2): {"Set5": (37.66, 0.9599), "Set14": (32.94, 0.9144)},
    ("rednet", 4): {"Set5": (31.51, 0.8869), "Set14": (27.86, 0.7718)},
}


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
            pub = PUBLISHED.get((model, scale), {}).get(r["dataset"])
            cells += [f"{r['psnr']:.2f} / {r['ssim']:.4f}",
                      f"{pub[0]:.2f} / {pub[1]:.4f}" if pub else "-"]
        name = model + ("+" if args.self_ensemble else "")
        print(f"| {Path(run).name} | {name} | {scale} | {steps} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
