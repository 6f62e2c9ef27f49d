"""Bicubic interpolation (MATLAB-exact) as an SR "model" with the common SR interface."""

from __future__ import annotations

from torch import Tensor, nn

from densekit.data.imresize import imresize


class Bicubic(nn.Module):
    """Upscale by ``scale`` with MATLAB bicubic. No parameters; input/output in [0, 1]."""

    def __init__(self, scale: int, channels: int = 1):
        super().__init__()
        self.scale = int(scale)
        self.channels = int(channels)
        self.context = 3  # LR pixels each side that influence an output pixel (4-tap kernel)
        self.align = 1

    def forward(self, lr: Tensor) -> Tensor:
        h, w = lr.shape[-2:]
        return imresize(lr, self.scale, size=(h * self.scale, w * self.scale))


def bicubic(scale: int, channels: int = 1) -> Bicubic:
    return Bicubic(scale, channels)
