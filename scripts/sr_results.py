#!/usr/bin/env python
"""Regenerate the super-resolution result tables of docs/results/results-sr.md in one command
(`make results-sr`):

1. the shipped HDCN weights (x2, x3, x4) against the published networks trained on the same 291
   images, with the quality target: at or above RED30 at x2 and x4, above VDSR at x3 (no RED30
   x3 is published);
2. the equal-budget HDCN recipe table, from the finished runs of `scripts/sr_experiments.sh
   recipe` (skipped, and left as it is in the document, when they are not on this machine);
3. the learning curve of HDCN x2 on the paper's full schedule (`scripts/sr_experiments.sh
   paper`), finished or not: Set5 as validated in the run, then Set5 and Set14 of its final
   weights (unfinished: its newest checkpoint) by the protocol (skipped likewise);
4. the real-photo weights (hdcn_real_x2, hdcn_real_x4) against bicubic and the clean weights on
   clean, JPEG-compressed and noisy LR inputs (`sr eval --degrade`), with their targets.

Every PSNR / SSIM is measured now by `densekit sr eval --precision fp32 --json` (the protocol of
docs/protocols.md 1); the published numbers come from densekit.metrics.published.

    .venv/bin/python scripts/sr_results.py [--recipe runs/sr_budget]
        [--paper runs/sr_paper/hdcn_x2_kaiming] [--doc FILE] [--print]
        [--blocks shipped recipe paper real]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import run_logs
import torch

from densekit.engine import checkpoint, logger
from densekit.io import atomic_write_text
from densekit.metrics.published import PUBLISHED_SR

ROOT = Path(__file__).resolve().parent.parent
DATA = ["../shared/data/sr/Set5", "../shared/data/sr/Set14"]
SETS = ("Set5", "Set14")
TARGET = {2: "rednet", 3: "vdsr", 4: "rednet"}
NAMES = {"bicubic": "Bicubic", "srcnn": "SRCNN", "vdsr": "VDSR", "rednet": "RED30"}
MARKS = {"shipped": ("<!-- sr-shipped:start -->", "<!-- sr-shipped:end -->"),
         "recipe": ("<!-- sr-recipe:start -->", "<!-- sr-recipe:end -->"),
         "paper": ("<!-- sr-paper:start -->", "<!-- sr-paper:end -->"),
         "real": ("<!-- sr-real:start -->", "<!-- sr-real:end -->")}
# recipe arms (scripts/sr_experiments.sh recipe): folder -> what differs from mse_s0
ARMS = {"mse_s0": "MSE loss, step schedule, 16 x 48x48 (the shipped recipe's settings)",
        "mse_s1": "the same (seed noise)",
        "l1": "L1 loss",
        "l1_s1": "L1 loss",
        "ema": "EMA of the weights (decay 0.999)",
        "cosine": "cosine schedule (1e-3 to 1e-5)",
        "p64b9": "64x64 crops, batch 9 (the same pixels per step)",
        "resize": "crops of the images downscaled by 0.5-1.0 (data.resize_range)",
        "resize_s1": "crops of the images downscaled by 0.5-1.0 (data.resize_range)"}


def evaluate(model: str, scale: int, weights: str | None = None,
             degrade: str = "") -> tuple[dict, str]:
    """{set: (psnr, ssim)} by `densekit sr eval`, and the command as a user types it."""
    args = ["sr", "eval", "--model", model, "--scale", str(scale)]
    if weights:
        args += ["--weights", weights]
    for d in DATA:
        args += ["--data", d]
    if degrade:
        args += ["--degrade", degrade]
    args += ["--precision", "fp32", "--json"]
    res = subprocess.run([sys.executable, "-m", "densekit", *args], cwd=ROOT,
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"densekit {shlex.join(args)} failed:\n{res.stderr}")
    return ({r["dataset"]: (r["psnr"], r["ssim"]) for r in json.loads(res.stdout)},
            "densekit " + shlex.join(args))


def cell(v) -> str:
    return f"{v[0]:.2f} / {v[1]:.4f}"


def shipped_table() -> list[str]:
    lines = ["| x | network | Set5 PSNR / SSIM | Set14 PSNR / SSIM |", "|---|---|---|---|"]
    verdicts = []
    for scale in (2, 3, 4):
        ours, cmd = evaluate("hdcn", scale)
        bic, _ = evaluate("bicubic", scale)
        lines.append(f"| {scale} | Bicubic (ours) | {cell(bic['Set5'])} | {cell(bic['Set14'])} |")
        for m in ("srcnn", "vdsr", "rednet"):
            pub = PUBLISHED_SR.get((m, scale))
            if pub:
                lines.append(f"| {scale} | {NAMES[m]} (published) | {cell(pub['Set5'])} | "
                             f"{cell(pub['Set14'])} |")
        lines.append(f"| {scale} | **HDCN (shipped)** | **{cell(ours['Set5'])}** | "
                     f"**{cell(ours['Set14'])}** |")
        t = TARGET[scale]
        gaps = [ours[s][0] - PUBLISHED_SR[(t, scale)][s][0] for s in SETS]
        verdicts.append(f"x{scale}: {gaps[0]:+.2f} / {gaps[1]:+.2f} dB against the published "
                        f"{NAMES[t]} (Set5 / Set14): "
                        + ("target met" if min(gaps) >= 0 else "target not met"))
    template = cmd.replace("--model hdcn --scale 4", "--model M --scale S")
    return lines + ["", "Shipped HDCN against the target: " + "; ".join(verdicts) + ".", "",
                    f"Measured with `{template}` for M = hdcn (the shipped weights) and bicubic, "
                    "S = 2, 3, 4."]


# the inputs of the real-photo table: the protocol's LR image as it is, then degraded by
# `densekit sr eval --degrade`
REAL_INPUTS = ("", "jpeg:95", "jpeg:90", "jpeg:70", "jpeg:50", "noise:5")
# the real-photo weights' targets per scale: (input, against, by at least dB). x2: at or above
# the clean weights at quality 90, 1.0 / 0.8 dB over bicubic at 70 / 50; x4: above the clean
# weights and 0.5 dB over bicubic at 70 and 50
REAL_TARGETS = {2: [("jpeg:90", "clean", 0.0), ("jpeg:70", "bicubic", 1.0),
                    ("jpeg:50", "bicubic", 0.8)],
                4: [("jpeg:70", "clean", 0.0), ("jpeg:70", "bicubic", 0.5),
                    ("jpeg:50", "clean", 0.0), ("jpeg:50", "bicubic", 0.5)]}


def real_table() -> list[str] | None:
    """Bicubic, the clean and the real-photo HDCN weights on clean, JPEG and noisy inputs, x2
    and x4 (skipped when no real-photo weights ship)."""
    from densekit.models.zoo import default_weights

    lines, verdicts, cmd = [], [], ""
    for scale in (2, 4):
        real = default_weights("hdcn", scale=scale, degradation="real")
        if real is None:
            return None
        lines += [f"x{scale}, PSNR (dB) Set5 / Set14:", "",
                  "| LR input | Bicubic | HDCN `hdcn_x%d` | HDCN-real `%s` | real - bicubic | "
                  "real - clean |" % (scale, real.name), "|---|---|---|---|---|---|"]
        for spec in REAL_INPUTS:
            bic, _ = evaluate("bicubic", scale, degrade=spec)
            clean, _ = evaluate("hdcn", scale, f"hdcn_x{scale}", degrade=spec)
            ours, cmd = evaluate("hdcn", scale, real.name, degrade=spec)

            def pair(r):
                return " / ".join(f"{r[s][0]:.2f}" for s in SETS)

            def gain(a, b):
                return " / ".join(f"{a[s][0] - b[s][0]:+.2f}" for s in SETS)

            lines.append(f"| {spec or 'lossless'} | {pair(bic)} | {pair(clean)} | "
                         f"**{pair(ours)}** | {gain(ours, bic)} | {gain(ours, clean)} |")
            for _, ref, margin in (t for t in REAL_TARGETS[scale] if t[0] == spec):
                base = bic if ref == "bicubic" else clean
                worst = min(ours[s][0] - base[s][0] for s in SETS)
                verdicts.append(f"x{scale} {spec}: real - {ref} >= {margin:+.1f} dB: "
                                + ("met" if worst >= margin - 1e-9 else "not met")
                                + f" ({worst:+.2f} on the worse set)")
        lines.append("")
    template = cmd.replace("--scale 4", "--scale S").replace("hdcn_real_x4", "W")
    template = template.rsplit("--degrade", 1)[0] + "--degrade SPEC --precision fp32 --json"
    return lines + ["Targets: " + "; ".join(verdicts) + ".", "",
                    f"Measured with `{template}` for W = the weights of each column (`--model "
                    "bicubic` without `--weights` for Bicubic), S = 2 and 4, SPEC = the row "
                    "(none for lossless)."]


def recipe_table(folder: Path) -> list[str] | None:
    arms = [n for n in ARMS if (folder / n / "weights.pt").is_file()]
    if not arms:
        return None
    res, seed, cmd, speed = {}, {}, "", {}
    for n in arms:
        w = torch.load(folder / n / "weights.pt", map_location="cpu", weights_only=True)
        cfg = w["meta"]["config"]
        res[n], cmd = evaluate("hdcn", w["scale"], str(folder / n / "weights.pt"))
        seed[n] = cfg["engine"]["seed"]
        speed[n] = run_logs.seconds_per_step(logger.read_metrics(folder / n),
                                             cfg["train"]["batch_size"])
    mse = {seed[n]: res[n] for n in ("mse_s0", "mse_s1") if n in res}

    def gap(r, base):
        return " / ".join(f"{r[s][0] - base[s][0]:+.2f}" for s in SETS)

    lines = ["| arm | seed | Set5 PSNR / SSIM | Set14 PSNR / SSIM | vs MSE of the same seed "
             "(dB, Set5 / Set14) | s / step |", "|---|---|---|---|---|---|"]
    for n in arms:
        d = gap(res[n], mse[seed[n]]) if seed[n] in mse and not n.startswith("mse") else "-"
        lines.append(f"| {ARMS[n]} | {seed[n]} | {cell(res[n]['Set5'])} | "
                     f"{cell(res[n]['Set14'])} | {d} | {speed[n]:.2f} |")
    out = lines + [""]
    if len(mse) == 2:
        out.append("Seed noise: the MSE arm's seeds 0 and 1 differ by "
                   + " / ".join(f"{abs(mse[0][s][0] - mse[1][s][0]):.2f}" for s in SETS)
                   + " dB (Set5 / Set14).")
        base = {s: sum(mse[k][s][0] for k in (0, 1)) / 2 for s in SETS}
        for n in arms:
            if n.startswith("mse") or f"{n}_s1" not in res:
                continue
            mean = {s: (res[n][s][0] + res[f"{n}_s1"][s][0]) / 2 for s in SETS}
            out.append(f"{ARMS[n]}, mean of seeds 0 and 1 against the MSE arm's mean: "
                       + " / ".join(f"{mean[s] - base[s]:+.2f}" for s in SETS) + " dB.")
    out.append(f"Weights: `{folder}/ARM/weights.pt`; evaluated with "
               f"`{cmd.replace(arms[-1], 'ARM')}`.")
    return out


def paper_curve(run: Path) -> list[str] | None:
    """Set5 by step of a (possibly unfinished) paper-schedule run, from its metrics.jsonl, with
    the lr in force and the mean training loss of the logged windows since the previous row."""
    if not (run / "metrics.jsonl").is_file():
        return None
    rows = logger.read_metrics(run)
    val = [r for r in rows if r["split"] == "val"]
    train = [r for r in rows if r["split"] == "train"]
    if not val or not train:
        return None
    ckpts = checkpoint.list_checkpoints(run / "checkpoints")
    if not ckpts:
        return None
    cfg = torch.load(ckpts[-1], map_location="cpu", weights_only=False)["config"]
    t = cfg["train"]
    batch, patch = t["batch_size"], cfg["data"]["patch_size"]
    total = t["epochs"] * t["iters_per_epoch"]
    lr = {r["step"]: r["lr_model"] for r in train}
    lines = ["| step | HR pixels seen (millions) | Set5 PSNR / SSIM | lr | training loss |",
             "|---|---|---|---|---|"]
    before = 0
    for r in val:
        at = max((k for k in lr if k <= r["step"]), default=min(lr))
        losses = [w["loss"] for w in train if before < w["step"] <= r["step"] and "loss" in w]
        loss = f"{statistics.fmean(losses):.3e}" if losses else "-"
        before = r["step"]
        lines.append(f"| {r['step']:,} | {r['step'] * batch * patch * patch / 1e6:,.0f} | "
                     f"{r['psnr_Set5']:.2f} / {r['ssim_Set5']:.4f} | {lr[at]:.2g} | {loss} |")
    last = max(r["step"] for r in train)
    sps = run_logs.seconds_per_step(rows, batch)
    busy = f"{run_logs.busy_hours(rows, batch):.1f} hours of training"
    rate = f"a median {sps:.2f} s per step (batch {batch} / samples per second of the logged windows)"
    where = (f"Finished at step {last:,} after {busy}; {rate}." if last >= total else
             f"Logged to step {last:,} of {total:,} after {busy}; {rate}, so the "
             f"{total - last:,} steps left are {(total - last) * sps / 3600:.1f} hours at that "
             "rate.")
    return lines + ["", f"{where} {run_starts(run)}Run folder: `{run}`."]


def paper_block(run: Path) -> list[str] | None:
    """The learning curve and the protocol's numbers of the paper-schedule run."""
    lines = paper_curve(run)
    return None if lines is None else lines + ["", paper_protocol(run)]


def paper_protocol(run: Path) -> str:
    """The paper-schedule run's final weights (or, unfinished, its newest checkpoint) by the
    evaluation protocol (float32, Set5 and Set14), against the published RED30 at x2."""
    final = run / "weights.pt"
    newest = checkpoint.list_checkpoints(run / "checkpoints")[-1]
    res, cmd = evaluate("hdcn", 2, str(final if final.is_file() else newest))
    red = PUBLISHED_SR[("rednet", 2)]
    what = "Its final weights" if final.is_file() else \
        f"Its newest checkpoint (step {checkpoint.checkpoint_step(newest):,})"
    return (f"{what} by the protocol (float32): Set5 {cell(res['Set5'])}, Set14 "
            f"{cell(res['Set14'])}; the published RED30 x2: {cell(red['Set5'])}, "
            f"{cell(red['Set14'])}. Measured with `{cmd}`.")


def run_starts(run: Path) -> str:
    """"Started at step 0 and resumed at steps 800 and 1,500 on cpu, bf16, channels_last; resumed
    at step 2,000 on cuda, bf16. " from the run's log.txt (every start or resume, grouped while
    the device stays the same: a resumed run may have moved to other hardware), or ""."""
    log = run / "log.txt"
    starts = logger.run_starts(log.read_text(errors="replace")) if log.is_file() else []
    parts = []
    for i, (device, group) in enumerate(itertools.groupby(starts, key=lambda s: s[2])):
        steps = [f"{s:,}" for s, _, _ in group]  # consecutive starts on the same device
        said = [f"started at step {steps.pop(0)}"] if i == 0 else []
        if steps:
            said.append(f"resumed at step{'s' * (len(steps) > 1)} " + and_list(steps))
        parts.append(" and ".join(said) + f" on {device}")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + ". " if parts else ""


def and_list(names: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def replace_block(text: str, key: str, lines: list[str]) -> str:
    start, end = MARKS[key]
    if start not in text or end not in text:
        sys.exit(f"{start} ... {end} not found in the document")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return head + start + "\n" + "\n".join(lines) + "\n" + end + tail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", type=Path, default=Path("runs/sr_budget"),
                    help="folder of the recipe runs (scripts/sr_experiments.sh recipe)")
    ap.add_argument("--paper", type=Path, default=Path("runs/sr_paper/hdcn_x2_kaiming"),
                    help="run folder of scripts/sr_experiments.sh paper")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs/results/results-sr.md")
    ap.add_argument("--print", action="store_true", help="print the tables, leave the document")
    ap.add_argument("--blocks", nargs="+", choices=list(MARKS), default=list(MARKS),
                    help="regenerate only these tables (default: all)")
    args = ap.parse_args()
    make = {"shipped": shipped_table, "recipe": lambda: recipe_table(args.recipe),
            "paper": lambda: paper_block(args.paper), "real": real_table}
    blocks = {key: make[key]() for key in args.blocks}
    if args.print:
        for lines in blocks.values():
            print("\n".join(lines or ["(no runs)"]) + "\n")
        return
    text = args.doc.read_text()
    for key, lines in blocks.items():
        if lines is not None:
            text = replace_block(text, key, lines)
    atomic_write_text(args.doc, text)
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
