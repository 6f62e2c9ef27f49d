"""The whole ``densekit bench`` run: sizes, sections, machine facts and the report's dict."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from densekit.bench.backends import bench_compile, bench_onnx
from densekit.bench.models import bench_models
from densekit.bench.sr import bench_sr
from densekit.bench.steps import paths
from densekit.bench.timing import peak_probes, progress
from densekit.bench.upscale import bench_upscale_memory
from densekit.engine.precision import cpu_has_fast_bf16, resolve_device
from densekit.errors import DensekitError

SIZES = {
    # matmul n (largest probed); conv probe (largest batch, channels, side); SR: batch, HR
    # patch (train), HR output side (inference); seg: (N, H, W) train, (H, W) inference;
    # synthetic CamVid-like images; timed runs: SR models sr_runs after sr_train_warmup steps (SR
    # inference: sr_rounds interleaved rounds after sr_warmup passes each), seg
    # models seg_runs (default path) / plain_runs (plain fp32 path) after seg_warmup steps (the
    # heap takes a few steps to settle); SS-GAN phase-1 and phase-2 steps interleaved;
    # torch.compile on a smaller batch.
    # seg training at 180x240 = CamVid at half resolution (pool5 6x8: not a multiple of 32)
    "full": {"matmul": 2048, "conv_probe": (8, 256, 32), "sr_batch": 16, "sr_patch": 48,
             "sr_out": 512, "sr_rounds": 9, "sr_warmup": 2, "seg": (2, 180, 240),
             "seg_infer": (224, 224),
             "seg_image": (360, 480), "sr_runs": 15, "sr_train_warmup": 2, "seg_runs": 5,
             "plain_runs": 3, "seg_warmup": 2,
             "upscale_out": ((1920, 1080), (8000, 6000)), "upscale_tile": None,
             "compile": True, "compile_batch": 4, "onnx": True, "set5": True,
             "seg_models": ("fcn8s_vgg16", "deeplab_r50", "swiftnet_r18"),
             "ssgan_generators": ("fcn8s_vgg16", "swiftnet_r18")},
    "quick": {"matmul": 128, "conv_probe": (2, 32, 8), "sr_batch": 2, "sr_patch": 16,
              "sr_out": 32, "sr_rounds": 2, "sr_warmup": 1, "seg": (2, 32, 32),
              "seg_infer": (32, 32), "seg_image": (40, 48),
              "sr_runs": 1, "sr_train_warmup": 1, "seg_runs": 2, "plain_runs": 1, "seg_warmup": 1,
              "upscale_out": ((64, 48), (128, 96)), "upscale_tile": 16,
              "compile": False, "compile_batch": 2, "onnx": True, "set5": False,
              # FCN-8s' 134M parameters (fc6/fc7) make even a tiny step take seconds
              "seg_models": ("deeplab_r50", "swiftnet_r18"), "ssgan_generators": ("swiftnet_r18",)},
}

# what --sections picks from; "models" is the per-model table with SS-GAN, the data pipelines
# and the torchvision peers (they share its batches and timings)
# "sr" first: it times inference as the inference commands run it, before the training steps
# of "models" switch the process's C allocator to training's reuse of freed memory
SECTIONS = ("sr", "models", "upscale", "compile", "onnx")


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


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name", from /proc/cpuinfo), or "" elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def huge_pages() -> str:
    """Whether PyTorch's CPU tensors of 2 MiB or more get transparent huge pages here: "on",
    "off (THP_MEM_ALLOC_ENABLE is not 1)", "off (no transparent huge pages)" or "off (kernel:
    never)" (see ``densekit.cli``)."""
    if os.environ.get("THP_MEM_ALLOC_ENABLE") != "1":
        return "off (THP_MEM_ALLOC_ENABLE is not 1)"
    try:
        mode = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().split("[")[1]
    except (OSError, IndexError):
        return "off (no transparent huge pages)"
    mode = mode.split("]")[0]
    return "on" if mode in ("always", "madvise") else f"off (kernel: {mode})"


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
    res = {"machine": {"device": dev.type,
                       "cpu": cpu_model() or platform.processor() or platform.machine(),
                       "threads": torch.get_num_threads(), "torch": torch.__version__,
                       "fast_bf16_cpu": cpu_has_fast_bf16(),
                       "default_path": f"{d['precision']} + channels_last",
                       "huge_pages": huge_pages()},
           "sizes": {k: v for k, v in sz.items() if not isinstance(v, bool)},
           "sections": list(sections), "quick": quick, "peak_gflops": peak,
           "peak_probes": probes}
    with tempfile.TemporaryDirectory(prefix="densekit-bench-") as tmp:
        if "sr" in sections:
            progress("SR cost per megapixel" + (", HDCN on Set5" if sz["set5"] else ""))
            res["sr"] = bench_sr(sz, dev)
        if "models" in sections:
            res.update(bench_models(sz, dev, peak, Path(tmp)))
        if "upscale" in sections:
            progress("tiled upscaling memory and time (sr upscale)")
            res["upscale_memory"] = bench_upscale_memory(sz)
        if "compile" in sections:
            progress("torch.compile")
            res["compile"] = bench_compile(sz, dev, Path(tmp)) if sz["compile"] else \
                {"skipped": "--quick"}
    if "onnx" in sections:
        progress("ONNX Runtime")
        res["onnx"] = bench_onnx(sz, dev) if sz["onnx"] else {"skipped": "--quick"}
    res["seconds"] = time.perf_counter() - t0
    return res
