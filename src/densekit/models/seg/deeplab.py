"""DeepLab-style ResNet50: the SS-GAN paper's "ResNet50-G" generator (paper Table 1, right).

Composed from torchvision pieces:

* ``backbone``: torchvision ``resnet50(replace_stride_with_dilation=[False, True, True])`` up to
  ``layer4`` (stem, layer1..layer4; keys as in torchvision's DeepLabV3, ``backbone.conv1...``).
  Stages 3 and 4 are dilated instead of strided: output stride 8, same parameters (Table 1,
  "hole convolution"). ``output_stride=16`` (dilate stage 4 only) is offered as a cheaper option.
* ``classifier``: torchvision's DeepLabV3 ``ASPP`` - a 1x1 branch, three atrous 3x3 branches
  (rates 12, 24, 36 at output stride 8; 6, 12, 18 at 16), the image-pooling branch (global
  average pool -> 1x1 conv -> BN/ReLU -> upsample: the paper's "enhanced ASPP") and the 1x1 256
  projection (+ BN, ReLU, dropout 0.5) - then a 1x1 256 conv + BN + ReLU (Table 1 stage 6; note
  torchvision's ``DeepLabHead`` uses 3x3 here) and a 1x1 conv to ``num_classes``. The atrous
  branches' convolutions are :class:`~densekit.models.seg.convs.AtrousConv2d`: the same
  parameters and function, without the taps that only read padding on small feature maps;
  the pooling branch averages with :class:`~densekit.models.seg.convs.GlobalAvgPool2d`.
* bilinear interpolation (``align_corners=False``) of the logits to the input size, as
  torchvision does. Any ``H, W >= 1`` works (feature maps have ``ceil(H / 8)`` rows).

Caveat inherited from torchvision's ASPP: its image-pooling branch has a BatchNorm on a 1x1 map,
so a forward pass in training mode needs a batch of at least 2 images (the paper uses 2).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models import ResNet50_Weights
from torchvision.models.segmentation.deeplabv3 import ASPP

from densekit.errors import ConfigError
from densekit.models.seg.common import check_num_classes, load_pretrained_state, load_state_into
from densekit.models.seg.convs import AtrousConv2d, GlobalAvgPool2d

__all__ = ["DeepLabR50", "deeplab_r50", "DEEPLAB_OPTIONS", "RESNET_STEM"]

RESNET_STEM = ("conv1", "bn1", "relu", "maxpool")
_DILATION = {8: [False, True, True], 16: [False, False, True]}
_RATES = {8: (12, 24, 36), 16: (6, 12, 18)}


class DeepLabR50(nn.Module):
    """ResNet50 (dilated) + ASPP with image pooling; ``forward(images)`` -> (N, C, H, W) logits.

    Args:
        num_classes: number of output classes C.
        output_stride: 8 (paper: stages 3 and 4 dilated) or 16 (stage 4 only).
        atrous_rates: the three ASPP rates; default (12, 24, 36) for stride 8, (6, 12, 18) for 16.
        backbone: a torchvision ``resnet50`` built with the ``replace_stride_with_dilation``
            matching ``output_stride`` (weights already loaded, or not); None builds a fresh one.
    """

    family = "resnet"

    def __init__(self, num_classes: int, output_stride: int = 8,
                 atrous_rates: Sequence[int] | None = None,
                 backbone: torchvision.models.ResNet | None = None):
        super().__init__()
        owner = "model.deeplab_r50"
        self.num_classes = check_num_classes(owner, num_classes)
        if isinstance(output_stride, bool) or output_stride not in _DILATION:
            raise ConfigError(f"{owner}: output_stride must be 8 or 16, got {output_stride!r}")
        if atrous_rates is None:
            atrous_rates = _RATES[output_stride]
        if isinstance(atrous_rates, (str, bytes)) or not isinstance(atrous_rates, Sequence) \
                or len(atrous_rates) != 3 or not all(
                    isinstance(r, int) and not isinstance(r, bool) and r >= 1
                    for r in atrous_rates):
            raise ConfigError(f"{owner}: atrous_rates must be three integers >= 1, "
                              f"got {atrous_rates!r}")
        self.output_stride = output_stride
        self.atrous_rates = tuple(atrous_rates)
        if backbone is None:
            backbone = torchvision.models.resnet50(
                replace_stride_with_dilation=_DILATION[output_stride])
        _check_resnet50(backbone, output_stride)
        names = RESNET_STEM + ("layer1", "layer2", "layer3", "layer4")
        self.backbone = nn.Sequential(OrderedDict((n, getattr(backbone, n)) for n in names))
        self.classifier = nn.Sequential(
            ASPP(2048, self.atrous_rates, 256),
            nn.Conv2d(256, 256, 1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(),
            nn.Conv2d(256, self.num_classes, 1),
        )
        # the atrous 3x3 branches skip the taps that only read padding (same function)
        for branch in self.classifier[0].convs[1:4]:
            conv = branch[0]
            atrous = nn.utils.skip_init(AtrousConv2d, conv.in_channels, conv.out_channels,
                                        conv.kernel_size, padding=conv.padding,
                                        dilation=conv.dilation, bias=False)  # no RNG draws
            atrous.load_state_dict(conv.state_dict())
            branch[0] = atrous
        # the image-pooling branch: its input gradient in the features' layout
        self.classifier[0].convs[4][0] = GlobalAvgPool2d()

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        out = self.classifier(self.backbone(x))
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


def _check_resnet50(resnet, output_stride: int) -> None:
    ok = isinstance(resnet, torchvision.models.ResNet) and all(
        hasattr(resnet, n) for n in RESNET_STEM + ("layer1", "layer2", "layer3", "layer4")) \
        and resnet.layer4[-1].conv3.out_channels == 2048
    if not ok:
        raise ConfigError("model.deeplab_r50: backbone must be a torchvision resnet50()")
    strides = (resnet.layer3[0].conv2.stride[0], resnet.layer4[0].conv2.stride[0])
    want = {8: (1, 1), 16: (2, 1)}[output_stride]
    if strides != want:
        raise ConfigError(f"model.deeplab_r50: backbone is not dilated for output_stride "
                          f"{output_stride} (build it with replace_stride_with_dilation="
                          f"{_DILATION[output_stride]})")


DEEPLAB_OPTIONS = ("output_stride", "atrous_rates")


def deeplab_r50(num_classes: int, *, pretrained=None, output_stride: int = 8,
                atrous_rates: Sequence[int] | None = None) -> DeepLabR50:
    """Build the DeepLab-style ResNet50 generator.

    ``pretrained``: None (from scratch), "imagenet" (``ResNet50_Weights.IMAGENET1K_V1`` through
    torchvision's loader), a ``ResNet50_Weights`` member, or the path of a torchvision resnet50
    state_dict file (the ``fc`` layer is loaded and then dropped). The head starts from
    PyTorch's default initialisation, as in torchvision's DeepLabV3.
    """
    owner = "model.deeplab_r50"
    check_num_classes(owner, num_classes)
    if isinstance(output_stride, bool) or output_stride not in _DILATION:
        raise ConfigError(f"{owner}: output_stride must be 8 or 16, got {output_stride!r}")
    loaded = load_pretrained_state(owner, pretrained, ResNet50_Weights,
                                   ResNet50_Weights.IMAGENET1K_V1)
    resnet = torchvision.models.resnet50(replace_stride_with_dilation=_DILATION[output_stride])
    if loaded is not None:
        state, source = loaded
        load_state_into(owner, resnet, state, source, "resnet50")
    return DeepLabR50(num_classes, output_stride=output_stride, atrous_rates=atrous_rates,
                      backbone=resnet)
