"""Memory and time of ``densekit sr upscale`` end to end (a JPEG file in, a PNG file out), each
output size measured in a fresh process, against the targets: peak RSS growth at most the
model's tile working memory + :data:`TARGET_BYTES_PER_PIXEL` bytes per output pixel, and
end-to-end time per output megapixel at most :data:`TARGET_TIME_RATIO` x the model's own."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from densekit.bench.steps import paths
from densekit.bench.timing import inference_ms_per_megapixel
from densekit.engine.precision import Precision, resolve_device

TARGET_BYTES_PER_PIXEL = 10  # the 8-bit output image (4 bytes a pixel in PIL) + the input
TARGET_TIME_RATIO = 1.3  # end-to-end ms per output Mpx / the model's own on one tile


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def _malloc_trim() -> None:
    """Return the heap's free memory to the system (glibc; elsewhere nothing)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak() -> int:
    """Free heap memory back to the system, the peak RSS reset to now; returns the RSS."""
    _malloc_trim()  # memory freed earlier would otherwise hide part of the growth
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak RSS (VmHWM), Linux >= 4.0
        f.write("5")
    return _rss_bytes()


def _peak_growth(fn) -> int:
    """Peak RSS growth while ``fn()`` runs."""
    base = _reset_peak()
    with torch.no_grad():
        fn()
    return _peak_rss_bytes() - base


def smooth_jpeg(path: Path, w: int, h: int, seed: int = 0) -> Path:
    """A smooth random RGB photo-like JPEG of w x h pixels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = (rng.random((h // 16 + 2, w // 16 + 2, 3)) * 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.int16)
    img = img + rng.integers(-4, 5, img.shape, dtype=np.int16)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=92)
    return path


def upscale_memory_child(out_w: int, out_h: int, tile: int | None, threads: int = 0) -> dict:
    """``upscale_files`` with HDCN x2 on a (out_w/2 x out_h/2) JPEG: peak RSS growth, seconds,
    and the model's own ms per output Mpx on one tile (run in a fresh process)."""
    if threads:
        torch.set_num_threads(threads)
    from densekit.models.sr import build_sr_model
    from densekit.tasks.sr import load_sr_model, shipped_weights
    from densekit.tasks.sr_upscale import default_tile, model_runner, upscale_files

    device = resolve_device("auto")
    d = paths(device)["default"]
    prec = Precision(device, d["precision"], d["channels_last"])
    model = load_sr_model("hdcn", 2) if shipped_weights("hdcn", 2) else \
        build_sr_model("hdcn", 2).eval()
    model = prec.prepare(model)
    tile = default_tile(2) if tile is None else tile
    with tempfile.TemporaryDirectory(prefix="densekit-bench-") as tmp:
        tmp = Path(tmp)
        warm = smooth_jpeg(tmp / "warm.jpg", 2 * tile, 2 * tile, seed=1)  # first-call allocations
        upscale_files(model, [str(warm)], tmp / "warm_out", tile=tile, autocast=prec.autocast,
                      device=device, progress=False)
        model_ms = inference_ms_per_megapixel(model, prec, tile * model.scale)
        src = smooth_jpeg(tmp / "photo.jpg", out_w // 2, out_h // 2)
        m = int(model.context)  # one interior tile with its context, as sr upscale runs it
        lr = torch.rand(1, model.channels, tile + 2 * m, tile + 2 * m)
        tile_bytes = _peak_growth(lambda: model_runner(model, prec.autocast, device)(lr))
        base = _reset_peak()
        t0 = time.perf_counter()
        res = upscale_files(model, [str(src)], tmp / "out", tile=tile, autocast=prec.autocast,
                            device=device, progress=False)
        seconds = time.perf_counter() - t0
        peak = _peak_rss_bytes() - base
    if res["failed"]:
        raise RuntimeError(res["failed"][0])
    return {"out": [out_w, out_h], "tile": tile, "seconds": seconds, "peak_growth_bytes": peak,
            "tile_working_bytes": tile_bytes,
            "bytes_per_output_pixel": (peak - tile_bytes) / (out_w * out_h),
            "ms_per_megapixel": seconds * 1e3 / (out_w * out_h / 1e6),
            "model_ms_per_megapixel": model_ms}


def bench_upscale_memory(sz: dict) -> dict:
    """``sr upscale`` end to end at two output sizes, each in a fresh process: peak RSS growth
    = A + B * output pixels, with A the model's working memory on one tile (measured alone, in
    the same process) and B the bytes held per output pixel (at the larger size; also the slope
    between the two sizes); and the end-to-end time per output megapixel of the larger size
    against the model's own on one tile."""
    runs = []
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # the folder holding densekit/
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    for w, h in sz["upscale_out"]:
        code = ("import json, sys; from densekit.bench.upscale import upscale_memory_child as f; "
                f"print(json.dumps(f({w}, {h}, {sz['upscale_tile']!r}, "
                f"{torch.get_num_threads()})))")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, check=False)
        if p.returncode != 0:
            return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:200]}
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    (r1, r2) = runs
    n1, n2 = (r["out"][0] * r["out"][1] for r in runs)
    per_px = (r2["peak_growth_bytes"] - r1["peak_growth_bytes"]) / (n2 - n1)
    return {"model": "hdcn x2", "input": "RGB JPEG file, PNG file out (Y through the model, "
                                         "CbCr bicubic)",
            "runs": runs, "tile_lr": r2["tile"], "tile_working_bytes": r2["tile_working_bytes"],
            "bytes_per_output_pixel": r2["bytes_per_output_pixel"],
            "fit_bytes_per_output_pixel": per_px,
            "fit_fixed_bytes": r2["peak_growth_bytes"] - per_px * n2,
            "ms_per_megapixel": r2["ms_per_megapixel"],
            "model_ms_per_megapixel": r2["model_ms_per_megapixel"],
            "time_ratio": r2["ms_per_megapixel"] / r2["model_ms_per_megapixel"],
            "target_bytes_per_output_pixel": TARGET_BYTES_PER_PIXEL,
            "target_time_ratio": TARGET_TIME_RATIO}
