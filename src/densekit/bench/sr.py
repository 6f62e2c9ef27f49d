"""The super-resolution section: cost per output megapixel and PSNR gain per unit of cost."""

from __future__ import annotations

from pathlib import Path

from densekit.bench.models import SR_MODELS
from densekit.bench.steps import paths
from densekit.bench.timing import inference_ms_per_megapixel
from densekit.engine.precision import Precision
from densekit.metrics.published import PUBLISHED_SR

# published Set5 x2 PSNR (docs/protocols.md 1.5); HDCN has none there, ours is measured
PUBLISHED_SET5_X2 = {m: PUBLISHED_SR[(m, 2)]["Set5"][0] for m in ("bicubic", "srcnn", "vdsr",
                                                                     "rednet")}

SET5 = Path("../shared/data/sr/Set5")


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
