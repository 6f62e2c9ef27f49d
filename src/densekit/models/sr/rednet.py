"""REDNet / RED30 (Mao, Shen, Yang, "Image Restoration Using Very Deep Convolutional
Encoder-Decoder Networks with Symmetric Skip Connections", NIPS 2016)."""

from __future__ import annotations

from torch import Tensor, nn

from densekit.models.sr.common import (BICUBIC_CONTEXT, check_channels, check_scale,
                                      context_from_hr_radius, upsample_bicubic)

__all__ = ["REDNet", "rednet"]


class REDNet(nn.Module):
    """RED30 on the bicubic-upsampled image.

    What this implementation chose (the paper fixes the layer counts, kernel size, ReLUs and the
    skip pattern, not every detail):

    * encoder: 15 conv 3x3 (C->64, then 64->64), stride 1, each followed by ReLU;
    * decoder: 15 ConvTranspose2d 3x3, stride 1 (64->64, the last 64->C);
    * symmetric skips every two layers: counting the input image as encoder layer 0, the output
      of encoder layer ``k`` (k = 14, 12, ..., 2) is added to the output of its mirrored decoder
      layer ``15 - k`` (deconv 1, 3, ..., 13), and the sum is rectified ("summed element-wise
      and passed to the next layer after rectification"); other deconvs are followed by ReLU;
    * the last skip (k = 0) is the global residual: output = bicubic + deconv15(...), without a
      final ReLU, added in float32;
    * all layers use padding 1, so every feature map keeps the HR size (the paper does not state
      the padding; this keeps any input size >= 1 valid and tiling simple);
    * 64 features as in the comparison tables of the HDCN paper (the RED paper also reports 128);
    * He (kaiming normal) weights with each layer's true fan-in (for a stride-1 transposed conv
      that is in_channels x 3 x 3, which torch's ``mode="fan_in"`` does not give: it reads the
      weight's second dimension, the *output* channels, and would give the 64->C output deconv
      a std of sqrt(2/9) instead of sqrt(2/576)); zero biases; the output deconv is
      N(0, 0.001), so the untrained network is bicubic plus a small residual. The seven skip
      additions grow the activations 2-3x (RMS) towards the output: with a He-initialised
      output layer the initial residual has an RMS of 8.6 and 19.3 in two seeds (images in
      [0, 1]), the first 50 training steps a mean MSE of 109, and the network stays below
      bicubic for hundreds of steps (``docs/results/results-sr.md``, REDNet rows).

    1,035,201 parameters for C = 1.
    """

    def __init__(self, scale: int, channels: int = 1, features: int = 64, num_layers: int = 15,
                 skip_every: int = 2):
        super().__init__()
        self.scale = check_scale("rednet", scale)
        self.channels = check_channels("rednet", channels)
        self.num_layers = num_layers
        self.skip_every = skip_every
        self.encoder = nn.ModuleList(
            nn.Conv2d(self.channels if i == 0 else features, features, 3, padding=1)
            for i in range(num_layers))
        self.decoder = nn.ModuleList(
            nn.ConvTranspose2d(features, self.channels if i == num_layers - 1 else features, 3,
                               stride=1, padding=1)
            for i in range(num_layers))
        self.relu = nn.ReLU(inplace=False)
        self.context = context_from_hr_radius(2 * num_layers, self.scale, BICUBIC_CONTEXT)
        self.align = 1
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                # a ConvTranspose2d weight is (in, out, k, k): its fan-in is torch's "fan_out"
                mode = "fan_out" if isinstance(m, nn.ConvTranspose2d) else "fan_in"
                nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.decoder[-1].weight, std=1e-3)

    def forward(self, lr: Tensor) -> Tensor:
        x0 = upsample_bicubic(lr, self.scale)
        n, every = self.num_layers, self.skip_every
        saved: dict[int, Tensor] = {}
        x = x0
        for k, conv in enumerate(self.encoder, start=1):
            x = self.relu(conv(x))
            if k % every == 0 and k < n:
                saved[k] = x
        for j, deconv in enumerate(self.decoder, start=1):
            x = deconv(x)
            if j == n:
                break
            mirror = saved.get(n - j)
            if mirror is not None:
                x = x + mirror
            x = self.relu(x)
        return (x0 + x.to(x0.dtype)).to(lr.dtype)


def rednet(scale: int, channels: int = 1) -> REDNet:
    return REDNet(scale, channels)

