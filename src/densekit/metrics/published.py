"""Published super-resolution results that densekit compares against (``docs/protocols.md`` 1.5):
PSNR (dB) / SSIM on the Y channel, ``scale`` pixels shaved. One table for the benchmark, the
results scripts and the tests."""

from __future__ import annotations

__all__ = ["PUBLISHED_SR"]

# (method, scale) -> {test set: (psnr, ssim)}
PUBLISHED_SR: dict[tuple[str, int], dict[str, tuple[float, float]]] = {
    ("bicubic", 2): {"Set5": (33.66, 0.9299), "Set14": (30.24, 0.8688)},
    ("bicubic", 3): {"Set5": (30.39, 0.8682), "Set14": (27.55, 0.7742)},
    ("bicubic", 4): {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027)},
    ("srcnn", 2): {"Set5": (36.66, 0.9542), "Set14": (32.42, 0.9063)},
    ("srcnn", 3): {"Set5": (32.75, 0.9090), "Set14": (29.28, 0.8209)},
    ("srcnn", 4): {"Set5": (30.48, 0.8628), "Set14": (27.49, 0.7503)},
    ("vdsr", 2): {"Set5": (37.53, 0.9587), "Set14": (33.03, 0.9124)},
    ("vdsr", 3): {"Set5": (33.66, 0.9213), "Set14": (29.77, 0.8314)},
    ("vdsr", 4): {"Set5": (31.35, 0.8838), "Set14": (28.01, 0.7674)},
    ("rednet", 2): {"Set5": (37.66, 0.9599), "Set14": (32.94, 0.9144)},
    ("rednet", 4): {"Set5": (31.51, 0.8869), "Set14": (27.86, 0.7718)},
}
