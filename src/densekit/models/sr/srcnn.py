"""SRCNN (Dong et al., "Image Super-Resolution Using Deep Convolutional Networks", 2014/2016)."""

from __future__ import annotations

from torch import Tensor, nn

from densekit.models.sr.common import (BICUBIC_CONTEXT, check_channels, check_scale,
                                       context_from_hr_radius, upsample_bicubic)

__all__ = ["SRCNN", "srcnn"]


class SRCNN(nn.Module):
    """SRCNN 9-5-5 (64/32 filters) on the bicubic-upsampled image.

    conv 9x9 (C->64) + ReLU, conv 5x5 (64->32) + ReLU, conv 5x5 (32->C); zero "same" padding
    (4, 2, 2) so the output has the HR size (the original used valid convolutions and a
    smaller output). No residual. Weights N(0, 0.001), biases 0, as in Dong et al.
    57,281 parameters for C = 1.
    """

    def __init__(self, scale: int, channels: int = 1, features: tuple[int, int] = (64, 32),
                 kernels: tuple[int, int, int] = (9, 5, 5)):
        super().__init__()
        self.scale = check_scale("srcnn", scale)
        self.channels = check_channels("srcnn", channels)
        f1, f2 = features
        k1, k2, k3 = kernels
        self.body = nn.Sequential(
            nn.Conv2d(self.channels, f1, k1, padding=k1 // 2), nn.ReLU(inplace=True),
            nn.Conv2d(f1, f2, k2, padding=k2 // 2), nn.ReLU(inplace=True),
            nn.Conv2d(f2, self.channels, k3, padding=k3 // 2),
        )
        radius = (k1 // 2) + (k2 // 2) + (k3 // 2)  # HR pixels
        self.context = context_from_hr_radius(radius, self.scale, BICUBIC_CONTEXT)
        self.align = 1
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.001)
                nn.init.zeros_(m.bias)

    def forward(self, lr: Tensor) -> Tensor:
        x = upsample_bicubic(lr, self.scale)
        return self.body(x).to(lr.dtype)


def srcnn(scale: int, channels: int = 1) -> SRCNN:
    return SRCNN(scale, channels)
