"""Peak memory of tiled upscaling, each output size measured in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from densekit.bench.steps import paths
from densekit.engine.precision import Precision, resolve_device


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def upscale_memory_child(out_w: int, out_h: int, tile: int | None, threads: int = 0) -> dict:
    """Peak RSS growth while ``upscale_image`` runs HDCN x2 on a (out_h/2, out_w/2) RGB image."""
    if threads:
        torch.set_num_threads(threads)
    from densekit.models.sr import build_sr_model
    from densekit.tasks.sr import load_sr_model, shipped_weights
    from densekit.tasks.sr_upscale import default_tile, upscale_image

    device = resolve_device("auto")
    d = paths(device)["default"]
    prec = Precision(device, d["precision"], d["channels_last"])
    model = load_sr_model("hdcn", 2) if shipped_weights("hdcn", 2) else \
        build_sr_model("hdcn", 2).eval()
    model = prec.prepare(model)
    tile = default_tile(2) if tile is None else tile
    warm = torch.rand(3, 2 * tile, 2 * tile)  # first-call allocations (kernels, caches)
    upscale_image(model, warm, tile=tile, autocast=prec.autocast, device=device)
    del warm
    img = torch.rand(3, out_h // 2, out_w // 2)
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak RSS (VmHWM), Linux >= 4.0
        f.write("5")
    base = _rss_bytes()
    t0 = time.perf_counter()
    upscale_image(model, img, tile=tile, autocast=prec.autocast, device=device)
    seconds = time.perf_counter() - t0
    return {"out": [out_w, out_h], "tile": tile, "seconds": seconds,
            "peak_growth_bytes": _peak_rss_bytes() - base}


def bench_upscale_memory(sz: dict) -> dict:
    """Peak extra memory of tiled upscaling at two output sizes, each in a fresh process:
    peak = A + B * output pixels, with B the full-size image buffers (input, output, YCbCr
    planes) and A the model's working memory, bounded by the tile size."""
    runs = []
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # the folder holding densekit/
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    for w, h in sz["upscale_out"]:
        code = ("import json, sys; from densekit.bench.upscale import upscale_memory_child as f; "
                f"print(json.dumps(f({w}, {h}, {sz['upscale_tile']!r}, {torch.get_num_threads()})))")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, check=False)
        if p.returncode != 0:
            return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:200]}
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    (r1, r2) = runs
    n1, n2 = (r["out"][0] * r["out"][1] for r in runs)
    per_px = (r2["peak_growth_bytes"] - r1["peak_growth_bytes"]) / (n2 - n1)
    return {"model": "hdcn x2 (RGB image: Y through the model, CbCr bicubic)", "runs": runs,
            "bytes_per_output_pixel": per_px,
            "fixed_bytes": r2["peak_growth_bytes"] - per_px * n2,
            "tile_lr": r2["tile"]}
