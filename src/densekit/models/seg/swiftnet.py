"""SwiftNet-style ResNet-18 (Oršić et al., CVPR 2019): a light generator that trains from scratch.

The paper's generators (VGG16 FCN-8s, ResNet50 DeepLab) were made to be fine-tuned from
ImageNet; on a CPU budget without ImageNet weights a small dense-convolution network learns
CamVid much faster per second. SwiftNet is such a network, composed from torchvision pieces:

* ``backbone``: torchvision ``resnet18`` (stem, layer1..layer4; keys ``backbone.conv1...``),
  strides 4, 8, 16, 32 with 64, 128, 256, 512 channels. Only dense 3x3 convolutions: on CPUs
  with bf16 matrix units they run at a large fraction of the peak, where depthwise designs of
  fewer FLOPs (MobileNet, ENet) are memory-bound.
* ``spp``: spatial pyramid pooling on the stride-32 features: a 1x1 bottleneck to ``width``
  channels, average pools over grids of 8, 4, 2, 1 cells along the shorter side (aspect-aware),
  each 1x1 to ``width / 4`` channels and upsampled, concatenated, fused by a 1x1 to ``width``.
* ``decoder``: the ladder-style upsampling path: at strides 16, 8, 4 the coarser map is
  upsampled bilinearly and added to a 1x1 projection of the encoder features at that stride,
  then blended by a 3x3 convolution (``width`` channels).
* ``head``: a 1x1 convolution to ``num_classes`` at stride 4, bilinear upsampling to the input
  size (``align_corners=False``). Any ``H, W >= 1`` works.

Decoder units are pre-activation (BatchNorm, ReLU, conv), as in SwiftNet.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models import ResNet18_Weights

from densekit.errors import ConfigError
from densekit.models.seg.common import check_num_classes, load_pretrained_state, load_state_into

__all__ = ["SwiftNetR18", "swiftnet_r18", "SWIFTNET_OPTIONS"]

_STAGES = ("layer1", "layer2", "layer3", "layer4")
_STAGE_CHANNELS = (64, 128, 256, 512)


def _bn_relu_conv(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                         nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False))


class SpatialPyramidPooling(nn.Module):
    """SwiftNet's SPP: bottleneck, pooled branches over ``grids`` cells (shorter side), fuse."""

    def __init__(self, in_channels: int, width: int, grids: tuple[int, ...] = (8, 4, 2, 1)):
        super().__init__()
        self.grids = tuple(grids)
        branch = max(1, width // len(self.grids))
        self.bottleneck = _bn_relu_conv(in_channels, width, 1)
        self.branches = nn.ModuleList(_bn_relu_conv(width, branch, 1) for _ in self.grids)
        self.fuse = _bn_relu_conv(width + branch * len(self.grids), width, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.bottleneck(x)
        h, w = x.shape[-2:]
        short = min(h, w)
        out = [x]
        for g, branch in zip(self.grids, self.branches):
            cells = (max(1, min(h, round(g * h / short))), max(1, min(w, round(g * w / short))))
            pooled = branch(F.adaptive_avg_pool2d(x, cells))
            out.append(F.interpolate(pooled, size=(h, w), mode="bilinear", align_corners=False))
        return self.fuse(torch.cat(out, 1))


class UpsampleBlend(nn.Module):
    """One step of the upsampling path: upsample the coarse map, add the projected skip, blend."""

    def __init__(self, skip_channels: int, width: int):
        super().__init__()
        self.skip = _bn_relu_conv(skip_channels, width, 1)
        self.blend = _bn_relu_conv(width, width, 3)

    def forward(self, coarse: Tensor, skip: Tensor) -> Tensor:
        up = F.interpolate(coarse, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.blend(up + self.skip(skip))


class SwiftNetR18(nn.Module):
    """ResNet-18 encoder + SPP + ladder upsampling; ``forward(images)`` -> (N, C, H, W) logits.

    Args:
        num_classes: number of output classes C.
        width: channels of the SPP output and of the upsampling path (SwiftNet: 128).
        backbone: a torchvision ``resnet18`` (weights already loaded, or not); None builds one.
    """

    family = "resnet18"  # the SS-GAN discriminator's image branch: ResNet-18 stem + layer1

    def __init__(self, num_classes: int, width: int = 128,
                 backbone: torchvision.models.ResNet | None = None):
        super().__init__()
        owner = "model.swiftnet_r18"
        self.num_classes = check_num_classes(owner, num_classes)
        if isinstance(width, bool) or not isinstance(width, int) or width < 4:
            raise ConfigError(f"{owner}: width must be an integer >= 4, got {width!r}")
        self.width = width
        if backbone is None:
            backbone = torchvision.models.resnet18()
        if not isinstance(backbone, torchvision.models.ResNet) or \
                backbone.layer4[-1].conv2.out_channels != 512 or \
                not isinstance(backbone.layer1[0], torchvision.models.resnet.BasicBlock):
            raise ConfigError(f"{owner}: backbone must be a torchvision resnet18()")
        names = ("conv1", "bn1", "relu", "maxpool") + _STAGES
        self.backbone = nn.Sequential(OrderedDict((n, getattr(backbone, n)) for n in names))
        self.spp = SpatialPyramidPooling(_STAGE_CHANNELS[-1], width)
        # coarse to fine: strides 16, 8, 4
        self.decoder = nn.ModuleList(UpsampleBlend(c, width) for c in _STAGE_CHANNELS[-2::-1])
        self.head = _bn_relu_conv(width, self.num_classes, 1)
        self.head[-1].bias = nn.Parameter(torch.zeros(self.num_classes))

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        feats = []
        for name in _STAGES:
            x = getattr(b, name)(x)
            feats.append(x)
        y = self.spp(feats[-1])
        for block, skip in zip(self.decoder, reversed(feats[:-1])):
            y = block(y, skip)
        return F.interpolate(self.head(y), size=size, mode="bilinear", align_corners=False)


SWIFTNET_OPTIONS = ("width",)


def swiftnet_r18(num_classes: int, *, pretrained=None, width: int = 128) -> SwiftNetR18:
    """Build the SwiftNet-style ResNet-18 generator.

    ``pretrained``: None (from scratch), "imagenet" (``ResNet18_Weights.IMAGENET1K_V1`` through
    torchvision's loader), a ``ResNet18_Weights`` member, or the path of a torchvision resnet18
    state_dict file (its ``fc`` layer is loaded and then dropped). The SPP, upsampling path and
    head start from PyTorch's default initialisation.
    """
    owner = "model.swiftnet_r18"
    check_num_classes(owner, num_classes)
    loaded = load_pretrained_state(owner, pretrained, ResNet18_Weights,
                                   ResNet18_Weights.IMAGENET1K_V1)
    resnet = torchvision.models.resnet18()
    if loaded is not None:
        state, source = loaded
        load_state_into(owner, resnet, state, source, "resnet18")
    return SwiftNetR18(num_classes, width=width, backbone=resnet)
