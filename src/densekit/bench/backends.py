"""Other ways to run a model against eager PyTorch: ``torch.compile`` (HDCN training step) and
ONNX Runtime (HDCN inference)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from densekit.bench.steps import paths, sr_folder, sr_task, step_times
from densekit.bench.timing import inference_seconds, time_runs
from densekit.engine.precision import Precision


def bench_compile(sz: dict, device, tmp: Path) -> dict:
    """HDCN training step, default path, eager vs ``engine.compile: true``, on a small batch
    (compilation, not the step, is what costs here)."""
    folder = tmp / "sr" if (tmp / "sr").is_dir() else sr_folder(tmp, 2 * sz["sr_patch"])
    path = paths(device)["default"]
    sz = dict(sz, sr_batch=sz["compile_batch"])
    side = sz["sr_patch"] // 2
    res = {"input": f"{sz['sr_batch']}x1x{side}x{side} LR"}
    for label, flag in (("eager", False), ("compiled", True)):
        try:
            task = sr_task("hdcn", path, sz, folder, device, compile=flag)
            t0 = time.perf_counter()
            step_times(task, range(1))
            first = time.perf_counter() - t0
            times = step_times(task, range(1, 1 + sz["sr_runs"]))
            res[label] = {"first_step_s": first, "train_ms": 1e3 * statistics.median(times)}
        except Exception as e:  # inductor needs a C++ compiler; report what happened
            res[label] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
    if "train_ms" in res["eager"] and "train_ms" in res["compiled"]:
        res["speedup"] = res["eager"]["train_ms"] / res["compiled"]["train_ms"]
    res["default"] = "off"
    return res


def bench_onnx(sz: dict, device) -> dict:
    """HDCN x2 inference: ONNX Runtime (CPU) vs PyTorch default path, same input."""
    try:
        from densekit.export import max_abs_difference, onnx_session, to_onnx
        from densekit.models.sr import build_sr_model
        from densekit.tasks.sr import load_sr_model, shipped_weights

        model = load_sr_model("hdcn", 2) if shipped_weights("hdcn", 2) else \
            build_sr_model("hdcn", 2).eval()
        t0 = time.perf_counter()
        session = onnx_session(to_onnx(model, "sr", 1))
        export_s = time.perf_counter() - t0
    except Exception as e:
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
    side = sz["sr_out"] // 2
    lr = torch.rand(1, 1, side, side)
    feed = {session.get_inputs()[0].name: lr.numpy()}
    ort_s = statistics.median(time_runs(lambda: session.run(None, feed), 3))
    d = paths(device)["default"]
    torch_s = inference_seconds(model, Precision(device, d["precision"], d["channels_last"]), lr)
    return {"model": "hdcn x2", "input": f"1x1x{side}x{side}", "export_s": export_s,
            "onnxruntime_ms": 1e3 * ort_s, "pytorch_ms": 1e3 * torch_s,
            "pytorch_over_onnxruntime": torch_s / ort_s,
            "max_abs_diff": max_abs_difference(model, session, "sr", 1)}
