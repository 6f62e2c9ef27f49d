#!/usr/bin/env python
"""Summarise the CamVid SS-GAN experiment (scripts/seg_experiments.sh) as markdown tables.

Usage: .venv/bin/python scripts/seg_table.py [OUT] [--split val] [--data DIR] [--phase1 RUN]
OUT (default runs/seg_exp) holds GEN_sSEED/{phase1,ssgan,control}/weights.pt; with --phase1 RUN
(the run folder of one phase-1 run that every seed's phase 2 started from, seg_experiments.sh's
PHASE1) only GEN_sSEED/{ssgan,control}. Every number is measured here: each weights file is
scored with `densekit seg eval --precision fp32 --json` (one confusion matrix over the split),
the training cost per step and A's loss and accuracy come from each run's metrics.jsonl.
"""

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

from densekit.engine.logger import read_metrics
from densekit.io import atomic_write_text

import run_logs

ARMS = ("phase1", "control", "ssgan")
LABELS = {"phase1": "baseline (phase 1)", "control": "continued baseline (lambda 0)",
          "ssgan": "SS-GAN (phase 2)"}


def seg_eval(weights: Path, split: str, data: str | None) -> dict:
    """`densekit seg eval --json` of a weights file, with the data settings it was trained on;
    cached next to the weights (eval_SPLIT.json, reused while newer than the weights)."""
    cache = weights.parent / f"eval_{split}.json"
    if data is None and cache.is_file() and cache.stat().st_mtime > weights.stat().st_mtime:
        return json.loads(cache.read_text())
    res = _seg_eval(weights, split, data)
    if data is None:
        atomic_write_text(cache, json.dumps(res))
    return res


def _seg_eval(weights: Path, split: str, data: str | None) -> dict:
    import tempfile

    import yaml

    cfg = _config(weights)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump({"task": "seg", "data": cfg["data"]}, f)
        f.flush()
        cmd = [sys.executable, "-m", "densekit", "seg", "eval", "--config", f.name,
               "--weights", str(weights), "--split", split, "--precision", "fp32", "--json"]
        if data:
            cmd += ["--data", data]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def _config(weights: Path) -> dict:
    import torch

    return torch.load(weights, map_location="cpu", weights_only=True)["config"]


def seconds_per_step(run: Path) -> float:
    """Median over the logged windows of batch_size / samples_per_s."""
    return run_logs.seconds_per_step(read_metrics(run),
                                     _config(run / "weights.pt")["train"]["batch_size"])


def paired_verdict(diff: list[float]) -> str:
    """The paired SS-GAN - control differences (mIoU points, one per seed) against seed noise:
    mean, std, and the two-sided 95% Student-t interval of the mean (n - 1 degrees of freedom;
    with 3 seeds the interval is +-4.30 standard errors, not +-2)."""
    from scipy import stats

    m, sd = mean_std(diff)
    n = len(diff)
    if n < 2:
        return (f"SS-GAN minus continued baseline: {m:+.2f} mIoU points from one seed: "
                f"no estimate of the seed noise.")
    se = sd / math.sqrt(n)
    t = float(stats.t.ppf(0.975, n - 1))
    lo, hi = m - t * se, m + t * se
    verdict = "excludes 0: the difference exceeds" if lo > 0 or hi < 0 else \
        "includes 0: the difference does not exceed"
    return (f"SS-GAN minus continued baseline, paired by seed: {m:+.2f} +- {sd:.2f} mIoU points "
            f"(mean +- std over {n} seeds; standard error {se:.2f}); the 95% interval "
            f"[{lo:+.2f}, {hi:+.2f}] (Student t, {n - 1} df: +-{t:.2f} SE) {verdict} the "
            f"seed noise.")


def discriminator_table(runs: list[Path], parts: int = 5) -> str:
    """A's loss and accuracy on real and fake maps over phase 2: the logged windows of each
    SS-GAN run cut into ``parts`` equal stretches of steps, averaged within a stretch and then
    over the runs (seeds)."""
    per_run = []
    for run in runs:
        rows = [r for r in read_metrics(run) if r["split"] == "train" and "d_loss" in r]
        last = rows[-1]["step"]
        per_run.append([[r for r in rows if k * last / parts < r["step"] <= (k + 1) * last / parts]
                        for k in range(parts)])
    lines = ["| phase-2 steps | A loss | A acc. real | A acc. fake |", "|---|---|---|---|"]
    last = max(r[-1][-1]["step"] for r in per_run)
    for k in range(parts):
        cells = []
        for key in ("d_loss", "d_acc_real", "d_acc_fake"):
            runs_k = [statistics.fmean(r[key] for r in part[k]) for part in per_run if part[k]]
            m, sd = mean_std(runs_k)
            cells.append(f"{m:.3f} +- {sd:.3f}")
        lines.append(f"| {round(k * last / parts)}-{round((k + 1) * last / parts)} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_std(xs):
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="runs/seg_exp")
    ap.add_argument("--split", default="val")
    ap.add_argument("--data", default=None, help="data root (default: the run's config)")
    ap.add_argument("--phase1", type=Path, default=None,
                    help="the shared phase-1 run folder (seg_experiments.sh's PHASE1)")
    args = ap.parse_args()
    own = ARMS if args.phase1 is None else ARMS[1:]
    runs: dict[str, dict[int, Path]] = {}
    for d in sorted(Path(args.out).iterdir()):
        m = re.fullmatch(r"(.+)_s(\d+)", d.name)
        if m and all((d / a / "weights.pt").is_file() for a in own):
            runs.setdefault(m.group(1), {})[int(m.group(2))] = d
    if not runs:
        sys.exit(f"{args.out}: no finished GEN_sSEED/{{{','.join(own)}}} runs")

    def run_dir(d: Path, arm: str) -> Path:
        return args.phase1 if arm == "phase1" and args.phase1 is not None else d / arm

    for gen, seeds in runs.items():
        res = {a: {s: seg_eval(run_dir(d, a) / "weights.pt", args.split, args.data)
                   for s, d in seeds.items()} for a in ARMS}
        cfg = _config(next(iter(seeds.values())) / "ssgan" / "weights.pt")
        print(f"\n### {gen}: CamVid {args.split}, seeds {sorted(seeds)}, "
              f"resize {cfg['data']['resize']}, crop {cfg['data']['crop_size']}, "
              f"batch {cfg['train']['batch_size']}\n")
        print("| run | mIoU (mean +- std) | per seed | pixel acc |")
        print("|---|---|---|---|")
        for a in ARMS:
            ms = [100 * res[a][s]["miou"] for s in sorted(seeds)]
            pa = mean_std([100 * res[a][s]["pixel_acc"] for s in sorted(seeds)])
            m, sd = mean_std(ms)
            print(f"| {LABELS[a]} | {m:.2f} +- {sd:.2f} | {', '.join(f'{x:.2f}' for x in ms)} "
                  f"| {pa[0]:.2f} |")
        diff = [100 * (res["ssgan"][s]["miou"] - res["control"][s]["miou"]) for s in sorted(seeds)]
        print("\n" + paired_verdict(diff) + "\n")
        classes = list(res["ssgan"][min(seeds)]["iou"])
        print("| class | " + " | ".join(LABELS[a] for a in ARMS) + " |")
        print("|---|" + "---|" * len(ARMS))
        for c in classes:
            cells = [f"{mean_std([100 * res[a][s]['iou'][c] for s in seeds])[0]:.2f}"
                     for a in ARMS]
            print(f"| {c} | " + " | ".join(cells) + " |")
        p1, p2, ctl = (statistics.median([seconds_per_step(run_dir(d, a))
                                          for d in seeds.values()])
                       for a in ("phase1", "ssgan", "control"))
        print(f"\nTraining cost per step (median over seeds of the median logged window): "
              f"phase 1 {p1:.3f} s, "
              f"SS-GAN phase 2 {p2:.3f} s ({p2 / p1:.2f}x phase 1), control {ctl:.3f} s.")
        print("\n" + discriminator_table([d / "ssgan" for d in seeds.values()]))


if __name__ == "__main__":
    main()
