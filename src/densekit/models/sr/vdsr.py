"""VDSR (Kim et al., "Accurate Image Super-Resolution Using Very Deep Convolutional Networks",
CVPR 2016)."""

from __future__ import annotations

from torch import Tensor, nn

from densekit.models.sr.common import (BICUBIC_CONTEXT, check_channels, check_scale,
                                      context_from_hr_radius, upsample_bicubic)

__all__ = ["VDSR", "vdsr"]


class VDSR(nn.Module):
    """20 conv layers 3x3 (C->64, 18 x 64->64, 64->C), zero padding 1, ReLU between, on the
    bicubic-upsampled image; global residual: output = bicubic + net(bicubic), added in float32.
    He (kaiming normal, fan_in) weights and zero biases, as in Kim et al.
    665,921 parameters for C = 1 (~1.33 MFLOP per output pixel).
    """

    def __init__(self, scale: int, channels: int = 1, features: int = 64, depth: int = 20):
        super().__init__()
        self.scale = check_scale("vdsr", scale)
        self.channels = check_channels("vdsr", channels)
        layers: list[nn.Module] = []
        for i in range(depth):
            cin = self.channels if i == 0 else features
            cout = self.channels if i == depth - 1 else features
            layers.append(nn.Conv2d(cin, cout, 3, padding=1))
            if i < depth - 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)
        self.context = context_from_hr_radius(depth, self.scale, BICUBIC_CONTEXT)
        self.align = 1
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, lr: Tensor) -> Tensor:
        x = upsample_bicubic(lr, self.scale)
        return (x + self.body(x).to(x.dtype)).to(lr.dtype)


def vdsr(scale: int, channels: int = 1) -> VDSR:
    return VDSR(scale, channels)
