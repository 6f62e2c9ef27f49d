"""How ``densekit bench`` measures: wall times with their spread, FLOPs, and the peak FLOP/s of
the machine (the better of a matmul and a 3x3 convolution probe)."""

from __future__ import annotations

import statistics
import sys
import time

import torch
import torch.nn.functional as F

from densekit.engine.precision import Precision
from densekit.models.complexity import FlopCounter


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_runs(fn, runs: int, warmup: int = 1, device=torch.device("cpu")) -> list[float]:
    """Wall times (seconds) of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def forward_pass(model, prec: Precision, x: torch.Tensor):
    """One no-grad forward pass of ``model`` on ``x`` on the ``prec`` path, as a function."""
    model = prec.prepare(model.eval())
    x = prec.input(x)

    def fwd():
        with torch.no_grad(), prec.autocast():
            model(x)

    return fwd


def inference_seconds(model, prec: Precision, x: torch.Tensor, runs: int = 3) -> float:
    """Median wall time of one no-grad forward pass on ``x`` (after a warm-up)."""
    return statistics.median(time_runs(forward_pass(model, prec, x), runs, device=prec.device))


def inference_pass(model, prec: Precision, out_size: int):
    """(fn, megapixels): one no-grad SR forward pass to an ``out_size``^2 output, and its size."""
    side = out_size // model.scale
    fwd = forward_pass(model, prec, torch.rand(1, model.channels, side, side))
    return fwd, (side * model.scale) ** 2 / 1e6


def inference_ms_per_megapixel(model, prec: Precision, out_size: int, runs: int = 3) -> float:
    """Median wall time of one SR forward pass on an ``out_size``^2 output, per output Mpx."""
    fn, mpx = inference_pass(model, prec, out_size)
    return statistics.median(time_runs(fn, runs, device=prec.device)) * 1000 / mpx


def interleaved_times(passes: dict, rounds: int, warmup: int = 1,
                      device=torch.device("cpu"), settle: int = 0) -> dict[str, list[float]]:
    """Wall times (seconds) of each ``passes[name][0]()``, ``rounds`` times, run in rounds of
    one call each (the order rotated every round) after ``warmup`` untimed calls each. With
    ``settle``, each timed call follows that many untimed calls of the same function, so that
    it does not pay for the memory state the previous function left behind."""
    names = list(passes)
    for name in names:
        time_runs(passes[name][0], 0, warmup, device)
    out = {n: [] for n in names}
    for i in range(rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            out[name] += time_runs(passes[name][0], 1, settle, device)
    return out


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


def counted_flops(fn) -> int:
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


def progress(what: str) -> None:
    print(f"bench: {what}", file=sys.stderr, flush=True)
