"""MATLAB-compatible colour conversions (``rgb2ycbcr`` / ``ycbcr2rgb``, ITU-R BT.601, studio swing).

Tensors are floating, shaped (..., 3, H, W) with values in [0, 1]. In [0, 255] units MATLAB uses

    Y  =  16 + ( 65.481 R + 128.553 G +  24.966 B) / 255
    Cb = 128 + (-37.797 R -  74.203 G + 112.000 B) / 255
    Cr = 128 + (112.000 R -  93.786 G -  18.214 B) / 255

for R, G, B in [0, 255]; here every channel is returned divided by 255, i.e. Y in [16/255, 235/255]
and Cb, Cr in [16/255, 240/255]. Conversions are computed in float64 and returned in the input's
dtype. (MATLAB on uint8 input rounds the result to uint8; apply
:func:`densekit.ops.imresize.round_uint8` to reproduce that.)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["rgb2ycbcr", "ycbcr2rgb", "rgb_to_ycbcr", "ycbcr_to_rgb", "rgb_to_y",
           "rgb_to_ycbcr_pointwise", "ycbcr_to_rgb_pointwise", "to_model_channels",
           "YCBCR_MATRIX", "YCBCR_OFFSET"]

# Rows: Y, Cb, Cr; columns: R, G, B (for RGB in [0, 1] giving values in [0, 255]).
YCBCR_MATRIX = (
    (65.481, 128.553, 24.966),
    (-37.797, -74.203, 112.0),
    (112.0, -93.786, -18.214),
)
YCBCR_OFFSET = (16.0, 128.0, 128.0)


def _check(img: Tensor, name: str) -> None:
    if not isinstance(img, Tensor) or not img.is_floating_point():
        raise TypeError(f"{name} expects a floating tensor in [0, 1]")
    if img.dim() < 3 or img.shape[-3] != 3:
        raise ValueError(f"{name} expects shape (..., 3, H, W), got {tuple(img.shape)}")


def _apply(img: Tensor, matrix: Tensor, offset: Tensor) -> Tensor:
    # out[..., i, h, w] = sum_j matrix[i, j] * img[..., j, h, w] + offset[i]
    out = torch.einsum("ij,...jhw->...ihw", matrix, img.to(torch.float64))
    return out + offset.view(3, 1, 1)


def rgb2ycbcr(rgb: Tensor) -> Tensor:
    """MATLAB ``rgb2ycbcr`` for double input: (..., 3, H, W) RGB in [0, 1] -> YCbCr / 255."""
    _check(rgb, "rgb2ycbcr")
    m = torch.tensor(YCBCR_MATRIX, dtype=torch.float64, device=rgb.device) / 255.0
    off = torch.tensor(YCBCR_OFFSET, dtype=torch.float64, device=rgb.device) / 255.0
    return _apply(rgb, m, off).to(rgb.dtype)


def ycbcr2rgb(ycbcr: Tensor, clamp: bool = True) -> Tensor:
    """MATLAB ``ycbcr2rgb`` for double input: YCbCr / 255 -> RGB in [0, 1] (clipped to [0, 1]
    like MATLAB unless ``clamp=False``)."""
    _check(ycbcr, "ycbcr2rgb")
    t = torch.tensor(YCBCR_MATRIX, dtype=torch.float64, device=ycbcr.device)
    tinv = torch.linalg.inv(t) * 255.0
    off = torch.tensor(YCBCR_OFFSET, dtype=torch.float64, device=ycbcr.device) / 255.0
    rgb = _apply(ycbcr, tinv, -(tinv @ off))
    if clamp:
        rgb = rgb.clamp(0.0, 1.0)
    return rgb.to(ycbcr.dtype)


def rgb_to_y(rgb: Tensor) -> Tensor:
    """Luminance Y of MATLAB ``rgb2ycbcr`` (divided by 255): (..., 3, H, W) -> (..., 1, H, W)."""
    _check(rgb, "rgb_to_y")
    w = torch.tensor(YCBCR_MATRIX[0], dtype=torch.float64, device=rgb.device) / 255.0
    y = torch.einsum("j,...jhw->...hw", w, rgb.to(torch.float64)) + YCBCR_OFFSET[0] / 255.0
    return y.unsqueeze(-3).to(rgb.dtype)


def _inverse() -> tuple[list, list]:
    t = torch.tensor(YCBCR_MATRIX, dtype=torch.float64)
    tinv = torch.linalg.inv(t) * 255.0
    off = torch.tensor(YCBCR_OFFSET, dtype=torch.float64) / 255.0
    return tinv.tolist(), (-(tinv @ off)).tolist()


_FORWARD = ([[v / 255.0 for v in row] for row in YCBCR_MATRIX], [v / 255.0 for v in YCBCR_OFFSET])
_INVERSE = _inverse()


def _pointwise(planes: np.ndarray, matrix: list, offset: list, rows) -> np.ndarray:
    """``((m0 * a + m1 * b) + m2 * c) + offset`` in float64 for each row of ``matrix``: only
    multiplications and additions, each rounded once (never fused), in this order."""
    a, b, c = (planes[..., i, :, :].astype(np.float64) for i in range(3))
    out = np.empty(planes.shape[:-3] + (len(rows),) + planes.shape[-2:], dtype=np.float64)
    tmp = np.empty_like(a)
    for k, i in enumerate(rows):
        acc = np.multiply(a, matrix[i][0], out=out[..., k, :, :])
        acc += np.multiply(b, matrix[i][1], out=tmp)
        acc += np.multiply(c, matrix[i][2], out=tmp)
        acc += offset[i]
    return out


def rgb_to_ycbcr_pointwise(rgb: np.ndarray, channels=(0, 1, 2)) -> np.ndarray:
    """:func:`rgb2ycbcr` (the channels ``channels`` of Y, Cb, Cr) of a (..., 3, H, W) NumPy
    array, computed pixel by pixel as a fixed sum of three float64 products, so that any crop of
    the image converts to the same crop of the converted image bit for bit (a matrix product
    need not). Returns float32. NumPy, one thread: for bands of an image (see
    :func:`densekit.ops.imresize.upscale_band`)."""
    return _pointwise(rgb, *_FORWARD, channels).astype(np.float32)


def ycbcr_to_rgb_pointwise(ycbcr: np.ndarray) -> np.ndarray:
    """:func:`ycbcr2rgb` (clipped to [0, 1]) of a (..., 3, H, W) NumPy array, computed pixel by
    pixel like :func:`rgb_to_ycbcr_pointwise`. Returns float32."""
    return np.clip(_pointwise(ycbcr, *_INVERSE, (0, 1, 2)), 0.0, 1.0).astype(np.float32)


def to_model_channels(img: Tensor, channels: int) -> Tensor:
    """Turn a (C, H, W) or (N, C, H, W) image with C in {1, 3} into a model's channels.

    ``channels == 1``: Y (luminance) of an RGB image; a grayscale image is used as it is (the SR
    protocol: "Grayscale images are used as they are").
    ``channels == 3``: RGB as is; a grayscale image is replicated to three channels.
    """
    if img.dim() not in (3, 4):
        raise ValueError(f"expected a (C, H, W) or (N, C, H, W) image, got {tuple(img.shape)}")
    c = img.shape[-3]
    if c not in (1, 3):
        raise ValueError(f"expected 1 (gray) or 3 (RGB) channels, got {c}")
    if channels == 1:
        return img if c == 1 else rgb_to_y(img)
    if channels == 3:
        if c == 3:
            return img
        reps = [1] * img.dim()
        reps[-3] = 3
        return img.repeat(*reps)
    raise ValueError(f"model channels must be 1 (Y) or 3 (RGB), got {channels}")


# Aliases in the snake_case spelling used elsewhere in densekit.
rgb_to_ycbcr = rgb2ycbcr
ycbcr_to_rgb = ycbcr2rgb
