"""MATLAB-exact bicubic resizing (``imresize(img, scale, 'bicubic')``).

PIL, OpenCV and ``torch.nn.functional.interpolate`` all differ from MATLAB (kernel a=-0.75 in
torch, no antialiasing or other boundary handling elsewhere), and every published SR number was
made with MATLAB, so this is written by hand. MATLAB's algorithm:

* cubic kernel with a = -0.5; when downscaling the kernel is widened by 1/scale (antialiasing);
* output pixel x (1-based) maps to input u = x/scale + 0.5 * (1 - 1/scale);
* symmetric (mirror) padding at the borders;
* one axis after the other (rows first when both scales are equal);
* for uint8 images each pass is rounded back to uint8 (``imresizemex`` returns the input class).

Each 1-D pass is a dense (out x in) weight matrix, so a resize is two matrix products: exact,
differentiable and fast on CPU and GPU. Matrices are cached per (in, out, scale).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["imresize", "resize_matrix", "round_uint8", "clear_cache"]


def _cubic(x: Tensor) -> Tensor:
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


@lru_cache(maxsize=256)
def _matrix64(in_len: int, out_len: int, scale: float, antialias: bool) -> Tensor:
    kernel_width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        kernel_width /= scale
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if shrink else _cubic(dist)
    w = w / w.sum(dim=1, keepdim=True)
    # symmetric padding: 1-based index i maps into [1, in_len] by mirroring
    mirror = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])
    cols = mirror[(idx.long() - 1) % (2 * in_len)]
    m = torch.zeros(out_len, in_len, dtype=torch.float64)
    m.scatter_add_(1, cols, w)
    return m


def resize_matrix(
    in_len: int, out_len: int, scale: float, *, dtype=torch.float64, device=None, antialias=True
) -> Tensor:
    """The (out_len x in_len) matrix of one MATLAB bicubic pass along one axis."""
    m = _matrix64(int(in_len), int(out_len), float(scale), bool(antialias))
    return m.to(dtype=dtype, device=device)


def clear_cache() -> None:
    """Drop the cached matrices (tracing a model for export fills the cache with fake tensors)."""
    _matrix64.cache_clear()


def round_uint8(x: Tensor) -> Tensor:
    """Round a [0, 1] image to the 256 uint8 levels the way MATLAB does (half away from zero),
    returning it in [0, 1] in the same dtype."""
    return torch.floor(x.clamp(0, 1) * 255 + 0.5) / 255


def imresize(
    img: Tensor,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    quantize: bool = False,
    antialias: bool = True,
) -> Tensor:
    """Resize the last two axes of ``img`` (..., H, W) like MATLAB ``imresize(img, scale)``.

    ``img`` is a floating tensor with values in [0, 1]; computation runs in its dtype (use
    float64 for protocol-exact evaluation). ``quantize=True`` rounds to uint8 levels after each
    pass, which is what MATLAB does for uint8 input. Output size is ``ceil(scale * size)``
    unless ``size`` is given.
    """
    if not img.is_floating_point():
        raise TypeError("imresize expects a floating tensor in [0, 1]")
    h, w = img.shape[-2:]
    if size is None:
        if scale is None or scale <= 0:
            raise ValueError("imresize needs a positive scale or an output size")
        size = (math.ceil(h * scale), math.ceil(w * scale))
        scales = (float(scale), float(scale))
    else:
        scales = (size[0] / h, size[1] / w) if scale is None else (float(scale), float(scale))
    out = img
    # MATLAB resizes the axis with the smaller scale first; rows first on a tie.
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    for axis in order:
        in_len = out.shape[-2 + axis]
        m = resize_matrix(in_len, size[axis], scales[axis], dtype=out.dtype, device=out.device,
                          antialias=antialias)
        if axis == 0:
            out = torch.matmul(m, out)
        else:
            out = torch.matmul(out, m.transpose(0, 1))
        if quantize:
            out = round_uint8(out)
    return out
