"""The super-resolution section: cost per output megapixel and PSNR gain per unit of cost."""

from __future__ import annotations

import statistics
from pathlib import Path

from densekit.bench.models import SR_MODELS
from densekit.bench.steps import paths
from densekit.bench.timing import inference_pass, interleaved_times, ratio_spread
from densekit.engine.precision import Precision
from densekit.metrics.published import PUBLISHED_SR

# published Set5 x2 PSNR (docs/protocols.md 1.5); HDCN has none there, ours is measured
PUBLISHED_SET5_X2 = {m: PUBLISHED_SR[(m, 2)]["Set5"][0] for m in ("bicubic", "srcnn", "vdsr",
                                                                     "rednet")}

SET5 = Path("../shared/data/sr/Set5")
SETTLE = 1  # untimed passes of a model right before each of its timed passes


def bench_sr(sz: dict, device) -> list[dict]:
    """ms per output megapixel (default path) and PSNR gain per unit of cost.

    The models run in interleaved rounds (bicubic, hdcn, srcnn, vdsr, rednet, then again, the
    order rotated each round) after ``sr_warmup`` untimed passes each, so that a change of the
    machine's speed during the run touches every model alike; each row gives the median and
    the range over ``sr_rounds`` rounds, and HDCN's row the per-round ratio of its time to
    VDSR's (``vs_vdsr``: median, min, max) - the robust number for "how much faster" - and the
    ratio of the two models' fastest rounds (``of_fastest``: noise only ever adds). Within a
    round each timed pass follows an untimed pass of the same model (``SETTLE``): a pass right
    after another model's pays for the state that model left in memory (HDCN, with its float32
    feature maps, most: docs/results/benchmarks.md), which a run of one model over tiles or
    images never does.

    On a 16-bit default path a row ``hdcn*`` adds HDCN with ``fp32_features=False`` (its
    feature maps in the 16-bit type too; ``options`` in the row), timed in the same rounds,
    with its own Set5 PSNR (in float32 the two are the same network, so the row is left out)."""
    from densekit.models.complexity import flops_per_pixel
    from densekit.models.sr import build_sr_model

    d = paths(device)["default"]
    prec = Precision(device, d["precision"], d["channels_last"])
    variants = {"hdcn": {}, "hdcn*": {"fp32_features": False}}
    if prec.dtype is None:
        del variants["hdcn*"]
    measured = {n: measure_hdcn_set5(prec, o) for n, o in variants.items()} if sz["set5"] \
        else {}
    names = ("bicubic", *variants, *(n for n in SR_MODELS if n != "hdcn"))
    models = {n: build_sr_model("hdcn", 2, **variants[n]) if n in variants
              else build_sr_model(n, 2) for n in names}
    passes = {n: inference_pass(m, prec, sz["sr_out"]) for n, m in models.items()}
    times = interleaved_times(passes, sz["sr_rounds"], sz["sr_warmup"], prec.device, SETTLE)
    out = []
    for name in names:
        m, mpx = models[name], passes[name][1]
        ms = [1e3 * t / mpx for t in times[name]]
        r = {"model": name, "flops_per_pixel": flops_per_pixel(m, (48, 48)),
             "ms_per_megapixel": statistics.median(ms), "ms_per_megapixel_min": min(ms),
             "ms_per_megapixel_max": max(ms), "rounds": len(ms)}
        if name in variants:
            r["options"] = variants[name]
            # and the ratio of the fastest rounds: each one's cost with the least noise added
            r["vs_vdsr"] = {**ratio_spread(times[name], times["vdsr"]),
                            "of_fastest": min(times[name]) / min(times["vdsr"])}
        if name in PUBLISHED_SET5_X2:
            r["set5_x2_psnr"], r["psnr_source"] = PUBLISHED_SET5_X2[name], "published"
        elif measured.get(name) is not None:
            r["set5_x2_psnr"], r["psnr_source"] = measured[name], "measured (shipped weights)"
        if "set5_x2_psnr" in r and name != "bicubic":
            gain = r["set5_x2_psnr"] - PUBLISHED_SET5_X2["bicubic"]
            r["db_over_bicubic"] = gain
            r["db_per_mflop_per_px"] = gain / (r["flops_per_pixel"] / 1e6)
            r["db_per_s_per_mpx"] = gain / (r["ms_per_megapixel"] / 1e3)
        out.append(r)
    return out


def measure_hdcn_set5(prec: Precision, options: dict | None = None) -> float | None:
    """Set5 x2 PSNR of the shipped HDCN (``densekit sr eval``'s code) with runtime
    ``options``, if the data is here."""
    from densekit.tasks.sr import load_sr_model, shipped_weights
    from densekit.tasks.sr_eval import evaluate_folder

    if not SET5.is_dir() or shipped_weights("hdcn", 2) is None:
        return None
    model = prec.prepare(load_sr_model("hdcn", 2, options=options))
    return evaluate_folder(model, SET5, 2, device=prec.device, autocast=prec.autocast)["psnr"]
