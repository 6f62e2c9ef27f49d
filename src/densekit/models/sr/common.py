"""Helpers the SR networks share: supported scales, argument checks that raise
:class:`~densekit.errors.ConfigError`, and the fixed (non-learned) MATLAB-bicubic
pre-upsampling done in float32 even under autocast."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from densekit.errors import ConfigError
from densekit.ops.imresize import imresize

__all__ = ["SUPPORTED_SCALES", "BICUBIC_CONTEXT", "check_scale", "check_channels", "check_int",
           "upsample_bicubic", "context_from_hr_radius", "dihedral_ensemble"]

SUPPORTED_SCALES = (2, 3, 4)

# LR pixels each side that a MATLAB bicubic x-scale output depends on (4-tap kernel, plus the
# mirror padding at the image border); the same value the Bicubic model reports.
BICUBIC_CONTEXT = 3


def check_int(model: str, key: str, value, minimum: int = 1) -> int:
    """``value`` as an int >= minimum (bools and floats are rejected), else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"model.{model}: {key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_scale(model: str, scale) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SUPPORTED_SCALES:
        raise ConfigError(f"unsupported scale {scale!r} for {model} "
                          f"(supported: {', '.join(map(str, SUPPORTED_SCALES))})")
    return int(scale)


def check_channels(model: str, channels) -> int:
    return check_int(model, "channels", channels, 1)


def upsample_bicubic(x: Tensor, scale: int) -> Tensor:
    """Fixed MATLAB bicubic upscaling of (N, C, h, w) to exactly (scale*h, scale*w).

    Runs with autocast disabled, in float32 at least (half/bf16 inputs are promoted), so the
    interpolated image and any residual added to it keep full precision.
    """
    h, w = x.shape[-2:]
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    with torch.autocast(x.device.type, enabled=False):
        return imresize(x, scale, size=(h * scale, w * scale))


def context_from_hr_radius(radius_hr: int, scale: int, upsampler_context: int) -> int:
    """LR context for a network: HR-space receptive radius mapped to LR, plus the upsampler's."""
    return math.ceil(radius_hr / scale) + upsampler_context


def dihedral_ensemble(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Self-ensemble (EDSR's "+"): the mean of ``fn`` over the 8 flips/rotations of ``x``.

    ``x`` is (N, C, h, w); each of the 8 transformed inputs goes through ``fn`` and its output is
    transformed back before the float32 mean, so the result is equivariant to flips and
    rotations of the input whatever ``fn`` is. Costs 8 calls of ``fn``.
    """
    acc = None
    for k in range(4):
        for flip in (False, True):
            t = torch.rot90(x, k, (-2, -1))
            y = fn(t.flip(-1) if flip else t).float()
            y = torch.rot90(y.flip(-1) if flip else y, -k, (-2, -1))
            acc = y if acc is None else acc + y
    return acc / 8
