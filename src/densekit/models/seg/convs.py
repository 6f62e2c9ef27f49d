"""Convolutions computed another way, with the same parameters, state_dict and result, where
oneDNN's own convolution is slow on the shapes the segmentation networks train on.

:class:`PatchConv2d` and :class:`AtrousConv2d` are ``nn.Conv2d`` subclasses and
:class:`GlobalAvgPool2d` an ``nn.AdaptiveAvgPool2d(1)``: weights load, save, initialise and
export exactly as torch's modules' (under ``torch.compile`` / ``torch.export``, i.e. ONNX
export, they run as torch's modules).
Measured as ratios of interleaved runs (bf16 autocast + channels_last, 1 thread, medians of 5-6
runs, on a loaded 2-core AMX Xeon; absolute times there mean little).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PatchConv2d", "AtrousConv2d", "GlobalAvgPool2d"]


def _plain(module: nn.Module) -> bool:
    """Run the module as torch's own: while compiling / exporting / tracing."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


class PatchConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` without padding, stride, dilation or groups, computed as ONE matrix
    product over its input patches: the patches (N * H_out * W_out rows, C * kh * kw columns,
    in the order of the weight's memory layout, so that the weight matrix is a view) times the
    weight matrix, + bias. The output is channels_last in memory (the product's natural
    layout) for a channels_last input, NCHW otherwise.

    For FCN-8s' fc6 / fc7, whose inputs are tiny (pool5 is 6x8 for a 180x240 crop) and whose
    weights are huge (4096 x 25088, 4096 x 4096), oneDNN's convolution backward is a weight
    gradient with 96 products per weight (the pixels of the batch) that runs at a few percent
    of the matmul's speed: forward + backward of fc6 + fc7 as convolutions took 2.4x-2.6x the
    time of the products (fc7 alone 2.6x-2.9x), and the whole FCN-8s training step (2 x 3 x
    180 x 240) took 0.527x the time with the products (0.522-0.532 over 6 pairs)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size)

    def _apply(self, fn, recurse=True):
        """The weight stays contiguous (NCHW) through ``.to(memory_format=channels_last)``:
        the product uses it as a matrix either way, and torch's fused optimizers copy a
        channels_last parameter to a contiguous one and back every step (fc6: 411 MB; the
        FCN-8s step took 0.86x the time with all weights NCHW, where SwiftNet's took 1.04x
        and DeepLab's 1.01x: only fc6 keeps NCHW)."""
        super()._apply(fn, recurse)
        if not self.weight.is_contiguous():
            self.weight.data = self.weight.data.contiguous()
        return self

    def forward(self, x: Tensor) -> Tensor:
        if _plain(self):
            return super().forward(x)
        n, c, h, w = x.shape
        kh, kw = self.kernel_size
        oh, ow = h - kh + 1, w - kw + 1
        if oh < 1 or ow < 1:
            raise ValueError(f"PatchConv2d: input {h}x{w} is smaller than the kernel {kh}x{kw}")
        weight, o = self.weight, self.out_channels
        if weight.is_contiguous() and kh * kw > 1:
            # NCHW weight: columns in (C, kh, kw) order, F.unfold's
            cols = F.unfold(x, (kh, kw)).transpose(1, 2).reshape(n * oh * ow, c * kh * kw)
            wmat = weight.reshape(o, c * kh * kw)
        else:
            # channels_last weight (or 1x1): columns in (kh, kw, C) order, the windows of the
            # NHWC input as a strided view (one copy: the patch matrix)
            xh = x.permute(0, 2, 3, 1).contiguous()  # a view for a channels_last input
            sn, sh, sw, sc = xh.stride()
            cols = xh.as_strided((n, oh, ow, kh, kw, c), (sn, sh, sw, sh, sw, sc)) \
                .reshape(n * oh * ow, kh * kw * c)
            wmat = weight.permute(0, 2, 3, 1).reshape(o, kh * kw * c)
        out = F.linear(cols, wmat, self.bias).view(n, oh, ow, o).permute(0, 3, 1, 2)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            return out
        return out.contiguous()


def _useful_taps(k: int, d: int, p: int, size: int) -> tuple[int, int] | None:
    """(first, last) kernel index along one axis whose tap reads the input (not only the zero
    padding) for at least one output position; stride 1. None if no tap does."""
    out = size + 2 * p - d * (k - 1)
    good = [r for r in range(k) if r * d - p <= size - 1 and out - 1 + r * d - p >= 0]
    return (good[0], good[-1]) if good else None


class AtrousConv2d(nn.Conv2d):
    """A (dilated) ``nn.Conv2d`` with stride 1 that leaves out the kernel rows / columns whose
    taps only ever read zero padding: with dilation d and padding d, the outer taps of a 3x3
    kernel see only padding on an axis of at most d pixels. Exactly the same function (those
    taps add zeros), fewer products: e.g. DeepLab's ASPP on the 23x30 stride-8 features of a
    180x240 crop runs its rate-36 branch as a 1x1 convolution and its rate-24 branch as a 1x3
    one (dilation 24 along the width). oneDNN computes every tap, and its weight gradient of a
    dilated 3x3 convolution runs at ~10% of its input gradient's speed here: forward + backward
    of one 2048 -> 256 branch took 0.13x (rate 36) and 0.27x (rate 24) the convolution's time.
    FLOP counters count the products done."""

    def forward(self, x: Tensor) -> Tensor:
        if _plain(self) or self.stride != (1, 1) or self.groups != 1 or \
                self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        (kh, kw), (dh, dw), (ph, pw) = self.kernel_size, self.dilation, self.padding
        h, w = x.shape[-2:]
        rows, cols = _useful_taps(kh, dh, ph, h), _useful_taps(kw, dw, pw, w)
        if rows is None or cols is None or (rows == (0, kh - 1) and cols == (0, kw - 1)):
            return super().forward(x)
        (r0, r1), (c0, c1) = rows, cols
        kh2, kw2 = r1 - r0 + 1, c1 - c0 + 1
        weight = self.weight[:, :, r0:r1 + 1, c0:c1 + 1]
        top, left = ph - r0 * dh, pw - c0 * dw
        bottom = h + 2 * ph - dh * (kh - 1) + (kh2 - 1) * dh - h - top
        right = w + 2 * pw - dw * (kw - 1) + (kw2 - 1) * dw - w - left
        dilation = (dh if kh2 > 1 else 1, dw if kw2 > 1 else 1)
        if top == bottom >= 0 and left == right >= 0:
            return F.conv2d(x, weight, self.bias, 1, (top, left), dilation)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, self.bias, 1, 0, dilation)


class GlobalAvgPool2d(nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d(1)`` whose input gradient keeps the input's memory layout: it
    averages with ``F.avg_pool2d`` over the whole map. torch's adaptive pooling backward
    (2.14, CPU) lays the gradient of a channels_last input out as NCHW (the (N, C, 1, 1)
    output gradient is contiguous in both layouts); in DeepLab's ASPP that NCHW gradient is
    summed with the four convolution branches' channels_last ones into the gradient of the
    2048-channel stride-8 features, and adding tensors of different layouts took 7.9x as long
    as of the same layout (2 x 2048 x 23 x 30, bf16), and the DeepLab-R50 training step took
    0.92x the time with this pooling (0.89-0.94 over 6 pairs)."""

    def __init__(self):
        super().__init__(1)

    def forward(self, x: Tensor) -> Tensor:
        if _plain(self):
            return super().forward(x)
        return F.avg_pool2d(x, x.shape[-2:])
