"""Write the model zoo's manifest (src/densekit/weights/zoo.json) from the shipped weights files,
measuring every metric with the project's own evaluation commands, and the README's model table
from that manifest.

    .venv/bin/python scripts/zoo_manifest.py [--sr-data ../shared/data/sr] \
        [--seg-data ../shared/data/camvid] [--train-command NAME=COMMAND ...] [--readme README.md]

Each weights file in src/densekit/weights/*.pt becomes one record: its SHA-256, parameters, FLOPs
per output pixel, scale or classes/palette/normalisation, and metrics (SR: `densekit sr eval
--precision fp32` on Set5 and Set14; segmentation: `densekit seg eval --precision fp32` on CamVid
val), each with the exact command that produced it. The training command comes from the weights
file's metadata when it records one, else from --train-command, else from the manifest's current
record of the same name; a file with none is an error. ``--readme-only`` rewrites the README table
from the current manifest without measuring.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from densekit.io import atomic_write_text
from densekit.models.complexity import count_params, flops_per_pixel
from densekit.models.seg import build_seg_model
from densekit.models.sr import build_sr_model
from densekit.models.zoo import MANIFEST, file_sha256, markdown_table, weights_from_dict

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = ROOT / "src" / "densekit" / "weights"
DENSEKIT = [sys.executable, "-m", "densekit"]
README_START, README_END = "<!-- model-zoo:start -->", "<!-- model-zoo:end -->"


def run_json(args: list[str]):
    """Run ``densekit ARGS`` and parse its JSON output; the command as a user types it."""
    res = subprocess.run(DENSEKIT + args, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"densekit {' '.join(args)} failed:\n{res.stderr}")
    return json.loads(res.stdout), "densekit " + shlex.join(args)


# the input the real-photo weights are measured on: LR images saved as JPEG of this quality
REAL_PHOTO_EVAL = "jpeg:70"


def degradation(state: dict) -> str:
    """"real" for weights trained with data.degrade (any probability above 0), else
    "bicubic"."""
    degrade = ((state.get("meta") or {}).get("config") or {}).get("data", {}).get("degrade", {})
    return "real" if any(v > 0 for k, v in degrade.items() if k.endswith("_prob")) else "bicubic"


def sr_record(name: str, state: dict, data: str, path: Path) -> dict:
    model, scale = state["model"], state["scale"]
    net = build_sr_model(model, scale, state["channels"], **state["options"])
    kind = degradation(state)
    args = ["sr", "eval", "--model", model, "--scale", str(scale),
            "--data", f"{data}/Set5", "--data", f"{data}/Set14", "--precision", "fp32", "--json"]
    if kind == "real":
        args += ["--weights", str(path.relative_to(ROOT)), "--degrade", REAL_PHOTO_EVAL]
    rows, command = run_json(args)
    suffix = f" {REAL_PHOTO_EVAL}" if kind == "real" else ""
    return {"task": "sr", "model": model, "scale": scale, "channels": state["channels"],
            "degradation": kind,
            "params": count_params(net), "flops_per_pixel": flops_per_pixel(net, (48, 48)),
            "metrics": {r["dataset"] + suffix: {"psnr": round(r["psnr"], 4),
                                                "ssim": round(r["ssim"], 5)} for r in rows},
            "eval_command": command}


def seg_record(name: str, state: dict, data: str) -> dict:
    meta = state.get("meta") or {}
    net = build_seg_model(state["model"], len(state["classes"]), **state["options"])
    row, command = run_json(["seg", "eval", "--data", data, "--split", "val",
                             "--precision", "fp32", "--json"])
    return {"task": "seg", "model": state["model"], "dataset": meta.get("dataset"),
            "classes": list(state["classes"]), "palette": [list(c) for c in state["palette"]],
            "normalization": {k: meta["normalization"][k] for k in ("mean", "std")},
            "params": count_params(net),
            "flops_per_pixel": flops_per_pixel(net, (360, 480), channels=3),
            "metrics": {f"{row['dataset']} {row['split']}": {
                "miou": round(row["miou"], 5), "pixel_acc": round(row["pixel_acc"], 5),
                "iou": {k: round(v, 5) for k, v in row["iou"].items()}}},
            "eval_command": command}


def update_readme(readme: Path, records: list) -> None:
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        sys.exit(f"{readme}: no {README_START} ... {README_END} markers")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    table = markdown_table([weights_from_dict(r) for r in records])
    new = f"{head}{README_START}\n{table}{README_END}{tail}"
    atomic_write_text(readme, new)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sr-data", default="../shared/data/sr",
                   help="folder with Set5/ and Set14/ (default: ../shared/data/sr)")
    p.add_argument("--seg-data", default="../shared/data/camvid",
                   help="CamVid in the SegNet layout (default: ../shared/data/camvid)")
    p.add_argument("--train-command", action="append", default=[], metavar="NAME=COMMAND",
                   help="the training command of weights NAME (its file name without .pt)")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md",
                   help="README whose model table is rewritten (default: README.md)")
    p.add_argument("--readme-only", action="store_true",
                   help="only rewrite the README table from the current manifest")
    args = p.parse_args()
    manifest = WEIGHTS_DIR / MANIFEST
    old = {e["name"]: e for e in json.loads(manifest.read_text())} if manifest.exists() else {}
    if args.readme_only:
        update_readme(args.readme, list(old.values()))
        return
    given = dict(item.split("=", 1) for item in args.train_command)
    records = []
    for path in sorted(WEIGHTS_DIR.glob("*.pt")):
        name = path.stem
        state = torch.load(path, map_location="cpu", weights_only=True)
        meta = state.get("meta") or {}
        train = meta.get("command") or given.get(name) or old.get(name, {}).get("train_command")
        if not train:
            sys.exit(f"{path.name}: no training command; pass --train-command {name}=...")
        if state["format"].startswith("densekit-sr"):
            rec = sr_record(name, state, args.sr_data, path)
        else:
            rec = seg_record(name, state, args.seg_data)
        rec.update(name=name, file=path.name, sha256=file_sha256(path), train_command=train)
        print(f"{name}: {rec['metrics']}", file=sys.stderr)
        records.append(rec)
    atomic_write_text(manifest, json.dumps(records, indent=1) + "\n")
    update_readme(args.readme, records)


if __name__ == "__main__":
    main()
