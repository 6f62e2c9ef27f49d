"""Super-resolution metrics exactly as the published SR tables compute them.

* :func:`modcrop` crops an image to a multiple of the scale from the top-left (MATLAB ``modcrop``).
* :func:`psnr`: ``10 log10(255^2 / MSE)`` in float64 on the x255 scale.
* :func:`ssim`: Wang et al.'s ``ssim_index.m``: 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
  K2 = 0.03, L = 255, 'valid' filtering, mean of the SSIM map (no automatic downsampling).

Both take tensors with values in [0, 1] of shape (H, W) or (1, H, W) (any leading axes are allowed:
PSNR then pools the squared error over everything, SSIM averages the maps of all planes), and
``shave`` pixels are removed from every border first. They measure what they are given; rounding
to uint8 levels and the choice of channel belong to the caller (see ``densekit.tasks.sr_eval``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["modcrop", "shave_border", "psnr", "ssim", "gaussian_window"]


def modcrop(img: Tensor, scale: int) -> Tensor:
    """Crop (..., H, W) from the top-left so that H and W are multiples of ``scale``."""
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]


def shave_border(img: Tensor, shave: int) -> Tensor:
    """Remove ``shave`` pixels from every border of (..., H, W)."""
    shave = int(shave)
    if shave < 0:
        raise ValueError(f"shave must be >= 0, got {shave}")
    if shave == 0:
        return img
    h, w = img.shape[-2:]
    if h <= 2 * shave or w <= 2 * shave:
        raise ValueError(f"image of {h}x{w} pixels is too small to shave {shave} pixels")
    return img[..., shave : h - shave, shave : w - shave]


def _prepare(pred: Tensor, target: Tensor, shave: int) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: prediction {tuple(pred.shape)} vs target "
                         f"{tuple(target.shape)}")
    if pred.dim() < 2:
        raise ValueError(f"expected an image of shape (H, W) or (1, H, W), got {tuple(pred.shape)}")
    p = shave_border(pred.detach(), shave).to(torch.float64) * 255.0
    t = shave_border(target.detach(), shave).to(device=p.device, dtype=torch.float64) * 255.0
    return p, t


def psnr(pred: Tensor, target: Tensor, shave: int = 0) -> float:
    """PSNR in dB of images in [0, 1] (peak 255 on the x255 scale); ``inf`` if identical."""
    p, t = _prepare(pred, target, shave)
    mse = torch.mean((p - t) ** 2).item()
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


@lru_cache(maxsize=8)
def _gaussian_1d(size: int, sigma: float) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: Tensor, taps: list[float]) -> Tensor:
    """'valid' correlation of (..., H, W) with the separable kernel ``outer(taps, taps)``.

    Written as a sum of shifted slices (one vectorised multiply-add per tap and axis) rather than
    ``conv2d``: in float64 on the CPU, torch's convolution takes a slow path that is ~10x slower,
    and this gives the same numbers (to float rounding, ~1e-13 on the x255 scale).
    """
    k = len(taps)
    h, w = x.shape[-2:]
    ho, wo = h - k + 1, w - k + 1
    rows = x[..., 0:ho, :] * taps[0]
    for i in range(1, k):
        rows.add_(x[..., i : i + ho, :], alpha=taps[i])
    out = rows[..., :, 0:wo] * taps[0]
    for i in range(1, k):
        out.add_(rows[..., :, i : i + wo], alpha=taps[i])
    return out


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """MATLAB ``fspecial('gaussian', size, sigma)`` in float64 (normalised to sum 1)."""
    g = _gaussian_1d(int(size), float(sigma))
    return torch.outer(g, g)


def ssim(
    pred: Tensor,
    target: Tensor,
    shave: int = 0,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    data_range: float = 255.0,
) -> float:
    """Mean SSIM of images in [0, 1] on the x255 scale (Wang et al.'s ``ssim_index.m``)."""
    p, t = _prepare(pred, target, shave)
    h, w = p.shape[-2:]
    if h < window_size or w < window_size:
        raise ValueError(f"image of {h}x{w} pixels is smaller than the {window_size}x{window_size} "
                         "SSIM window")
    g = _gaussian_1d(int(window_size), float(sigma)).tolist()
    # The five moment images of every plane, 'valid'-filtered with the separable Gaussian at once.
    stack = torch.stack([p, t, p * p, t * t, p * t])
    mu1, mu2, e11, e22, e12 = _filter_valid(stack, g).unbind(0)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = e11 - mu1_sq
    s2 = e22 - mu2_sq
    s12 = e12 - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return ssim_map.mean().item()
