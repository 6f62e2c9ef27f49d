#!/usr/bin/env python
"""Turn a trained segmentation model into densekit's shipped weights file, with its measured
numbers inside.

Usage: .venv/bin/python scripts/ship_seg_weights.py RUN_DIR_OR_WEIGHTS \\
           -o src/densekit/weights/camvid_swiftnet_r18.pt [--data ../shared/data/camvid] \\
           [--split val] [--half]

RUN_DIR_OR_WEIGHTS is a `densekit seg train` run folder (its weights.pt), a weights file or a
training checkpoint. The script

1. scores the weights on DATA/SPLIT with the code of `densekit seg eval` (one confusion matrix
   over the split, the data set type and resize the weights were trained with);
2. with --half, rounds the floating-point tensors to float16 (half the file), scores again,
   prints both and writes nothing unless the mIoU moved by at most --tolerance points;
3. times inference as `densekit seg predict` runs it (forward, softmax, argmax) on a 360x480
   image: the median of --runs runs after a warm-up;
4. writes the file atomically: the weights and ``meta`` = data set, classes, palette,
   normalisation, the training command (the run's log.txt, else rebuilt from the config as
   --set overrides; --command overrides both), the val results (split, image count, scoring
   resolution, precision, mIoU, pixel accuracy, per-class IoU) and the speed (ms per image,
   size, precision, device, CPU model, threads).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
from pathlib import Path

import torch
import yaml

from densekit.bench import machine_threads, time_runs
from densekit.config import build, to_dict
from densekit.data.image_io import image_size
from densekit.data.seg import IMAGENET_MEAN, IMAGENET_STD
from densekit.engine import logger
from densekit.engine.precision import Precision, resolve_device, resolve_precision
from densekit.errors import DensekitError
from densekit.tasks.seg import (SegConfig, SegDataConfig, SegModelConfig, build_generator,
                                read_seg_weights, split_dataset, write_seg_weights)
from densekit.tasks.seg_eval import evaluate_weights, normalize, predict_logits


def weights_path(src: Path) -> Path:
    if src.is_dir():
        if not (src / "weights.pt").is_file():
            raise DensekitError(f"{src}: no weights.pt in this run folder (is the run finished?)")
        return src / "weights.pt"
    if not src.is_file():
        raise DensekitError(f"{src}: no such run folder or weights file")
    return src


# ---- the training command --------------------------------------------------------------------
def logged_command(path: Path) -> tuple[str, Path] | None:
    """The newest training command in the log.txt of the run that wrote ``path`` (a run's
    weights.pt or checkpoints/step_N.pt)."""
    for log in (path.parent / "log.txt", path.parent.parent / "log.txt"):
        if not log.is_file():
            continue
        found = logger.logged_command(log.read_text(errors="replace"))
        if found:
            return found, log
    return None


def config_command(config: dict) -> str:
    """``densekit seg train`` with a --set for every value of ``config`` that differs from the
    defaults: the same run, whatever config file and overrides it was started with."""
    sets: list[str] = []

    def walk(cur: dict, ref: dict, prefix: str) -> None:
        for k, v in cur.items():
            r = ref.get(k)
            if isinstance(v, dict) and isinstance(r, dict) and r:  # a section of the schema
                walk(v, r, f"{prefix}{k}.")
            elif v != r:
                text = v if isinstance(v, str) and v and yaml.safe_load(v) == v else \
                    json.dumps(v)
                sets.append(f"{prefix}{k}={text}")

    walk(config, to_dict(SegConfig()), "")
    return "densekit seg train" + "".join(f" --set {shlex.quote(s)}" for s in sets)


def training_command(path: Path, state: dict, given: str | None) -> tuple[str, str]:
    """(command, where it came from)."""
    if given:
        return given, "--command"
    logged = logged_command(path)
    if logged:
        return logged[0], str(logged[1])
    if state.get("config"):
        return config_command(state["config"]), "rebuilt from the weights' config"
    raise DensekitError(f"{path}: no training command in a log.txt beside it and no config "
                        "in the file; pass --command")


# ---- measurements ----------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def half_state(state_dict: dict) -> dict:
    """The tensors as the file stores them with --half, back in float32."""
    return {k: v.half().float() if v.is_floating_point() else v for k, v in state_dict.items()}


def build_model(state: dict, state_dict: dict, prec: Precision) -> torch.nn.Module:
    model = build_generator(SegModelConfig(name=state["model"], options=state["options"]),
                            len(state["classes"]))
    model.load_state_dict(state_dict)
    return prec.prepare(model.eval())


def ms_per_image(model, state: dict, prec: Precision, size: tuple[int, int], runs: int) -> float:
    x = prec.input(normalize(torch.randint(0, 256, (1, 3, *size), dtype=torch.uint8,
                                           generator=torch.Generator().manual_seed(0))))

    def segment():
        predict_logits(model, x, num_classes=len(state["classes"]),
                       resize=state.get("resize", 1.0), autocast=prec.autocast).argmax(1)

    return 1000 * statistics.median(time_runs(segment, runs, warmup=2, device=prec.device))


def scoring_resolution(dataset) -> list[int] | str:
    sizes = {image_size(img) for img, _ in dataset.files}
    return list(sizes.pop()) if len(sizes) == 1 else "native (images of several sizes)"


def print_row(name: str, row: dict) -> None:
    print(f"{name}: mIoU {100 * row['miou']:.2f}, pixel accuracy {100 * row['pixel_acc']:.2f} "
          f"({row['images']} images, {row['seconds']:.0f} s)")


# ---- main ------------------------------------------------------------------------------------
def ship(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    src = weights_path(Path(args.source))
    state = read_seg_weights(src)
    state["path"] = src
    if not state.get("dataset"):
        raise DensekitError(f"{src}: the file does not say which data set it was trained on")
    command, origin = training_command(src, state, args.command)
    print(f"training command ({origin}): {command}")
    dcfg = build(SegDataConfig, (state.get("config") or {}).get("data", {"dataset":
                                                                           state["dataset"]}))
    split = args.split or dcfg.val_split
    dataset = split_dataset(dcfg, split, args.data)  # a data.val_groups run: its held-out groups
    device = resolve_device(args.device)
    prec = Precision(device, resolve_precision(args.precision, device), channels_last=True)
    kwargs = dict(dataset_name=state["dataset"], split=split, device=prec.device,
                  autocast=prec.autocast, channels_last=prec.channels_last,
                  limit=args.limit or None)
    model = build_model(state, state["state_dict"], prec)
    row = evaluate_weights(model, state, dataset, **kwargs)
    print_row(f"float32 weights on {state['dataset']} {split}", row)
    if args.half:  # the weights as the file stores them: scored, then timed
        model = build_model(state, half_state(state["state_dict"]), prec)
        row16 = evaluate_weights(model, state, dataset, **kwargs)
        print_row(f"float16 weights on {state['dataset']} {split}", row16)
        moved = 100 * abs(row16["miou"] - row["miou"])
        if not moved <= args.tolerance:
            raise DensekitError(f"--half: float16 weights move the mIoU by {moved:.2f} points "
                                f"(more than --tolerance {args.tolerance}); nothing written")
        row = row16
    size = tuple(args.size)
    ms = ms_per_image(model, state, prec, size, args.runs)
    speed = {"ms_per_image": ms, "size": list(size), "precision": prec.mode,
             "device": device.type, "threads": torch.get_num_threads(),
             "cpu": cpu_model(), "torch": str(torch.__version__)}
    if device.type == "cuda":
        speed["gpu"] = torch.cuda.get_device_name(device)
    print(f"inference: {ms:.1f} ms per {size[0]}x{size[1]} image ({device.type} {prec.mode}, "
          f"threads {speed['threads']}, {speed['cpu']})")
    state["meta"] = {
        "dataset": state["dataset"], "classes": list(state["classes"]),
        "palette": [list(c) for c in state["palette"]],
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                          "input": "RGB / 255, then (x - mean) / std"},
        "command": command,
        "val": {"split": split, "images": row["images"],
                "resolution": scoring_resolution(dataset), "precision": prec.mode,
                "miou": row["miou"], "pixel_acc": row["pixel_acc"],
                "mean_acc": row["mean_acc"], "iou": row["iou"]},
        "speed": speed,
        "stored": "float16" if args.half else "float32",
    }
    out = Path(args.output)
    write_seg_weights(out, state, half=args.half)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {state['meta']['stored']})")
    return state["meta"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", metavar="RUN_DIR_OR_WEIGHTS")
    ap.add_argument("-o", "--output", required=True, metavar="FILE")
    ap.add_argument("--data", help="data set root (default: the run's data.root)")
    ap.add_argument("--split", help="default: the run's data.val_split")
    ap.add_argument("--half", action="store_true", help="store float16 tensors")
    ap.add_argument("--tolerance", type=float, default=0.1,
                    help="largest mIoU change (points) that float16 storage may cause")
    ap.add_argument("--command", help="the training command (default: from the run)")
    ap.add_argument("--limit", type=int, default=0,
                    help="score the first N images only (a trial; the file records the count)")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=machine_threads(),
                    help="torch threads (default: this machine's cores)")
    ap.add_argument("--runs", type=int, default=10, help="timed inference runs")
    ap.add_argument("--size", type=int, nargs=2, default=[360, 480], metavar=("H", "W"),
                    help="image size of the timing")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.limit < 0 or args.tolerance < 0 or min(args.size) < 1:
        ap.error("--runs, --size must be >= 1; --limit, --tolerance >= 0")
    try:
        ship(args)
    except DensekitError as e:
        print(f"ship_seg_weights: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
