"""``densekit bench``: how fast every model trains and infers on this machine, in one run.

Everything is measured through the code that training and inference really use: the SR and
segmentation tasks (``SRTask`` / ``SegTask``, their ``train_step`` and batch pipelines) built
from configs, once as a typical reference script runs them (fp32, NCHW) and once on densekit's
default path (``precision: auto`` + channels_last, resolved for this machine). FLOPs come from
:class:`densekit.models.complexity.FlopCounter` (torch's ``FlopCounterMode`` with the backward
pass of grouped convolutions counted right; forward + backward for a training step) and are set
against the measured peak of the precision used: the best of an n x n matmul and a dense 3x3
convolution (channels_last), whichever is faster on this machine.

Both paths (and the torchvision peers) run in one process, under the engine's process-wide
settings (threads, the C allocator's reuse of freed memory: ``densekit.engine.memory``).

Times are medians of several runs after warm-up steps, reported with their min-max spread;
steps that are compared (SS-GAN phase 1 and phase 2) are interleaved. All on whatever else the
machine is doing: run it on an idle machine for numbers to publish.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from densekit.engine.precision import Precision, cpu_has_fast_bf16, resolve_device, \
    resolve_precision
from densekit.errors import DensekitError
from densekit.metrics.published import PUBLISHED_SR
from densekit.models.complexity import FlopCounter

SR_MODELS = ("hdcn", "srcnn", "vdsr", "rednet")
PEERS = ("fcn_resnet50", "deeplabv3_resnet50")
# published Set5 x2 PSNR (docs/protocols.md); HDCN has none there, ours is measured
PUBLISHED_SET5_X2 = {m: PUBLISHED_SR[(m, 2)]["Set5"][0] for m in ("bicubic", "srcnn", "vdsr",
                                                                     "rednet")}
SET5 = Path("../shared/data/sr/Set5")

SIZES = {
    # matmul n (largest probed); conv probe (largest batch, channels, side); SR: batch, HR
    # patch (train), HR output side (inference); seg: (N, H, W) train, (H, W) inference;
    # synthetic CamVid-like images; timed runs: SR models sr_runs after one warm-up step, seg
    # models seg_runs (default path) / plain_runs (plain fp32 path) after seg_warmup steps (the
    # heap takes a few steps to settle); SS-GAN phase-1 and phase-2 steps interleaved;
    # torch.compile on a smaller batch.
    # seg training at 180x240 = CamVid at half resolution (pool5 6x8: not a multiple of 32)
    "full": {"matmul": 2048, "conv_probe": (8, 256, 32), "sr_batch": 16, "sr_patch": 48,
             "sr_out": 256, "seg": (2, 180, 240), "seg_infer": (224, 224),
             "seg_image": (360, 480), "sr_runs": 5, "seg_runs": 5, "plain_runs": 3,
             "seg_warmup": 2,
             "upscale_out": ((640, 360), (3840, 2160)), "upscale_tile": None,
             "compile": True, "compile_batch": 4, "onnx": True, "set5": True,
             "seg_models": ("fcn8s_vgg16", "deeplab_r50", "swiftnet_r18"),
             "ssgan_generators": ("fcn8s_vgg16", "swiftnet_r18")},
    "quick": {"matmul": 128, "conv_probe": (2, 32, 8), "sr_batch": 2, "sr_patch": 16,
              "sr_out": 32, "seg": (2, 32, 32), "seg_infer": (32, 32), "seg_image": (40, 48),
              "sr_runs": 1, "seg_runs": 2, "plain_runs": 1, "seg_warmup": 1,
              "upscale_out": ((64, 48), (128, 96)), "upscale_tile": 16,
              "compile": False, "compile_batch": 2, "onnx": True, "set5": False,
              # FCN-8s' 134M parameters (fc6/fc7) make even a tiny step take seconds
              "seg_models": ("deeplab_r50", "swiftnet_r18"), "ssgan_generators": ("swiftnet_r18",)},
}
# what --sections picks from; "models" is the per-model table with SS-GAN, the data pipelines
# and the torchvision peers (they share its batches and timings)
SECTIONS = ("models", "sr", "upscale", "compile", "onnx")


# ---- timing helpers --------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_runs(fn, runs: int, warmup: int = 1, device=torch.device("cpu")) -> list[float]:
    """Wall times (seconds) of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


def inference_seconds(model, prec: Precision, x: torch.Tensor, runs: int = 3) -> float:
    """Median wall time of one no-grad forward pass on ``x`` (after a warm-up)."""
    model = prec.prepare(model.eval())
    x = prec.input(x)

    def fwd():
        with torch.no_grad(), prec.autocast():
            model(x)

    return statistics.median(time_runs(fwd, runs, device=prec.device))


def inference_ms_per_megapixel(model, prec: Precision, out_size: int, runs: int = 3) -> float:
    """Median wall time of one SR forward pass on an ``out_size``^2 output, per output Mpx."""
    lr = torch.rand(1, model.channels, out_size // model.scale, out_size // model.scale)
    pixels = (lr.shape[-1] * model.scale) * (lr.shape[-2] * model.scale)
    return inference_seconds(model, prec, lr, runs) * 1000 / (pixels / 1e6)


def spread(times: list[float]) -> dict:
    """Median, min and max (milliseconds) and the number of ``times`` (seconds)."""
    return {"ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times),
            "max_ms": 1e3 * max(times), "runs": len(times)}


def ratio_spread(num: list[float], den: list[float]) -> dict:
    """Median, min and max of the pairwise ratios num[i] / den[i] (interleaved runs)."""
    r = [a / b for a, b in zip(num, den, strict=True)]
    return {"median": statistics.median(r), "min": min(r), "max": max(r), "pairs": len(r)}


def forward_flops(model, x: torch.Tensor) -> int:
    counter = FlopCounter()
    with torch.no_grad(), counter:
        model.eval()(x)
    return int(counter.get_total_flops())


def _counted(fn) -> int:
    counter = FlopCounter()
    with counter:
        fn()
    return int(counter.get_total_flops())


def matmul_gflops(n: int, dtype: torch.dtype, device: torch.device, runs: int = 3,
                  budget_s: float = 2.0) -> tuple[float, int]:
    """(best-of-``runs`` GFLOP/s, size) of an n x n matmul (2 n^3 FLOPs); the probe starts at
    256 (or ``n`` if smaller) and doubles up to ``n`` while the next size's product would take
    at most ``budget_s`` (bf16 on CPUs without bf16 instructions is two orders of magnitude
    slower than fp32: probing from the top would cost minutes)."""
    size = min(n, 256)
    while True:
        a = torch.rand(size, size, device=device, dtype=dtype)
        b = torch.rand(size, size, device=device, dtype=dtype)
        (probe,) = time_runs(lambda: a @ b, 1, warmup=1, device=device)
        if 2 * size > n or probe * 8 > budget_s:  # the next size up costs 8x
            break
        size *= 2
    return 2 * size ** 3 / min(time_runs(lambda: a @ b, runs, device=device)) / 1e9, size


def conv_gflops(shape: tuple[int, int, int], dtype: torch.dtype, device: torch.device,
                runs: int = 3, budget_s: float = 2.0) -> tuple[float, int]:
    """(best-of-``runs`` GFLOP/s, batch) of a dense 3x3 convolution (stride 1, padding 1,
    C -> C channels, no bias) on a channels_last (batch, C, side, side) input in ``dtype``:
    2 * batch * side^2 * C^2 * 9 FLOPs. ``shape`` = (largest batch, C, side); the batch starts
    at 1 and doubles while the next one's convolution would take at most ``budget_s`` / runs.
    On some CPUs oneDNN's convolutions run faster than the matmul (fp32 on AMD EPYC, bf16 with
    AMX): the peak is the better of the two probes."""
    n, c, side = shape
    w = torch.rand(c, c, 3, 3, device=device, dtype=dtype).contiguous(
        memory_format=torch.channels_last)
    batch = 1
    while True:
        x = torch.rand(batch, c, side, side, device=device, dtype=dtype).contiguous(
            memory_format=torch.channels_last)

        def conv():
            return F.conv2d(x, w, padding=1)

        (probe,) = time_runs(conv, 1, warmup=1, device=device)
        if 2 * batch > n or 2 * probe * runs > budget_s:
            break
        batch *= 2
    best = min(time_runs(conv, runs, warmup=0, device=device)) if probe * runs <= budget_s \
        else probe
    return 2 * batch * side * side * c * c * 9 / best / 1e9, batch


def peak_probes(sz: dict, device: torch.device) -> dict:
    """Per precision (fp32, bf16): both probes and the peak = the better one."""
    out = {}
    for key, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        mm, n = matmul_gflops(sz["matmul"], dtype, device)
        cv, batch = conv_gflops(sz["conv_probe"], dtype, device)
        out[key] = {"matmul_gflops": mm, "matmul_n": n, "conv3x3_gflops": cv,
                    "conv3x3_input": "{}x{}x{s}x{s}".format(batch, *sz["conv_probe"][1:],
                                                            s=sz["conv_probe"][2]),
                    "peak_gflops": max(mm, cv), "set_by": "conv3x3" if cv > mm else "matmul"}
    return out


# ---- paths -----------------------------------------------------------------------------------
def paths(device: torch.device) -> dict[str, dict]:
    """The two engine settings compared: a typical reference script and densekit's default."""
    auto = resolve_precision("auto", device)
    return {"plain": {"precision": "fp32", "channels_last": False},
            "default": {"precision": auto, "channels_last": True}}


def _engine_sets(path: dict, device: torch.device) -> list[str]:
    return [f"engine.precision={path['precision']}",
            f"engine.channels_last={str(path['channels_last']).lower()}",
            f"engine.device={device}", "engine.tensorboard=false", "engine.progress=false"]


def _sr_folder(root: Path, side: int) -> Path:
    """A few smooth random images to crop SR training patches from."""
    from PIL import Image

    folder = root / "sr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        small = rng.random((side // 8 + 2, side // 8 + 2, 3))
        img = Image.fromarray((small * 255).astype(np.uint8)).resize((side, side),
                                                                     Image.BICUBIC)
        img.save(folder / f"im{i}.png")
    return folder


def sr_task(name: str, path: dict, sz: dict, folder: Path, device, compile: bool = False):
    from densekit.config import load_config
    from densekit.tasks.sr import SRConfig, SRTask

    sets = [f"model.name={name}", "model.scale=2", f"data.train=[{folder}]",
            f"data.val=[{folder}]", f"data.patch_size={sz['sr_patch']}", "data.workers=0",
            f"train.batch_size={sz['sr_batch']}", "train.epochs=1", "train.iters_per_epoch=100",
            f"engine.compile={str(compile).lower()}"] + _engine_sets(path, device)
    return SRTask(load_config(SRConfig, None, sets))


def seg_task(name: str, path: dict, sz: dict, device, phase2: bool = False):
    from densekit.config import load_config
    from densekit.tasks.seg import SegConfig, SegTask

    n, h, w = sz["seg"]
    ih, iw = sz["seg_image"]
    runs = sz["seg_warmup"] + max(sz["seg_runs"], sz["plain_runs"])
    sets = [f"model.name={name}", "data.dataset=synthetic",
            f"data.options={{num_images: 4, size: [{ih}, {iw}], num_classes: 11}}",
            f"data.crop_size=[{h}, {w}]", "data.check=false", "data.workers=0",
            f"train.batch_size={n}", f"train.iters_per_epoch={runs}", "train.phase1_epochs=1",
            f"train.phase2_epochs={int(phase2)}"] + _engine_sets(path, device)
    return SegTask(load_config(SegConfig, None, sets))


def _step_times(task, steps: range) -> list[float]:
    """Wall times of ``task.train_step`` on each step's batch (the batch is made first)."""
    out = []
    for step in steps:
        batch = task.data[step]
        t0 = time.perf_counter()
        task.train_step(batch, step)
        _sync(task.precision.device)
        out.append(time.perf_counter() - t0)
    return out


def interleaved_step_times(task, starts: list[int], runs: int, warmup: int = 1
                           ) -> list[list[float]]:
    """Wall times of ``task.train_step``, one list per entry of ``starts`` (e.g. the first step
    of SS-GAN phase 1 and of phase 2): round r runs step ``start + r`` of every start, in
    reversed order every other round (neither kind always follows the other); the first
    ``warmup`` rounds are not timed. Interleaving exposes the compared steps to the same
    machine state, so their ratio holds where their absolute times drift."""
    out = [[] for _ in starts]
    for r in range(warmup + runs):
        order = list(enumerate(starts))
        for j, start in order[::-1] if r % 2 else order:
            (t,) = _step_times(task, range(start + r, start + r + 1))
            if r >= warmup:
                out[j].append(t)
    return out


def _step_flops(task, step: int) -> int:
    batch = task.data[step]  # outside the counter: the SR pipeline's resize uses matmuls
    return _counted(lambda: task.train_step(batch, step))


def _batch_seconds(data, steps: range) -> float:
    t0 = time.perf_counter()
    for step in steps:
        data[step]
    return (time.perf_counter() - t0) / len(steps)


def _progress(what: str) -> None:
    print(f"bench: {what}", file=sys.stderr, flush=True)


# ---- sections --------------------------------------------------------------------------------
def bench_models(sz: dict, device, peak: dict, tmp: Path) -> dict:
    """Per model: train step and inference, plain vs default path, FLOPs and peak fraction;
    also the SS-GAN phase-1/phase-2 steps, the data pipelines and the torchvision peers."""
    from densekit.tasks.seg import SegModelConfig, build_generator

    folder = _sr_folder(tmp, max(96, 2 * sz["sr_patch"]))
    rows, data, ssgan, batches = [], {}, [], {}
    for name in SR_MODELS + sz["seg_models"]:
        is_sr = name in SR_MODELS
        key = "sr" if is_sr else "seg"
        bs = sz["sr_batch"] if is_sr else sz["seg"][0]
        row = {"model": name}
        _progress(name)
        # an SS-GAN generator's task also runs phase 2 (G + adversarial network A), its steps
        # interleaved with phase 1's
        adv = {"model": f"ssgan:{name}", "generator": name} \
            if name in sz["ssgan_generators"] else None
        for label, path in paths(device).items():
            if is_sr:
                task = sr_task(name, path, sz, folder, device)
                net, runs = task.model, sz["sr_runs"]
                side = sz["sr_out"] // 2
                x = torch.rand(1, 1, side, side)
            else:
                task = seg_task(name, path, sz, device, phase2=adv is not None)
                net = task.G
                runs = sz["seg_runs"] if label == "default" else sz["plain_runs"]
                x = torch.rand(1, 3, *sz["seg_infer"])
            prec = task.precision
            times = interleaved_step_times(task, [0] if adv is None else [0, task.p1], runs,
                                           warmup=1 if is_sr else sz["seg_warmup"])
            row[label] = _train_times(prec, times[0])
            if adv is not None:  # phase 2: A's update, then G's adversarial update
                adv[label] = _train_times(prec, times[1])
                adv[label]["phase2_over_phase1"] = ratio_spread(times[1], times[0])
            base = net
            if adv is not None:  # G after SS-GAN steps vs a freshly built baseline G
                adv[label]["infer_ms"] = 1e3 * inference_seconds(net, prec, x)
                base = prec.prepare(build_generator(SegModelConfig(name=name), 11))
            row[label]["infer_ms"] = 1e3 * inference_seconds(base, prec, x)
            if label == "plain":
                row["train_flops"] = _step_flops(task, 0)
                row["infer_flops"] = forward_flops(base, prec.input(x))
                if adv is not None:
                    adv["train_flops"] = _step_flops(task, task.p1)
                    adv["infer_flops"] = forward_flops(net, prec.input(x))
                if key not in data:  # one SR and one seg pipeline
                    data[key] = {"loader_samples_per_s": bs / _batch_seconds(task.data,
                                                                             range(3)),
                                 "what": ("random HR crops + MATLAB bicubic LR (x2, Y)" if is_sr
                                          else "synthetic CamVid-like scenes, random scale "
                                               "0.5-2, crop, flip, normalise")}
                    batches[key] = task.data[0]
        if is_sr:
            row["train_input"] = (f"{bs}x1x{sz['sr_patch'] // 2}x"
                                  f"{sz['sr_patch'] // 2} LR")
            row["infer_input"] = f"1x1x{sz['sr_out'] // 2}x{sz['sr_out'] // 2} LR"
        else:
            n, h, w = sz["seg"]
            row["train_input"] = f"{n}x3x{h}x{w}"
            row["infer_input"] = "1x3x{}x{}".format(*sz["seg_infer"])
        for r in (row, adv) if adv else (row,):
            if r is adv:
                r["train_input"] = row["train_input"] + " G+A"
                r["infer_input"] = row["infer_input"]
            _ratios(r, peak)
            rows.append(r)
        if adv is not None:
            ssgan.append(_ssgan_summary(row, adv))
        if "step_samples_per_s" not in data[key]:
            data[key]["step_samples_per_s"] = bs / (row["default"]["train_ms"] / 1e3)
            data[key]["ratio"] = data[key]["loader_samples_per_s"] / \
                data[key]["step_samples_per_s"]
    by = {r["model"]: r for r in rows}
    return {"models": rows, "ssgan": ssgan, "data": data,
            "peers": bench_peers(sz, device, batches["seg"], by["deeplab_r50"])}


def _train_times(prec: Precision, times: list[float]) -> dict:
    st = spread(times)
    return {"precision": prec.mode, "channels_last": prec.channels_last, "train_ms": st["ms"],
            "train_ms_min": st["min_ms"], "train_ms_max": st["max_ms"], "train_runs": st["runs"]}


def _ssgan_summary(base: dict, ss: dict) -> dict:
    """Phase 2 (G + A) vs phase 1 (G alone) of one generator: the median of the ratios of
    interleaved step pairs with their spread, FLOPs, and G's inference after SS-GAN steps."""
    d, p = ss["default"]["phase2_over_phase1"], ss["plain"]["phase2_over_phase1"]
    return {
        "generator": ss["generator"],
        "phase1_ms": base["default"]["train_ms"], "phase2_ms": ss["default"]["train_ms"],
        "phase2_over_phase1": d["median"], "phase2_over_phase1_min": d["min"],
        "phase2_over_phase1_max": d["max"], "pairs": d["pairs"],
        "phase2_over_phase1_plain": p["median"], "phase2_over_phase1_plain_min": p["min"],
        "phase2_over_phase1_plain_max": p["max"], "pairs_plain": p["pairs"],
        "phase1_flops": base["train_flops"], "phase2_flops": ss["train_flops"],
        "flops_ratio": ss["train_flops"] / base["train_flops"],
        "target": 1.3,
        # G after phase-2 steps vs a freshly built phase-1-only G: same module class
        "infer_flops_ssgan_g": ss["infer_flops"], "infer_flops_baseline": base["infer_flops"],
        "infer_ms_ssgan_g": ss["default"]["infer_ms"],
        "infer_ms_baseline": base["default"]["infer_ms"]}


def _ratios(row: dict, peak: dict) -> None:
    row["train_speedup"] = row["plain"]["train_ms"] / row["default"]["train_ms"]
    row["infer_speedup"] = row["plain"]["infer_ms"] / row["default"]["infer_ms"]
    for label in ("plain", "default"):
        r = row[label]
        p = peak[r["precision"] if r["precision"] in peak else "fp32"] * 1e9
        r["train_gflops"] = row["train_flops"] / (r["train_ms"] / 1e3) / 1e9
        r["infer_gflops"] = row["infer_flops"] / (r["infer_ms"] / 1e3) / 1e9
        r["train_peak_fraction"] = r["train_gflops"] * 1e9 / p
        r["infer_peak_fraction"] = r["infer_gflops"] * 1e9 / p


def bench_peers(sz: dict, device, batch, ours: dict) -> list[dict]:
    """torchvision's own models, trained as its segmentation reference script does: fp32 NCHW,
    aux loss on (weight 0.5), SGD lr 0.02 momentum 0.9 wd 1e-4, on our deeplab_r50's batch."""
    import torchvision.models.segmentation as tvseg

    images, masks = (t.to(device) for t in batch)
    out = []
    for name in PEERS:
        _progress(f"torchvision {name}")
        torch.manual_seed(0)
        model = getattr(tvseg, name)(weights=None, weights_backbone=None, num_classes=11,
                                     aux_loss=True).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)

        def step():
            o = model(images)
            loss = F.cross_entropy(o["out"], masks, ignore_index=255) + \
                0.5 * F.cross_entropy(o["aux"], masks, ignore_index=255)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        ms = 1e3 * statistics.median(time_runs(step, sz["plain_runs"], device=device))
        out.append({"model": f"torchvision {name}", "config": "fp32 NCHW, aux loss on",
                    "train_input": "{}x3x{}x{}".format(*sz["seg"]), "train_ms": ms,
                    "train_flops": _counted(step)})
    tv = out[1]["train_ms"]
    out.append({"model": "densekit deeplab_r50 (default path)", "config": "auto precision, "
                "channels_last, no aux head", "train_input": out[1]["train_input"],
                "train_ms": ours["default"]["train_ms"], "train_flops": ours["train_flops"],
                "relative_to_deeplabv3_resnet50": ours["default"]["train_ms"] / tv})
    return out


def bench_sr(sz: dict, device) -> list[dict]:
    """ms per output megapixel (default path) and PSNR gain per unit of cost."""
    from densekit.models.complexity import flops_per_pixel
    from densekit.models.sr import build_sr_model

    d = paths(device)["default"]
    prec = Precision(device, d["precision"], d["channels_last"])
    measured = measure_hdcn_set5(prec) if sz["set5"] else None
    out = []
    for name in ("bicubic",) + SR_MODELS:
        m = build_sr_model(name, 2)
        r = {"model": name, "flops_per_pixel": flops_per_pixel(m, (48, 48)),
             "ms_per_megapixel": inference_ms_per_megapixel(m, prec, sz["sr_out"])}
        if name in PUBLISHED_SET5_X2:
            r["set5_x2_psnr"], r["psnr_source"] = PUBLISHED_SET5_X2[name], "published"
        elif measured is not None:
            r["set5_x2_psnr"], r["psnr_source"] = measured, "measured (shipped weights)"
        if "set5_x2_psnr" in r and name != "bicubic":
            gain = r["set5_x2_psnr"] - PUBLISHED_SET5_X2["bicubic"]
            r["db_over_bicubic"] = gain
            r["db_per_mflop_per_px"] = gain / (r["flops_per_pixel"] / 1e6)
            r["db_per_s_per_mpx"] = gain / (r["ms_per_megapixel"] / 1e3)
        out.append(r)
    return out


def measure_hdcn_set5(prec: Precision) -> float | None:
    """Set5 x2 PSNR of the shipped HDCN (``densekit sr eval``'s code), if the data is here."""
    from densekit.tasks.sr import load_sr_model, shipped_weights
    from densekit.tasks.sr_eval import evaluate_folder

    if not SET5.is_dir() or shipped_weights("hdcn", 2) is None:
        return None
    model = prec.prepare(load_sr_model("hdcn", 2))
    return evaluate_folder(model, SET5, 2, device=prec.device, autocast=prec.autocast)["psnr"]


def bench_compile(sz: dict, device, tmp: Path) -> dict:
    """HDCN training step, default path, eager vs ``engine.compile: true``, on a small batch
    (compilation, not the step, is what costs here)."""
    folder = tmp / "sr" if (tmp / "sr").is_dir() else _sr_folder(tmp, 2 * sz["sr_patch"])
    path = paths(device)["default"]
    sz = dict(sz, sr_batch=sz["compile_batch"])
    side = sz["sr_patch"] // 2
    res = {"input": f"{sz['sr_batch']}x1x{side}x{side} LR"}
    for label, flag in (("eager", False), ("compiled", True)):
        try:
            task = sr_task("hdcn", path, sz, folder, device, compile=flag)
            t0 = time.perf_counter()
            _step_times(task, range(1))
            first = time.perf_counter() - t0
            times = _step_times(task, range(1, 1 + sz["sr_runs"]))
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


# ---- tiled upscaling memory (in a fresh process) -----------------------------------------------
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
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    for w, h in sz["upscale_out"]:
        code = ("import json, sys; from densekit.bench import upscale_memory_child as f; "
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


# ---- the whole run ---------------------------------------------------------------------------
def parse_sections(text: str | None) -> tuple[str, ...]:
    """``--sections`` (a comma list of SECTIONS; None = all) as a tuple in SECTIONS' order."""
    if text is None:
        return SECTIONS
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in SECTIONS]
    if bad or not names:
        raise DensekitError(f"--sections: expected a comma list of {', '.join(SECTIONS)}, "
                            f"got {text!r}")
    return tuple(s for s in SECTIONS if s in names)


def machine_threads() -> int:
    """The CPU cores this process may run on (the default ``--threads``)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


def run_bench(quick: bool = False, device: str = "auto", threads: int = 0,
              sections: tuple[str, ...] = SECTIONS) -> dict:
    sz = SIZES["quick" if quick else "full"]
    dev = resolve_device(device)
    torch.set_num_threads(threads or machine_threads())
    t0 = time.perf_counter()
    torch.manual_seed(0)
    probes = peak_probes(sz, dev)
    peak = {k: p["peak_gflops"] for k, p in probes.items()}
    d = paths(dev)["default"]
    res = {"machine": {"device": dev.type, "cpu": platform.processor() or platform.machine(),
                       "threads": torch.get_num_threads(), "torch": torch.__version__,
                       "fast_bf16_cpu": cpu_has_fast_bf16(),
                       "default_path": f"{d['precision']} + channels_last"},
           "sizes": {k: v for k, v in sz.items() if not isinstance(v, bool)},
           "sections": list(sections), "quick": quick, "peak_gflops": peak,
           "peak_probes": probes}
    with tempfile.TemporaryDirectory(prefix="densekit-bench-") as tmp:
        if "models" in sections:
            res.update(bench_models(sz, dev, peak, Path(tmp)))
        if "sr" in sections:
            _progress("SR cost per megapixel" + (", HDCN on Set5" if sz["set5"] else ""))
            res["sr"] = bench_sr(sz, dev)
        if "upscale" in sections:
            _progress("tiled upscaling memory")
            res["upscale_memory"] = bench_upscale_memory(sz)
        if "compile" in sections:
            _progress("torch.compile")
            res["compile"] = bench_compile(sz, dev, Path(tmp)) if sz["compile"] else \
                {"skipped": "--quick"}
    if "onnx" in sections:
        _progress("ONNX Runtime")
        res["onnx"] = bench_onnx(sz, dev) if sz["onnx"] else {"skipped": "--quick"}
    res["seconds"] = time.perf_counter() - t0
    return res


# ---- printing --------------------------------------------------------------------------------
def _g(flops: float) -> str:
    return f"{flops / 1e9:,.1f}"


def print_table(res: dict, file=None) -> None:
    out = file or sys.stdout

    def p(line=""):
        print(line, file=out)

    m = res["machine"]
    p(f"machine: {m['device']} {m['cpu']}, {m['threads']} threads, torch {m['torch']}; "
      f"fast bf16 CPU: {'yes' if m['fast_bf16_cpu'] else 'no'}; densekit default path: "
      f"{m['default_path']}")
    p("peak (the better of an n x n matmul and a channels_last 3x3 conv, best of 3 each): "
      + ", ".join(f"{k} {q['peak_gflops']:,.1f} GFLOP/s ({q['set_by']}; matmul "
                  f"{q['matmul_gflops']:,.1f} at n={q['matmul_n']}, conv3x3 "
                  f"{q['conv3x3_gflops']:,.1f} on {q['conv3x3_input']})"
                  for k, q in res["peak_probes"].items()))
    if "models" in res:
        _print_models(res, p)
    if "sr" in res:
        _print_sr(res["sr"], p)
    if "upscale_memory" in res:
        _print_upscale(res["upscale_memory"], p)
    if "data" in res:
        p()
        p("Data pipeline alone vs the training step (default path), samples/s")
        for k, d in res["data"].items():
            p(f"  {k:<4} {d['what']:<68} loader {d['loader_samples_per_s']:8.1f}   step "
              f"{d['step_samples_per_s']:7.1f}   = {d['ratio']:.1f}x")
    if "compile" in res or "onnx" in res:
        p()
    if "compile" in res:
        _print_compile(res["compile"], p)
    if "onnx" in res:
        _print_onnx(res["onnx"], p)
    p()
    p(f"bench took {res['seconds']:.0f} s ({', '.join(res['sections'])})"
      + (" (--quick: tiny sizes, numbers not meaningful)" if res["quick"] else ""))


def _print_models(res: dict, p) -> None:
    p()
    p("Training step and inference, plain = fp32 NCHW (a typical reference script), "
      "default = densekit default path")
    p(f"{'model':<18} {'train input':<22} {'GFLOP':>7} {'plain ms':>9} {'default ms':>10} "
      f"{'spread':>6} {'speedup':>7} {'%peak':>6} | {'infer input':<14} {'GFLOP':>6} "
      f"{'plain ms':>9} {'default ms':>10} {'speedup':>7} {'%peak':>6}")
    for r in res["models"]:
        pl, df = r["plain"], r["default"]
        p(f"{r['model']:<18} {r['train_input']:<22} {_g(r['train_flops']):>7} "
          f"{pl['train_ms']:>9,.0f} {df['train_ms']:>10,.0f} {_spread(df):>6} "
          f"{r['train_speedup']:>6.2f}x {100 * df['train_peak_fraction']:>5.1f}% | "
          f"{r['infer_input']:<14} {_g(r['infer_flops']):>6} {pl['infer_ms']:>9,.1f} "
          f"{df['infer_ms']:>10,.1f} {r['infer_speedup']:>6.2f}x "
          f"{100 * df['infer_peak_fraction']:>5.1f}%")
    runs = {r["default"]["train_runs"] for r in res["models"]}
    p("(train ms: median of {} steps after warm-up steps (SR 1, seg {}), plain path {}; spread: "
      "(max - min) / median of the default path's steps; %peak: achieved FLOP/s of the "
      "default path / measured peak of its precision; FLOPs by densekit's FlopCounter "
      "(torch's FlopCounterMode, grouped-conv backward fixed), training = forward + backward; "
      "ssgan:G = phase-2 step of G + its adversarial network)".format(
          "/".join(map(str, sorted(runs))), res["sizes"]["seg_warmup"],
          "/".join(map(str, sorted({r["plain"]["train_runs"] for r in res["models"]})))))
    p()
    p("Peers (training step, same batch)")
    for r in res["peers"]:
        rel = r.get("relative_to_deeplabv3_resnet50")
        p(f"  {r['model']:<38} {r['config']:<42} {r['train_input']:<12} "
          f"{_g(r['train_flops']):>7} GFLOP {r['train_ms']:>9,.0f} ms"
          + (f"  = {rel:.2f}x torchvision deeplabv3_resnet50" if rel else ""))
    for s in res["ssgan"]:
        p()
        p(f"SS-GAN ({s['generator']}): phase-2 / phase-1 step = {s['phase2_over_phase1']:.2f}x "
          f"(median of {s['pairs']} interleaved pairs, {s['phase2_over_phase1_min']:.2f}-"
          f"{s['phase2_over_phase1_max']:.2f}; target <= {s['target']}x), "
          f"{s['phase2_ms']:,.0f} vs {s['phase1_ms']:,.0f} ms; plain path "
          f"{s['phase2_over_phase1_plain']:.2f}x ({s['phase2_over_phase1_plain_min']:.2f}-"
          f"{s['phase2_over_phase1_plain_max']:.2f}); FLOPs ratio {s['flops_ratio']:.2f}x (A "
          f"forward on real + fake, A backward, A forward + backward into G)")
        p(f"  inference of the G after SS-GAN steps vs a freshly built baseline G: "
          f"{_g(s['infer_flops_ssgan_g'])} vs {_g(s['infer_flops_baseline'])} GFLOP, "
          f"{s['infer_ms_ssgan_g']:,.1f} vs {s['infer_ms_baseline']:,.1f} ms")


def _spread(r: dict) -> str:
    return f"{100 * (r['train_ms_max'] - r['train_ms_min']) / r['train_ms']:.0f}%"


def _print_sr(rows: list[dict], p) -> None:
    p()
    p("Super-resolution x2 (default path; PSNR on Set5 x2, gain over bicubic's 33.66 dB)")
    p(f"  {'model':<8} {'MFLOP/px':>9} {'ms/Mpx out':>11} {'PSNR':>6} {'source':<27} "
      f"{'dB/(MFLOP/px)':>13} {'dB/(s/Mpx)':>10}")
    for r in rows:
        ps = f"{r['set5_x2_psnr']:.2f}" if "set5_x2_psnr" in r else "-"
        a = f"{r['db_per_mflop_per_px']:.2f}" if "db_per_mflop_per_px" in r else "-"
        b = f"{r['db_per_s_per_mpx']:.2f}" if "db_per_s_per_mpx" in r else "-"
        p(f"  {r['model']:<8} {r['flops_per_pixel'] / 1e6:>9.3f} {r['ms_per_megapixel']:>11,.0f}"
          f" {ps:>6} {r.get('psnr_source', '-'):<27} {a:>13} {b:>10}")


def _print_upscale(u: dict, p) -> None:
    p()
    if "error" in u:
        p(f"Tiled upscaling memory: error {u['error']}")
    else:
        sizes = ", ".join(f"{r['out'][0]}x{r['out'][1]}: +{r['peak_growth_bytes'] / 2**20:,.0f}"
                          f" MiB in {r['seconds']:.1f} s" for r in u["runs"])
        p(f"Tiled upscaling ({u['model']}, LR tile {u['tile_lr']}), peak RSS growth per output "
          f"size: {sizes}")
        p(f"  = {u['fixed_bytes'] / 2**20:,.0f} MiB (model working memory, set by the tile, "
          f"independent of image size) + {u['bytes_per_output_pixel']:.0f} bytes per output "
          f"pixel (the full-size float32 image planes)")


def _print_compile(c: dict, p) -> None:
    if "skipped" in c:
        p(f"torch.compile: skipped ({c['skipped']})")
        return

    def fmt(e):
        return e.get("error") or (f"{e['train_ms']:,.0f} ms/step (first step "
                                  f"{e['first_step_s']:.1f} s)")
    p(f"torch.compile, HDCN train step on {c['input']} (default path): eager "
      f"{fmt(c['eager'])}; compiled {fmt(c['compiled'])}"
      + (f"; speedup {c['speedup']:.2f}x" if "speedup" in c else "")
      + f"; engine.compile default: {c['default']}")


def _print_onnx(o: dict, p) -> None:
    if "error" in o or "skipped" in o:
        p(f"ONNX Runtime: {o.get('error') or 'skipped (' + o['skipped'] + ')'}")
    else:
        p(f"ONNX Runtime vs PyTorch, {o['model']} inference on {o['input']}: "
          f"{o['onnxruntime_ms']:,.1f} ms vs {o['pytorch_ms']:,.1f} ms (PyTorch/ORT "
          f"{o['pytorch_over_onnxruntime']:.2f}x), max abs diff {o['max_abs_diff']:.1e}")
