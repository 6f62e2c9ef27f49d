"""Bicubic interpolation (MATLAB-exact) as an SR "model" with the common SR interface."""

from __future__ import annotations

from torch import Tensor, nn

from densekit.models.sr.common import upsample_bicubic


class Bicubic(nn.Module):
    """Upscale by ``scale`` with MATLAB bicubic. No parameters; input/output in [0, 1]. Always
    float32, also under a bf16 autocast (where imresize's matmuls would otherwise run in bf16:
    a 512x512 photo lost 0.03 dB with `densekit sr eval --model bicubic` on an AMX CPU)."""

    def __init__(self, scale: int, channels: int = 1):
        super().__init__()
        self.scale = int(scale)
        self.channels = int(channels)
        self.context = 3  # LR pixels each side that influence an output pixel (4-tap kernel)
        self.align = 1

    def forward(self, lr: Tensor) -> Tensor:
        return upsample_bicubic(lr, self.scale).to(lr.dtype)


def bicubic(scale: int, channels: int = 1) -> Bicubic:
    return Bicubic(scale, channels)
