"""FCN-8s on VGG16: the SS-GAN paper's "VGG16-G" generator (paper Table 1, left column).

Long, Shelhamer, Darrell, "Fully convolutional networks for semantic segmentation". Layout:

* ``features``: torchvision's ``vgg16().features`` unchanged (conv1_1 .. pool5, indices and names
  as in torchvision, so ImageNet weights load by key), except that the five max-pools use
  ``ceil_mode=True`` (see "input sizes" below);
* ``fc6``: conv 7x7, 512 -> 4096, padding 3, + ReLU + dropout; ``fc7``: conv 1x1, 4096 -> 4096,
  + ReLU + dropout. Their weights are VGG16's ``classifier.0`` (25088 x 4096) and
  ``classifier.3`` (4096 x 4096) RESHAPED to 4096x512x7x7 and 4096x4096x1x1 (the paper keeps
  the ImageNet fully connected weights, 1.2). The flatten order of torchvision's VGG
  (channel, row, column) is exactly a conv kernel's (out, in, kh, kw) layout. Without
  pretrained weights the reshaped layers keep torchvision's initialisation (N(0, 0.01)).
* score layers (1x1 convs to ``num_classes``) on fc7, pool4 and pool3, zero-initialised as in
  the reference FCN code;
* FCN-8s fusion: ``upscore2`` (2x transposed conv of the fc7 scores) + pool4 scores,
  ``upscore_pool4`` (2x transposed conv) + pool3 scores, both transposed convs initialised to
  bilinear upsampling and learned; then a fixed 8x bilinear interpolation (the paper: "8 倍插值
  放大"; the reference FCN also keeps its last upsampling fixed to bilinear).

Input sizes: the reference FCN pads the input by 100 px so that fc6's valid 7x7 conv never has
an empty output, and then crops with hand-computed offsets. Here instead:

1. the pools use ``ceil_mode=True``, so pool-k output has exactly ``ceil(H / 2^k)`` rows for any
   ``H >= 1`` and cell ``i`` covers input pixels ``[i * 2^k, (i + 1) * 2^k)`` (the last one
   partially), i.e. all score maps share one top-left-aligned grid with centres at
   ``s * i + (s - 1) / 2``;
2. fc6 uses ``padding=3`` ("same"): the fc7 score map has pool5's size; at 224x224 input the
   centre fc6 cell sees exactly the 7x7 pool5 window of the ImageNet classifier;
3. each 2x transposed conv (kernel 4, stride 2, padding 1) gives exactly twice its input size,
   which is >= the next finer map (``2 * ceil(H / 2s) >= ceil(H / s)``): the extra last
   row/column is cropped at the bottom/right; with the bilinear kernel and these paddings the
   upsampled cell centres land on the finer grid's centres (half-pixel aligned);
4. the final 8x step interpolates (bilinear, ``align_corners=False``) the pool3-level scores to
   ``8 * ceil(H / 8)`` and crops the bottom/right to ``H`` x ``W``, again centre-aligned.

So any ``H, W >= 1`` (odd included) gives logits of exactly the input size, without padding
the image and without offsets that depend on the size.

``width`` (default 1: the paper's network) multiplies every channel count (VGG16's 64..512 and
fc6/fc7's 4096) for a lighter FCN-8s of the same layout, e.g. for CPUs and small data sets (the
demo uses 0.25); ImageNet weights exist only for width 1.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models import VGG16_Weights

from densekit.errors import ConfigError
from densekit.models.seg.common import check_num_classes, load_pretrained_state, load_state_into
from densekit.models.seg.convs import PatchConv2d

__all__ = ["FCN8s", "fcn8s_vgg16", "FCN8S_OPTIONS", "bilinear_kernel", "PatchConv2d"]

# indices of the max-pools in torchvision's vgg16().features (cfg "D")
VGG16_POOLS = (4, 9, 16, 23, 30)


def bilinear_kernel(channels: int, kernel_size: int) -> Tensor:
    """(channels, channels, k, k) weight of a transposed conv that upsamples each channel
    bilinearly by ``(k + 1) // 2`` (the FCN ``upsample_filt``); no mixing of channels."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float64)
    filt = 1 - (og - center).abs() / factor
    kernel = (filt[:, None] * filt[None, :]).to(torch.float32)
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    idx = torch.arange(channels)
    weight[idx, idx] = kernel
    return weight


# ---- the network --------------------------------------------------------------------------------
class FCN8s(nn.Module):
    """FCN-8s with a VGG16 backbone; ``forward(images (N, 3, H, W))`` -> logits (N, C, H, W).

    Args:
        num_classes: number of output classes C (21 for PASCAL VOC, 19 for Cityscapes).
        backbone: a torchvision ``vgg16()`` (weights already loaded, or not); None builds a fresh
            one (torchvision's initialisation). Its ``features`` are taken over, its
            ``classifier.0`` / ``classifier.3`` reshaped into fc6 / fc7 (copied), the rest
            dropped.
        dropout: dropout probability after fc6 and fc7 (0.5 as in VGG16 / FCN).
    """

    family = "vgg"

    def __init__(self, num_classes: int, backbone: torchvision.models.VGG | None = None,
                 dropout: float = 0.5, width: float = 1.0):
        super().__init__()
        self.num_classes = check_num_classes("model.fcn8s_vgg16", num_classes)
        _check_dropout(dropout)
        ch = _check_width(width)
        if width != 1 and backbone is not None:
            raise ConfigError("model.fcn8s_vgg16: a VGG16 backbone (ImageNet weights) needs "
                              f"width 1, got width {width}")
        if backbone is None:
            vgg = torchvision.models.vgg16() if width == 1 else _narrow_vgg16(ch)
        else:
            vgg = backbone
        _check_vgg16(vgg, ch)
        self.features = vgg.features
        for i in VGG16_POOLS:
            self.features[i].ceil_mode = True

        fc6, fc7 = vgg.classifier[0], vgg.classifier[3]
        c512, c4096 = ch(512), ch(4096)
        # fc6 pads explicitly in forward (same result as padding=3): oneDNN's weight gradient of
        # a padded conv whose input is smaller than its kernel (pool5 below 7x7, e.g. 6x8 for
        # 180x240 crops) is ~25x slower than for the pre-padded input
        # fc6 / fc7 run as matrix products (PatchConv2d): as convolutions on pool5's few pixels,
        # oneDNN's backward made the training step 1.9x as long
        self.fc6 = PatchConv2d(c512, c4096, 7)
        self.relu6 = nn.ReLU(inplace=True)
        self.drop6 = nn.Dropout(dropout)
        self.fc7 = PatchConv2d(c4096, c4096, 1)
        self.relu7 = nn.ReLU(inplace=True)
        self.drop7 = nn.Dropout(dropout)
        with torch.no_grad():
            self.fc6.weight.copy_(fc6.weight.reshape(c4096, c512, 7, 7))
            self.fc6.bias.copy_(fc6.bias)
            self.fc7.weight.copy_(fc7.weight.reshape(c4096, c4096, 1, 1))
            self.fc7.bias.copy_(fc7.bias)

        c = self.num_classes
        self.score_fr = nn.Conv2d(c4096, c, 1)
        self.score_pool4 = nn.Conv2d(c512, c, 1)
        self.score_pool3 = nn.Conv2d(ch(256), c, 1)
        self.upscore2 = nn.ConvTranspose2d(c, c, 4, stride=2, padding=1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(c, c, 4, stride=2, padding=1, bias=False)
        self.reset_head()

    def reset_head(self) -> None:
        """Score layers to zero (reference FCN), transposed convs to bilinear upsampling."""
        for m in (self.score_fr, self.score_pool4, self.score_pool3):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        with torch.no_grad():
            for m in (self.upscore2, self.upscore_pool4):
                m.weight.copy_(bilinear_kernel(self.num_classes, 4))

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        pool3 = self.features[: VGG16_POOLS[2] + 1](x)
        pool4 = self.features[VGG16_POOLS[2] + 1: VGG16_POOLS[3] + 1](pool3)
        pool5 = self.features[VGG16_POOLS[3] + 1:](pool4)
        fc6 = self.drop6(self.relu6(self.fc6(F.pad(pool5, (3, 3, 3, 3)))))
        fc7 = self.drop7(self.relu7(self.fc7(fc6)))

        score = _float32(self.score_fr, fc7)
        h4, w4 = pool4.shape[-2:]
        score = self.upscore2(score)[..., :h4, :w4] + _float32(self.score_pool4, pool4)
        h3, w3 = pool3.shape[-2:]
        score = self.upscore_pool4(score)[..., :h3, :w3] + _float32(self.score_pool3, pool3)
        score = F.interpolate(score, size=(8 * h3, 8 * w3), mode="bilinear", align_corners=False)
        return score[..., :h, :w]


def _float32(conv: nn.Module, x: Tensor) -> Tensor:
    """The 1x1 score layers run in float32 even under autocast (they are cheap). In bf16 on
    AMX CPUs (torch 2.14.1's oneDNN), the weight gradient of a 1x1 conv from 4096 channels to a
    few classes corrupts the heap with 2 or more threads: the full-width FCN-8s on CamVid's 11
    classes aborted ("double free or corruption") on its second training step (1, 2, 5, 10, 11
    and 12 output channels crashed, 16, 19, 21 and 32 did not). float32 is unaffected."""
    with torch.autocast(x.device.type, enabled=False):
        return conv(x.float())


def _check_dropout(dropout) -> None:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
            or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model.fcn8s_vgg16: dropout must be in [0, 1), got {dropout!r}")


def _check_width(width):
    """The channel-count function of ``width`` (a number in (0, 1])."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise ConfigError(f"model.fcn8s_vgg16: width must be a number in (0, 1], got {width!r}")
    return lambda c: max(1, round(c * width))


def _narrow_vgg16(ch) -> torchvision.models.VGG:
    """A torchvision VGG16 (cfg "D") with every channel count mapped by ``ch``."""
    from torchvision.models.vgg import cfgs, make_layers

    vgg = torchvision.models.VGG(make_layers([v if v == "M" else ch(v) for v in cfgs["D"]]))
    # the classifier of the narrow network: the same layout, so fc6/fc7 reshape as for width 1
    vgg.classifier[0] = nn.Linear(ch(512) * 49, ch(4096))
    vgg.classifier[3] = nn.Linear(ch(4096), ch(4096))
    for i in (0, 3):
        nn.init.normal_(vgg.classifier[i].weight, 0, 0.01)
        nn.init.zeros_(vgg.classifier[i].bias)
    return vgg


def _check_vgg16(vgg, ch=lambda c: c) -> None:
    feats = getattr(vgg, "features", None)
    cls = getattr(vgg, "classifier", None)
    c512, c4096 = ch(512), ch(4096)
    ok = (isinstance(feats, nn.Sequential) and len(feats) == 31
          and all(isinstance(feats[i], nn.MaxPool2d) for i in VGG16_POOLS)
          and isinstance(cls, nn.Sequential) and len(cls) >= 4
          and isinstance(cls[0], nn.Linear)
          and tuple(cls[0].weight.shape) == (c4096, c512 * 49)
          and isinstance(cls[3], nn.Linear) and tuple(cls[3].weight.shape) == (c4096, c4096))
    if not ok:
        raise ConfigError("model.fcn8s_vgg16: backbone must be a torchvision vgg16() "
                          "(no batch norm)")


FCN8S_OPTIONS = ("dropout", "width")


def fcn8s_vgg16(num_classes: int, *, pretrained=None, dropout: float = 0.5,
                width: float = 1.0) -> FCN8s:
    """Build FCN-8s on VGG16.

    ``pretrained``: None (from scratch), "imagenet" (``VGG16_Weights.IMAGENET1K_V1`` through
    torchvision's loader), a ``VGG16_Weights`` member, or the path of a torchvision vgg16
    state_dict file. Mismatching or unreadable weights raise ConfigError naming the source.
    """
    owner = "model.fcn8s_vgg16"
    check_num_classes(owner, num_classes)
    _check_dropout(dropout)
    _check_width(width)
    if width != 1:
        if pretrained:
            raise ConfigError(f"{owner}: ImageNet weights need width 1, got width {width}")
        return FCN8s(num_classes, dropout=dropout, width=width)
    loaded = load_pretrained_state(owner, pretrained, VGG16_Weights, VGG16_Weights.IMAGENET1K_V1)
    vgg = torchvision.models.vgg16()
    if loaded is not None:
        state, source = loaded
        load_state_into(owner, vgg, state, source, "vgg16")
    return FCN8s(num_classes, vgg, dropout=dropout)

