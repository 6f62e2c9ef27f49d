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

import numpy as np
import torch
from torch import Tensor

__all__ = ["imresize", "resize_matrix", "phase_taps", "upscale_band", "round_uint8",
           "clear_cache"]


def _cubic(x: Tensor) -> Tensor:
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def _taps64(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[Tensor, Tensor]:
    """(out_len, taps) input indices (0-based, mirrored into range) and float64 weights."""
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
    return cols, w


@lru_cache(maxsize=256)
def _matrix64(in_len: int, out_len: int, scale: float, antialias: bool) -> Tensor:
    cols, w = _taps64(in_len, out_len, scale, antialias)
    m = torch.zeros(out_len, in_len, dtype=torch.float64)
    m.scatter_add_(1, cols, w)
    return m


def resize_matrix(
    in_len: int, out_len: int, scale: float, *, dtype=torch.float64, device=None, antialias=True
) -> Tensor:
    """The (out_len x in_len) matrix of one MATLAB bicubic pass along one axis."""
    m = _matrix64(int(in_len), int(out_len), float(scale), bool(antialias))
    return m.to(dtype=dtype, device=device)


@lru_cache(maxsize=8)
def phase_taps(scale: int) -> tuple[tuple[int, tuple[float, ...]], ...]:
    """MATLAB's bicubic taps for upscaling by an integer ``scale``, per phase: output pixel
    ``scale * k + p`` (0-based) is ``sum_j weights[j] * in[k + offset + j]`` for the ``p``-th
    ``(offset, weights)``, ``in`` mirrored at the borders, zero weights left out, the weights
    rounded to float32 (as :func:`resize_matrix` is for float32 images)."""
    k = 8  # an interior pixel: no mirroring
    cols, w = _taps64(2 * k, 2 * k * scale, float(scale), True)
    taps = []
    for p in range(scale):
        row = scale * k + p
        keep = [j for j in range(w.shape[1]) if w[row, j] != 0]
        weights = tuple(float(v) for v in w[row, keep].to(torch.float32))
        taps.append((int(cols[row, keep[0]]) - k, weights))
        assert [int(cols[row, j]) - k for j in keep] == list(range(taps[-1][0], taps[-1][0]
                                                                   + len(keep)))
    return tuple(taps)


def _mirror(index: np.ndarray, length: int) -> np.ndarray:
    """MATLAB's symmetric padding: any index mapped into [0, length)."""
    aux = np.concatenate([np.arange(length), np.arange(length - 1, -1, -1)])
    return aux[index % (2 * length)]


def _phases(x: np.ndarray, axis: int, count: int, taps) -> list[np.ndarray]:
    """For each phase, ``sum_j weights[j] * x[offset + j - first offset ...]`` along ``axis``
    (-2 or -1): ``count`` outputs each, the products summed in order (one multiply, one add)."""
    lo = min(off for off, _ in taps)
    planes = []
    for off, weights in taps:
        acc = None
        for j, wj in enumerate(weights):
            start = off + j - lo
            part = x[..., start:start + count, :] if axis == -2 else x[..., start:start + count]
            term = part * np.float32(wj)
            if acc is None:
                acc = term
            else:
                acc += term
        planes.append(acc)
    return planes


def upscale_band(rows, k0: int, k1: int, height: int, width: int, scale: int) -> np.ndarray:
    """Rows ``scale * k0 .. scale * k1 - 1`` of the MATLAB bicubic upscaling by an integer
    ``scale`` of a (C, height, width) float32 image of which ``rows(a, b)`` gives rows a..b-1
    as a NumPy array: (C, scale * (k1 - k0), scale * width), rows first, then columns, like
    :func:`imresize`.

    Each output pixel is the same fixed sum of float32 products whatever band it is computed
    in, so bands put together equal the whole image bit for bit; against :func:`imresize` (one
    matrix product per axis) the difference is float rounding. NumPy, one thread: meant for
    bands of up to a few hundred thousand pixels, where torch's threads cost more than they
    give on a busy machine."""
    taps = phase_taps(int(scale))
    lo = min(off for off, _ in taps)
    hi = max(off + len(w) - 1 for off, w in taps)
    need = _mirror(np.arange(k0 + lo, k1 + hi), height)
    a = int(need.min())
    x = rows(a, int(need.max()) + 1)
    if not np.array_equal(need, np.arange(a, a + len(need))):
        x = np.take(x, need - a, axis=-2)
    x = np.stack(_phases(x, -2, k1 - k0, taps), axis=-2)
    x = x.reshape(x.shape[:-3] + (-1, x.shape[-1]))
    x = np.take(x, _mirror(np.arange(lo, width + hi), width), axis=-1)
    x = np.stack(_phases(x, -1, width, taps), axis=-1)
    return x.reshape(x.shape[:-2] + (-1,))


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
