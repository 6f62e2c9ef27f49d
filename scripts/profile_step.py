"""Where a training step's time goes: per-op profile of one model's step on densekit's default
path, grouped into kinds of work, at the same input as `densekit bench`.

    .venv/bin/python scripts/profile_step.py swiftnet_r18            # seg phase-1 step
    .venv/bin/python scripts/profile_step.py swiftnet_r18 --phase2   # SS-GAN phase-2 step
    .venv/bin/python scripts/profile_step.py hdcn --top 15

Prints the median step time without the profiler, then the share of the profiled steps' CPU
time per kind (convolutions and matrix products, dtype casts, optimizer, normalisation,
elementwise, resampling, loss, other) and the top ops, and the convolutions' own FLOP rate
against the bench's peak probe of the default path's precision.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from densekit.bench.run import SIZES, machine_threads
from densekit.bench.steps import paths, seg_task, sr_folder, sr_task, step_flops, step_times
from densekit.bench.timing import peak_probes
from densekit.models.sr import SR_MODELS

KINDS = (  # first match wins; op names as torch.profiler reports them
    ("resampling", ("upsample", "pool", "interpolate", "pixel_shuffle")),
    ("conv/matmul", ("convolution", "mm", "addmm", "bmm", "col2im", "im2col", "linear")),
    ("optimizer", ("adam", "sgd", "optimizer", "foreach")),
    ("normalisation", ("batch_norm", "layer_norm", "group_norm")),
    ("loss", ("softmax", "nll", "cross_entropy", "mse", "l1_loss", "binary_cross")),
    ("elementwise", ("threshold", "relu", "clamp", "add", "mul", "sub", "div", "fill", "zero",
                     "bernoulli", "dropout", "where", "sigmoid", "leaky", "cat", "sum", "mean")),
)


CASTS = ("copy_", "_to_copy", "to")  # autocast's weight casts, grads cast back to fp32


def kind_of(name: str) -> str:
    op = name.split("::")[-1].lower()
    if op in CASTS:
        return "dtype casts"
    for kind, keys in KINDS:
        if any(k in op for k in keys):
            return kind
    return "other"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="an SR or segmentation model name (as in `densekit models`)")
    ap.add_argument("--phase2", action="store_true", help="profile the SS-GAN phase-2 step")
    ap.add_argument("--path", choices=["default", "plain"], default="default",
                    help="densekit's default path or plain fp32 NCHW")
    ap.add_argument("--steps", type=int, default=3, help="profiled steps (after warm-up)")
    ap.add_argument("--top", type=int, default=12, help="ops listed")
    ap.add_argument("--input", default="", help="seg training batch N,H,W (default: the bench's)")
    ap.add_argument("--threads", type=int, default=0, help="0 = this machine's cores")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads or machine_threads())
    device = torch.device("cpu")
    sz = dict(SIZES["full"])
    warm = 2 if args.model in SR_MODELS else 3
    n = warm + 5 + args.steps + 1  # steps used: warm-up, timed, profiled, counted
    sz["seg_runs"] = n - sz["seg_warmup"]
    if args.input:
        sz["seg"] = tuple(int(v) for v in args.input.split(","))
        # the seg task's phase 1 spans them all
        sz["seg_image"] = (max(sz["seg_image"][0], sz["seg"][1]),
                           max(sz["seg_image"][1], sz["seg"][2]))
    path = paths(device)[args.path]
    with tempfile.TemporaryDirectory() as tmp:
        if args.model in SR_MODELS:
            task = sr_task(args.model, path, sz, sr_folder(Path(tmp), 2 * sz["sr_patch"]), device)
            start = 0
        else:
            task = seg_task(args.model, path, sz, device, phase2=args.phase2)
            start = task.p1 if args.phase2 else 0
        step_times(task, range(start, start + warm))
        med = statistics.median(step_times(task, range(start + warm, start + warm + 5)))
        s0 = start + warm + 5
        batches = [task.data[s] for s in range(s0, s0 + args.steps)]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i, b in enumerate(batches):
                task.train_step(b, s0 + i)
        flops = step_flops(task, s0 + args.steps)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    by_kind: dict[str, float] = {}
    for e in events:
        k = kind_of(e.key)
        by_kind[k] = by_kind.get(k, 0.0) + e.self_cpu_time_total
    prec = path["precision"]
    shape = sz["seg"] if args.model not in SR_MODELS else (sz["sr_batch"], sz["sr_patch"],
                                                            sz["sr_patch"])
    print(f"{args.model}{' phase 2' if args.phase2 else ''}, {args.path} path ({prec}, "
          f"channels_last {path['channels_last']}), {torch.get_num_threads()} threads: "
          f"input {'x'.join(map(str, shape))}: median step {1e3 * med:,.0f} ms without the "
          f"profiler, {flops / 1e9:.1f} GFLOP")
    print("share of the profiled CPU time by kind of work:")
    for k, t in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {k:14s} {100 * t / total:5.1f}%  ~{1e3 * med * t / total:7,.0f} ms/step")
    conv_s = med * by_kind.get("conv/matmul", 0.0) / total
    peak = peak_probes(sz, device)
    key = "bf16" if prec in ("bf16", "fp16") else "fp32"
    if conv_s > 0 and key in peak:
        rate = flops / conv_s / 1e9
        print(f"conv/matmul alone: {rate:,.0f} GFLOP/s = {100 * rate / peak[key]['peak_gflops']:.0f}% "
              f"of the {key} peak probe ({peak[key]['peak_gflops']:,.0f} GFLOP/s); the whole step: "
              f"{100 * flops / med / 1e9 / peak[key]['peak_gflops']:.0f}%")
    print(f"top {args.top} ops by self CPU time:")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]:
        print(f"  {e.key[:44]:44s} {kind_of(e.key):14s} {100 * e.self_cpu_time_total / total:5.1f}%"
              f"  calls/step {e.count // args.steps}")


if __name__ == "__main__":
    main()
