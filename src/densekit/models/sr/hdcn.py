"""HDCN: hybrid deep convolutional network for single-image super-resolution.

Hu Xueying, Guo Hairu, Zhu Rong (see ``docs/hdcn.md`` 1; the Chinese paper is the ground truth).
The network runs in HR space after a learned upsampling:

1. upsampling (transposed convolution, linear) LR -> HR size;
2. feature extraction: two conv 3x3 + ReLU, zero padding (eq. 5) -> F1;
3. encoder-decoder "denoising" block: stride-2 valid convs then stride-2 deconvs, a local skip
   F2 = F1 + block(F1) (eq. 6-8);
4. reconstruction: four dilated conv 3x3 (dilation 1, 1, 2, 4) + ReLU, a conv 3x3 whose output
   is added to F1 (long skip, eq. 10), and a 1x1 conv to C channels (eq. 11).

The defaults are the paper's configuration; the switches exist for its ablations (Fig. 5,
Table 1) and for the choices the paper leaves open.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densekit.errors import ConfigError
from densekit.models.sr.common import (BICUBIC_CONTEXT, check_channels, check_int, check_scale,
                                      context_from_hr_radius, upsample_bicubic)

__all__ = ["HDCN", "hdcn", "HDCN_OPTIONS", "RUNTIME_OPTIONS", "DeconvUpsampler",
           "BicubicUpsampler", "PixelShuffleUpsampler", "EncoderDecoder", "PlainBlock"]

UPSAMPLERS = ("deconv", "deconv_centered", "bicubic", "pixelshuffle")
SKIPS = ("none", "local", "long", "both")
INITS = ("paper", "kaiming")


# ---- upsampling -------------------------------------------------------------------------------
class DeconvUpsampler(nn.Module):
    """Learned linear upsampling by transposed convolution(s), exactly ``scale`` x the size.

    x2: ConvTranspose2d k3, stride 2, padding 1, output_padding 1 (the paper's 3x3 deconv).
    x4: two of those in cascade (one stride-4 3x3 deconv would leave holes).
    x3: one ConvTranspose2d k5, stride 3, padding 1 (a 3x3 stride-3 deconv would not overlap
    neighbouring LR pixels; the paper says odd scales do poorly with its deconv).

    The k3 stride-2 deconv is off-centre by half an HR pixel: HR pixel 2i gets LR pixel i alone
    and 2i+1 gets i and i+1, so it treats LR pixel i as sitting on HR pixel 2i, while the
    bicubic degradation centres it between HR pixels 2i and 2i+1; the layers after it must learn
    the shift, and a flip of the input moves it to the other side. ``centered=True`` uses k4
    stride 2 padding 1 instead (HR pixels 2i and 2i+1 both get LR pixels i-1/i and i/i+1,
    symmetrically; bilinear x2 is one such kernel); the x3 k5 deconv is centred already (HR
    pixel 3i+1 gets LR pixel i alone, 3i and 3i+2 mirror each other) and is kept. Measured
    (``docs/results/results-sr.md``, x2, two seeds each): the same PSNR as the paper's k3; the
    later layers do learn the shift.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int, centered: bool = False):
        super().__init__()
        if scale == 3:
            layers = [nn.ConvTranspose2d(in_channels, out_channels, 5, stride=3, padding=1)]
        else:
            k, extra = (4, 0) if centered else (3, 1)
            layers = [nn.ConvTranspose2d(in_channels if i == 0 else out_channels, out_channels, k,
                                         stride=2, padding=1, output_padding=extra)
                      for i in range({2: 1, 4: 2}[scale])]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            s = layer.stride[0]
            h, w = x.shape[-2:]
            x = layer(x, output_size=(s * h, s * w))
        return x


class BicubicUpsampler(nn.Module):
    """Fixed MATLAB bicubic upsampling (no parameters), in float32."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return upsample_bicubic(x, self.scale)


class PixelShuffleUpsampler(nn.Module):
    """conv 3x3 (C -> C_up * scale^2) + PixelShuffle(scale); linear."""

    def __init__(self, in_channels: int, out_channels: int, scale: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.shuffle(self.conv(x))


# ---- encoder-decoder block ----------------------------------------------------------------------
class EncoderDecoder(nn.Module):
    """``depth`` valid (no padding) conv 3x3 stride 2 + ReLU, then ``depth`` ConvTranspose2d 3x3
    stride 2, each restoring the exact size of the matching encoder input (``output_size`` in
    forward), ReLU after each deconv but the last (the block learns a residual).

    Deviation from the paper's words: its decoder deconvs "add zero padding"; with padding=1 a
    stride-2 deconv cannot give back an even size from a valid stride-2 conv, so padding is 0 and
    the exact transposed geometry of the valid conv is used instead (sizes match for odd and
    even inputs). Feature maps smaller than the 3x3 kernel (tiny inputs with depth >= 2) are
    zero-padded at the bottom/right before the conv and cropped back after the deconv.

    Each deconv is built with output_padding 1 and its output cropped to the encoder input's
    size: the same values as ``output_size=`` (output padding only appends rows/columns at the
    bottom/right), but with a size-independent graph, so ONNX export keeps height and width
    dynamic.
    """

    def __init__(self, features: int, depth: int):
        super().__init__()
        self.down = nn.ModuleList(nn.Conv2d(features, features, 3, stride=2, padding=0)
                                  for _ in range(depth))
        self.up = nn.ModuleList(nn.ConvTranspose2d(features, features, 3, stride=2, padding=0,
                                                   output_padding=1)
                                for _ in range(depth))
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        sizes = []
        for conv in self.down:
            h, w = x.shape[-2:]
            ph, pw = max(0, 3 - h), max(0, 3 - w)
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph))
            sizes.append((h, w))
            x = self.relu(conv(x))
        last = len(self.up) - 1
        for i, deconv in enumerate(self.up):
            h, w = sizes[last - i]
            x = deconv(x)[..., :h, :w]
            if i < last:
                x = self.relu(x)
        return x

    @staticmethod
    def radius(depth: int) -> int:
        """Receptive radius in input pixels: r(d) = 2 + 2 r(d-1) = 2^(d+1) - 2."""
        return 2 ** (depth + 1) - 2


class PlainBlock(nn.Module):
    """The encoder-decoder's stand-in for ``encdec=False``: ``2*depth`` stride-1 conv 3x3 (zero
    padding) with ReLU between, none after the last - a "standard conv network" of the same
    depth (paper 3.2, Fig. 5a)."""

    def __init__(self, features: int, depth: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(2 * depth):
            layers.append(nn.Conv2d(features, features, 3, padding=1))
            if i < 2 * depth - 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)

    @staticmethod
    def radius(depth: int) -> int:
        return 2 * depth


# ---- the network --------------------------------------------------------------------------------
class HDCN(nn.Module):
    """Hybrid deep convolutional network (HDCN) for SR; defaults = the paper's configuration.

    Args:
        scale: 2, 3 or 4.
        channels: image channels C (1 = Y luminance, 3 = RGB).
        features: filters of every 3x3 layer (64 in the paper).
        up_channels: channels of the upsampled image fed to feature extraction; default C (the
            paper's upsampling output is "the upsampled LR image"). Must be C for "bicubic".
        upsampler: "deconv" (paper: learned linear transposed conv; x2 one k3 s2 deconv, x4 two
            in cascade, x3 one k5 s3 deconv), "deconv_centered" (k4 s2 instead of k3 s2 at x2
            and x4, centred on the LR pixel grid; see :class:`DeconvUpsampler`; not in the
            paper, measured in docs/results/results-sr.md), "bicubic" (fixed MATLAB bicubic,
            for comparison, e.g. at x3), or "pixelshuffle" (conv 3x3 -> C_up*scale^2 +
            PixelShuffle).
        encdec: True = encoder-decoder block; False = plain stride-1 convs of the same depth.
        encdec_depth: number of stride-2 conv / deconv pairs (the paper's equations show one).
        dilation: True = dilations (1, 1, 2, 4) in reconstruction; False = (1, 1, 1, 1).
        skips: "none", "local" (F1 around the enc-dec block), "long" (F1 added after the
            reconstruction conv), or "both" (paper).
        init: "paper" = weights N(0, 0.001), biases 0; "kaiming" = kaiming_normal_(fan_in,
            relu), biases 0.
        residual: False (paper) or True = add the MATLAB bicubic upscaling of the input to the
            output (a global residual as in VDSR; the network then learns only the detail).
            Not in the paper; an option, measured in docs/results/results-sr.md.
        fp32_features: True (default) = under a 16-bit autocast the feature extraction's
            output F1, the skip additions and the layers around them stay float32 (F1 carries
            the image to the output: there is no bicubic residual); False = only the
            upsampling, the first conv and the output conv do, and F1 and the skip additions
            run in the autocast's 16-bit type: faster (bf16 CPUs), a few hundredths of a dB
            lower (docs/results/benchmarks.md). Without autocast both are the same float32
            network. It changes no weights, so inference may set it on any HDCN weights
            (:data:`RUNTIME_OPTIONS`).

    No output clipping (the paper states none). ``context`` and
    ``align`` describe exact tiled inference (see the common SR interface).
    """

    def __init__(self, scale: int, channels: int = 1, features: int = 64,
                 up_channels: int | None = None, upsampler: str = "deconv", encdec: bool = True,
                 encdec_depth: int = 1, dilation: bool = True, skips: str = "both",
                 init: str = "paper", residual: bool = False, fp32_features: bool = True):
        super().__init__()
        self.scale = scale = check_scale("hdcn", scale)
        self.channels = channels = check_channels("hdcn", channels)
        features = check_int("hdcn", "features", features, 1)
        up_channels = channels if up_channels is None else check_int(
            "hdcn", "up_channels", up_channels, 1)
        _check_choice("upsampler", upsampler, UPSAMPLERS)
        _check_bool("encdec", encdec)
        encdec_depth = check_int("hdcn", "encdec_depth", encdec_depth, 1)
        _check_bool("dilation", dilation)
        _check_choice("skips", skips, SKIPS)
        _check_choice("init", init, INITS)
        _check_bool("residual", residual)
        _check_bool("fp32_features", fp32_features)
        if upsampler == "bicubic" and up_channels != channels:
            raise ConfigError(f"model.hdcn: up_channels must equal channels ({channels}) with "
                              f"upsampler 'bicubic', got {up_channels}")
        self.config = dict(features=features, up_channels=up_channels, upsampler=upsampler,
                           encdec=encdec, encdec_depth=encdec_depth, dilation=dilation,
                           skips=skips, init=init, residual=residual,
                           fp32_features=fp32_features)
        self.local_skip = skips in ("local", "both")
        self.long_skip = skips in ("long", "both")

        if upsampler in ("deconv", "deconv_centered"):
            self.upsample = DeconvUpsampler(channels, up_channels, scale,
                                            centered=upsampler == "deconv_centered")
            up_context = 1
        elif upsampler == "pixelshuffle":
            self.upsample = PixelShuffleUpsampler(channels, up_channels, scale)
            up_context = 1
        else:
            self.upsample = BicubicUpsampler(scale)
            up_context = BICUBIC_CONTEXT
        self.extract = nn.Sequential(
            nn.Conv2d(up_channels, features, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True))
        block_cls = EncoderDecoder if encdec else PlainBlock
        self.denoise = block_cls(features, encdec_depth)
        rates = (1, 1, 2, 4) if dilation else (1, 1, 1, 1)
        layers: list[nn.Module] = []
        for r in rates:
            layers += [nn.Conv2d(features, features, 3, padding=r, dilation=r),
                       nn.ReLU(inplace=True)]
        self.dilated = nn.Sequential(*layers)
        self.fuse = nn.Conv2d(features, features, 3, padding=1)
        self.tail = nn.Conv2d(features, channels, 1)

        # receptive radius in HR pixels: extract (2) + block + dilated (sum of rates) + fuse (1)
        radius = 2 + block_cls.radius(encdec_depth) + sum(rates) + 1
        self.context = context_from_hr_radius(radius, scale, up_context)
        self.residual = residual
        self.fp32_features = fp32_features
        if residual:
            self.context = max(self.context, BICUBIC_CONTEXT)
        # the enc-dec grid has period 2^depth in HR pixels: tile origins (LR) times scale must
        # be multiples of it
        period = 2 ** encdec_depth if encdec else 1
        self.align = next(a for a in range(1, period + 1) if (scale * a) % period == 0)
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "paper") -> None:
        _check_choice("init", init, INITS)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                if init == "paper":
                    nn.init.normal_(m.weight, 0.0, 0.001)
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, lr: Tensor) -> Tensor:
        # The image itself flows through F1 (no residual on an interpolation unless
        # `residual`), so under a 16-bit autocast the upsampling, the first conv and the output
        # conv always run in float32, and with `fp32_features` (default) the second conv, F1
        # and the skip additions too; the encoder-decoder and dilated branches, whose outputs
        # are added to F1, run autocast.
        dev = lr.device.type
        fp32 = self.fp32_features
        conv1, relu1, conv2, relu2 = self.extract
        with torch.autocast(dev, enabled=False):
            x = relu1(conv1(self.upsample(lr.float())))
            if fp32:
                f1 = relu2(conv2(x))
        if not fp32:
            f1 = relu2(conv2(x))
        f2 = block = self.denoise(f1)
        if self.local_skip:
            f2 = f1 + (block.float() if fp32 else block)
        y = self.fuse(self.dilated(f2))
        with torch.autocast(dev, enabled=False):
            if self.long_skip:
                y = (y.float() + f1) if fp32 else (y + f1)
            y = self.tail(y.float())
            if self.residual:
                y = y + upsample_bicubic(lr, self.scale)
            return y.to(lr.dtype)


def _check_choice(key: str, value, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"model.hdcn: {key} must be one of {', '.join(choices)}, got {value!r}")


def _check_bool(key: str, value) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"model.hdcn: {key} must be true or false, got {value!r}")


HDCN_OPTIONS = tuple(n for n in inspect.signature(HDCN.__init__).parameters
                     if n not in ("self", "scale", "channels"))
# the options that change no weights: inference may set them on weights trained otherwise
RUNTIME_OPTIONS = ("fp32_features",)


def hdcn(scale: int, channels: int = 1, **options) -> HDCN:
    """Build HDCN; ``options`` are HDCN's keyword arguments (unknown ones raise ConfigError)."""
    for key in options:
        if key not in HDCN_OPTIONS:
            raise ConfigError(f"model.hdcn: unknown option {key!r} "
                              f"(known: {', '.join(HDCN_OPTIONS)})")
    return HDCN(scale, channels, **options)
