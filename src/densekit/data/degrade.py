"""What happens to a photo besides downscaling: blur, sensor noise and JPEG compression.

Two users share these operations:

* training (``data.degrade`` of an SR config, :class:`DegradeConfig`): each sample of a batch
  draws whether and how strongly it is blurred (before the bicubic downscale), noised and
  JPEG-compressed (after it), from the step's generator, so batches stay a pure function of
  (seed, step);
* evaluation (``densekit sr eval --degrade jpeg:70``, :func:`parse_degrade`,
  :func:`degrade_lr`): fixed settings applied to the protocol's LR image, the noise seeded by
  the image, so every run scores the same pixels.

Images are float tensors (..., C, H, W) in [0, 1] with C = 1 (gray) or 3 (RGB). JPEG is
libjpeg through PIL with PIL's defaults besides the quality (4:2:0 chroma subsampling for RGB,
as phones and web pages store photos); noise is added in 8-bit units, per channel.
"""

from __future__ import annotations

import io
import math
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from densekit.config import check, check_range
from densekit.errors import DensekitError

__all__ = ["DegradeConfig", "parse_degrade", "format_degrade", "degrade_lr", "jpeg",
           "jpeg_quality", "gaussian_noise", "poisson_noise", "gaussian_blur", "to_uint8_levels"]


def to_uint8_levels(x: Tensor) -> Tensor:
    """``x`` clipped to [0, 1] and rounded to 8-bit levels, as an image is stored."""
    return torch.floor(x.clamp(0, 1) * 255 + 0.5) / 255


def jpeg(img: Tensor, quality: int) -> Tensor:
    """A (C, H, W) image at 8-bit levels saved as a JPEG of ``quality`` (1-100) and decoded."""
    arr = (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(quality))
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(pil.mode))
    out = torch.from_numpy(out.copy()).to(img.dtype) / 255
    return out[None] if out.dim() == 2 else out.permute(2, 0, 1)


def gaussian_noise(x: Tensor, sigma: Tensor | float, generator: torch.Generator) -> Tensor:
    """``x`` plus white Gaussian noise of ``sigma`` 8-bit levels, independent per channel
    (``sigma``: a number, or one per image of a (N, C, H, W) batch), clipped to [0, 1]."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    if x.dim() == 3:
        sigma = sigma[0]
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (x + noise * sigma / 255).clamp(0, 1)


def poisson_noise(x: Tensor, peak: Tensor | float, generator: torch.Generator) -> Tensor:
    """Shot noise: Poisson counts of a sensor whose white collects ``peak`` photons
    (``peak``: a number, or one per image of a batch), scaled back to [0, 1]. Fewer photons,
    more noise; the noise grows with the brightness, unlike :func:`gaussian_noise`."""
    peak = torch.as_tensor(peak, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    if x.dim() == 3:
        peak = peak[0]
    return (torch.poisson(x.clamp(0, 1) * peak, generator=generator) / peak).clamp(0, 1)


def gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Each image of a (N, C, H, W) batch blurred by an isotropic Gaussian of its own ``sigma``
    (pixels; 0 = unchanged), borders mirrored."""
    n, c, h, w = x.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    s = sigma.to(x.dtype).clamp_min(1e-6)[:, None]
    k = torch.exp(-0.5 * (t[None, :] / s) ** 2)
    k = k / k.sum(1, keepdim=True)  # (N, taps); sigma ~0 gives the unit impulse
    pad = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="reflect")
    kk = k.repeat_interleave(c, 0)  # one kernel per image channel, as grouped convolutions
    rows = torch.nn.functional.conv2d(pad.reshape(1, n * c, h + 2 * radius, w + 2 * radius),
                                      kk[:, None, :, None], groups=n * c)
    out = torch.nn.functional.conv2d(rows, kk[:, None, None, :], groups=n * c)
    return out.reshape(n, c, h, w)


# ---- training ----------------------------------------------------------------------------------
@dataclass
class DegradeConfig:
    """Random degradations of SR training samples (``data.degrade``); all off by default, the
    paper's clean bicubic degradation. Order: blur (of the HR crop) -> bicubic downscale ->
    Gaussian noise -> Poisson noise -> rounding to 8 bits -> JPEG."""

    blur_prob: float = check(0.0, min=0, max=1, help="share of samples whose HR crop is "
                                                     "blurred before the downscale")
    blur_sigma: list[float] = field(default_factory=lambda: [0.2, 1.0])
    noise_prob: float = check(0.0, min=0, max=1, help="share of samples with Gaussian noise")
    noise_sigma: list[float] = field(default_factory=lambda: [1.0, 8.0])
    poisson_prob: float = check(0.0, min=0, max=1, help="share of samples with shot noise")
    poisson_peak: list[float] = field(default_factory=lambda: [100.0, 2000.0])
    jpeg_prob: float = check(0.0, min=0, max=1, help="share of samples saved as JPEG")
    jpeg_quality: list[int] = field(default_factory=lambda: [30, 95])

    def validate(self):
        check_range("blur_sigma", self.blur_sigma, 0, 10)
        check_range("noise_sigma", self.noise_sigma, 0, 255)
        check_range("poisson_peak", self.poisson_peak, 1, 1e6)
        check_range("jpeg_quality", self.jpeg_quality, 1, 100)

    @property
    def active(self) -> bool:
        return any(p > 0 for p in (self.blur_prob, self.noise_prob, self.poisson_prob,
                                   self.jpeg_prob))


def draw_degradations(cfg: DegradeConfig, n: int, g: torch.Generator) -> dict[str, Tensor]:
    """The degradation parameters of ``n`` samples: blur sigma, noise sigma, Poisson peak (0 =
    off), JPEG quality (0 = off) and the seed of the sample's noise, each a tensor of ``n``.
    Every draw is made for every sample, so one sample's degradation does not depend on
    another's (nor on which samples a process of a distributed run makes)."""

    def pick(prob: float, lo: float, hi: float, log: bool = False) -> Tensor:
        on = torch.rand(n, generator=g, dtype=torch.float64) < prob
        u = torch.rand(n, generator=g, dtype=torch.float64)
        v = torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if log else \
            lo + u * (hi - lo)
        return torch.where(on, v, torch.zeros(n, dtype=torch.float64))

    q_lo, q_hi = cfg.jpeg_quality
    quality = pick(cfg.jpeg_prob, q_lo - 0.5, q_hi + 0.5)
    return {"blur": pick(cfg.blur_prob, *cfg.blur_sigma),
            "noise": pick(cfg.noise_prob, *cfg.noise_sigma),
            "peak": pick(cfg.poisson_prob, *cfg.poisson_peak, log=True),
            "quality": torch.where(quality > 0, torch.round(quality).clamp(1, 100), 0.0),
            "seed": torch.randint(1 << 62, (n,), generator=g)}


def degrade_sample(lr: Tensor, params: dict[str, float]) -> Tensor:
    """Noise, 8-bit rounding and JPEG of one (C, h, w) LR image in [0, 1] by one sample's
    parameters of :func:`draw_degradations` (blur is applied to the HR crop before the
    downscale); the noise comes from the sample's own seed."""
    g = torch.Generator().manual_seed(int(params["seed"]))
    if params["noise"] > 0:
        lr = gaussian_noise(lr, params["noise"], g)
    if params["peak"] > 0:
        lr = poisson_noise(lr, params["peak"], g)
    lr = to_uint8_levels(lr)
    return jpeg(lr, int(params["quality"])) if params["quality"] > 0 else lr


# ---- evaluation --------------------------------------------------------------------------------
KINDS = {"jpeg": "quality 1-100", "noise": "Gaussian sigma in 8-bit levels, >= 0"}


def parse_degrade(spec: str | None, option: str = "--degrade",
                  error: type[DensekitError] = DensekitError) -> list[tuple[str, float]]:
    """``"noise:5,jpeg:70"`` -> [("noise", 5.0), ("jpeg", 70)], applied in that order; None or
    "" -> []. A malformed spec is a one-line ``error`` naming ``option``."""
    if not spec:
        return []
    steps, seen = [], set()
    for part in str(spec).split(","):
        kind, sep, value = part.strip().partition(":")
        if kind not in KINDS or not sep:
            raise error(f"{option}: expected jpeg:QUALITY or noise:SIGMA (comma-"
                                f"separated to chain them), got {part.strip()!r}")
        if kind in seen:
            raise error(f"{option}: {kind} given twice in {spec!r}")
        seen.add(kind)
        try:
            v = float(value)
        except ValueError:
            v = math.nan
        if kind == "jpeg" and not (math.isfinite(v) and v == int(v) and 1 <= v <= 100):
            raise error(f"{option}: jpeg quality must be an integer from 1 to 100, "
                                f"got {value!r}")
        if kind == "noise" and not (math.isfinite(v) and 0 <= v <= 255):
            raise error(f"{option}: noise sigma must be a number from 0 to 255 (8-bit "
                                f"levels), got {value!r}")
        steps.append((kind, int(v) if kind == "jpeg" else v))
    return steps


def format_degrade(steps: list[tuple[str, float]]) -> str:
    """The canonical spelling of a parsed spec ("" for none), e.g. "noise:5,jpeg:70"."""
    return ",".join(f"{k}:{v:g}" for k, v in steps)


def degrade_lr(lr: Tensor, steps: list[tuple[str, float]], key: str = "") -> Tensor:
    """The protocol's LR image (C, h, w) in [0, 1] stored as 8-bit and degraded by ``steps``
    (:func:`parse_degrade`), each once, in order; the noise is seeded by ``key`` (the image's
    name) and its sigma, so an image gets the same pixels in every run (and "noise:5,jpeg:70"
    is "noise:5" saved as JPEG). Returns float64 at 8-bit levels."""
    x = to_uint8_levels(lr.to(torch.float64))
    for kind, value in steps:
        if kind == "noise":
            seed = zlib.crc32(f"{key}|{format_degrade([(kind, value)])}".encode())
            x = to_uint8_levels(gaussian_noise(x, value, torch.Generator().manual_seed(seed)))
        else:
            x = jpeg(x, int(value)).to(torch.float64)
    return x


# ---- what a file says about its compression ---------------------------------------------------
@lru_cache(maxsize=1)
def _ijg_luma_tables() -> np.ndarray:
    """(100, 64) the luminance quantisation table libjpeg writes at each quality 1..100, in the
    order PIL reports a file's tables (read back from PIL's own encoder)."""
    tables = []
    for q in range(1, 101):
        buf = io.BytesIO()
        Image.new("L", (8, 8)).save(buf, format="JPEG", quality=q)
        tables.append(list(Image.open(io.BytesIO(buf.getvalue())).quantization[0]))
    return np.asarray(tables, dtype=np.float64)


def jpeg_quality(image: Image.Image) -> int | None:
    """The quality (1-100) a JPEG image was most likely saved with, estimated from its
    luminance quantisation table: the libjpeg quality whose table is nearest (sum of absolute
    differences). Cameras and editors that write their own tables get the nearest libjpeg
    quality. None for an image that was not read from a JPEG file (PIL keeps the tables of an
    opened JPEG, also after ``ImageOps.exif_transpose(im, in_place=True)``)."""
    tables = getattr(image, "quantization", None)
    if getattr(image, "format", None) not in ("JPEG", "MPO") or not tables or 0 not in tables:
        return None
    luma = np.asarray(list(tables[0]), dtype=np.float64)
    if luma.shape != (64,):
        return None
    return int(np.abs(_ijg_luma_tables() - luma).sum(1).argmin()) + 1
