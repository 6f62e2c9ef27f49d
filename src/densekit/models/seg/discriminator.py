"""Adversarial network A of SS-GAN (paper 1.1, 1.3, Table 2; docs/ssgan.md 2).

``forward(image (N, 3, H, W), probs (N, C, H, W))`` -> logits (N, 1, 4, 4): one real/fake logit
per cell of a 4x4 grid; ``forward(image, probs, probs2)`` scores two maps of the same images with
one pass of the image branch (A's update: real and fake). The sigmoid of each cell is left to
``BCEWithLogits`` (numerically stable); the paper normalises every cell on its own so that a gross
error in one region does not drive the gradient of the whole map.

Structure (choices the paper leaves open are marked *):

* image branch ("low-level features of the first kind"): the first layers of the generator's
  backbone family, both ending at stride 4:
  - "vgg": conv1_1, conv1_2, pool1, conv2_1, conv2_2, pool2 of VGG16 (torchvision layout
    ``features.0`` .. ``features.9``, ReLUs included, pools with ``ceil_mode=True``) -> 128 ch;
  - "resnet": ResNet50's stem (conv1 7x7/2, bn1, relu, maxpool 3x3/2) + layer1 -> 256 ch;
  - "resnet18": ResNet-18's stem + layer1 -> 64 ch (for the SwiftNet-R18 generator).
  Initialised from scratch, from ImageNet weights (``pretrained``) or from a built generator
  (:meth:`SegDiscriminator.load_image_branch_from`); trainable unless ``freeze_image_branch``.
* label branch ("second kind", a shallow small net on the probability map)*: two 3x3 convs with
  stride 2, ``C -> label_width -> label_width``, each followed by LeakyReLU(0.2) -> stride 4.
* the branches meet* at stride 4 (1/4 of the input size, ``ceil(H / 4)`` rows for both
  branches, for any H): the image branch's natural resolution, and a size at which the fusion
  stack stays cheap (a 500x500 input gives 125x125). They are concatenated along channels.
* fusion (Table 2): conv3x3 ``width`` -> conv3x3 ``2 width`` -> avgpool 2x2/2 -> conv3x3
  ``4 width`` -> avgpool 2x2/2 -> conv3x3 ``8 width`` -> conv3x3 1, with LeakyReLU(0.2)* after
  every conv but the last, no normalisation* (optional spectral norm), zero padding; the avg
  pools use ``ceil_mode`` so odd sizes keep their last row (its average is over the rows that
  exist).
* the 1-channel map is brought to the 4x4 grid by adaptive average pooling*: each cell's logit
  is the mean logit over its region (for tiny inputs whose map is smaller than 4x4, cells
  repeat). The fully connected merge of paper 1.1 is superseded by the 4x4 grid of 1.3.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights, VGG16_Weights
from torchvision.models.vgg import make_layers

from densekit.errors import ConfigError
from densekit.models.seg.deeplab import RESNET_STEM
from densekit.models.seg.common import check_num_classes, load_pretrained_state, load_state_into

__all__ = ["SegDiscriminator", "build_discriminator", "DISCRIMINATOR_OPTIONS", "FAMILIES"]

FAMILIES = ("vgg", "resnet", "resnet18")
# resnet families: torchvision builder, ImageNet weights enum, image-branch channels
_RESNETS = {"resnet": (torchvision.models.resnet50, ResNet50_Weights, 256),
            "resnet18": (torchvision.models.resnet18, ResNet18_Weights, 64)}
_VGG_STEM_CFG = [64, 64, "M", 128, 128, "M"]  # torchvision vgg16 features.0 .. features.9
_RESNET_BRANCH = RESNET_STEM + ("layer1",)


def _vgg_image_branch() -> tuple[nn.Sequential, int]:
    branch = make_layers(_VGG_STEM_CFG)
    for m in branch.modules():
        if isinstance(m, nn.MaxPool2d):
            m.ceil_mode = True
        elif isinstance(m, nn.Conv2d):  # torchvision VGG initialisation
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return branch, 128


def _resnet_image_branch(family: str) -> tuple[nn.Sequential, int]:
    build, _, channels = _RESNETS[family]
    resnet = build()
    return nn.Sequential(OrderedDict((n, getattr(resnet, n)) for n in _RESNET_BRANCH)), channels


class SegDiscriminator(nn.Module):
    """SS-GAN adversarial network A.

    Args:
        family: "vgg", "resnet" or "resnet18" - the generator's backbone family; picks the
            image branch.
        num_classes: channels C of the probability map.
        width: channels of the first fusion conv (Table 2: 64); the next ones are 2x, 4x, 8x.
        label_width: channels of both label-branch convs.
        grid: side of the output grid (paper: 4).
        negative_slope: LeakyReLU slope (0.2).
        pretrained: image-branch initialisation, as the generators' ``pretrained`` (None,
            "imagenet", a torchvision weights member, or a vgg16 / resnet50 state_dict file).
        freeze_image_branch: no gradients for the image branch (and its BatchNorms, for resnet,
            stay in eval mode).
        spectral_norm: spectral normalisation on the label-branch and fusion convs (an option
            for stability; the paper uses none).
    """

    def __init__(self, family: str, num_classes: int, width: int = 64, label_width: int = 64,
                 grid: int = 4, negative_slope: float = 0.2, pretrained=None,
                 freeze_image_branch: bool = False, spectral_norm: bool = False):
        super().__init__()
        owner = "train.adversarial.d_options"
        if not isinstance(family, str) or family not in FAMILIES:
            raise ConfigError(f"{owner}: family must be one of {', '.join(FAMILIES)}, "
                              f"got {family!r}")
        self.num_classes = check_num_classes(owner, num_classes)
        for key, value in (("width", width), ("label_width", label_width), ("grid", grid)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{owner}: {key} must be an integer >= 1, got {value!r}")
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)) \
                or negative_slope < 0:
            raise ConfigError(f"{owner}: negative_slope must be a number >= 0, "
                              f"got {negative_slope!r}")
        for key, value in (("freeze_image_branch", freeze_image_branch),
                           ("spectral_norm", spectral_norm)):
            if not isinstance(value, bool):
                raise ConfigError(f"{owner}: {key} must be true or false, got {value!r}")
        self.family = family
        self.grid = grid
        self.freeze_image_branch = freeze_image_branch

        if family == "vgg":
            self.image_branch, img_ch = _vgg_image_branch()
        else:
            self.image_branch, img_ch = _resnet_image_branch(family)

        def conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
            layer = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
            nn.init.kaiming_normal_(layer.weight, a=negative_slope, mode="fan_in",
                                    nonlinearity="leaky_relu")
            nn.init.zeros_(layer.bias)
            if spectral_norm:
                layer = nn.utils.parametrizations.spectral_norm(layer)
            return layer

        def act() -> nn.LeakyReLU:
            return nn.LeakyReLU(negative_slope, inplace=True)

        self.label_branch = nn.Sequential(
            conv(num_classes, label_width, 2), act(),
            conv(label_width, label_width, 2), act())
        w = width
        self.fusion = nn.Sequential(
            conv(img_ch + label_width, w), act(),
            conv(w, 2 * w), act(),
            nn.AvgPool2d(2, 2, ceil_mode=True),
            conv(2 * w, 4 * w), act(),
            nn.AvgPool2d(2, 2, ceil_mode=True),
            conv(4 * w, 8 * w), act(),
            conv(8 * w, 1))
        self.pool = nn.AdaptiveAvgPool2d(grid)

        if pretrained is not None:
            self.load_image_branch(pretrained)
        if freeze_image_branch:
            self.image_branch.requires_grad_(False)

    # ---- image-branch initialisation ------------------------------------------------------------
    def load_image_branch(self, pretrained) -> None:
        """Load the image branch from ImageNet weights or a torchvision state_dict file."""
        owner = "train.adversarial.d_options"
        if self.family == "vgg":
            loaded = load_pretrained_state(owner, pretrained, VGG16_Weights,
                                           VGG16_Weights.IMAGENET1K_V1)
            arch = "vgg16"
        else:
            build, weights, _ = _RESNETS[self.family]
            loaded = load_pretrained_state(owner, pretrained, weights, weights.IMAGENET1K_V1)
            arch = build.__name__
        if loaded is not None:
            state, source = loaded
            prefix = "features." if self.family == "vgg" else ""
            load_state_into(owner, self.image_branch, self._branch_subset(state, prefix), source,
                            arch)

    def load_image_branch_from(self, generator: nn.Module) -> None:
        """Copy the image branch from a built generator of the same family (FCN8s ``features``,
        DeepLabR50 or SwiftNetR18 ``backbone``), e.g. after phase 1 or right after loading
        ImageNet weights."""
        family = getattr(generator, "family", None)
        if family != self.family:
            raise ConfigError(f"train.adversarial.d_options: generator family {family!r} does "
                              f"not match the discriminator family {self.family!r}")
        prefix = "features." if self.family == "vgg" else "backbone."
        subset = self._branch_subset(generator.state_dict(), prefix)
        load_state_into("train.adversarial.d_options", self.image_branch, subset,
                        type(generator).__name__, "generator")

    def _branch_subset(self, state, prefix: str) -> dict[str, Tensor]:
        own = self.image_branch.state_dict()
        return {k: state[prefix + k] for k in own if prefix + k in state}

    def requires_grad_(self, requires_grad: bool = True):
        # ``requires_grad_(True)`` after a G step must not unfreeze a frozen image branch
        super().requires_grad_(requires_grad)
        if self.freeze_image_branch:
            self.image_branch.requires_grad_(False)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_image_branch:
            self.image_branch.eval()
        return self

    # ---- forward --------------------------------------------------------------------------------
    def forward(self, image: Tensor, probs: Tensor, probs2: Tensor | None = None):
        """Logits (N, 1, grid, grid) for ``probs``; with ``probs2`` (a second map for the same
        images, e.g. real and fake in A's update) the pair ``(logits, logits2)``: the image
        branch runs once and the label branch + fusion run on both maps as one 2N batch. The
        result equals two calls up to float rounding (the image branch's gradient is the sum
        of both uses), except that a BatchNorm in the image branch (resnet) updates its
        running statistics once instead of twice (its batch statistics are the same: same
        images)."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"discriminator: image must be (N, 3, H, W), got {tuple(image.shape)}")
        maps = [probs] if probs2 is None else [probs, probs2]
        for m in maps:
            if m.dim() != 4 or m.shape[1] != self.num_classes \
                    or m.shape[0] != image.shape[0] or m.shape[-2:] != image.shape[-2:]:
                raise ValueError(f"discriminator: probs must be (N, {self.num_classes}, H, W) "
                                 f"matching image {tuple(image.shape)}, got {tuple(m.shape)}")
        f_img = self.image_branch(image)
        f_lab = self.label_branch((maps[0] if probs2 is None else torch.cat(maps))
                                  .to(f_img.dtype))
        if f_lab.shape[-2:] != f_img.shape[-2:]:  # never for these branches; kept for safety
            f_lab = F.interpolate(f_lab, size=f_img.shape[-2:], mode="bilinear",
                                  align_corners=False)
        if probs2 is not None:
            f_img = torch.cat([f_img, f_img])
        out = self.pool(self.fusion(torch.cat([f_img, f_lab], dim=1)))
        return out if probs2 is None else out.chunk(2)


DISCRIMINATOR_OPTIONS = tuple(n for n in inspect.signature(SegDiscriminator.__init__).parameters
                              if n not in ("self", "family", "num_classes"))


def build_discriminator(family: str, num_classes: int, **options) -> SegDiscriminator:
    """Build adversarial network A; unknown options raise ConfigError."""
    for key in options:
        if key not in DISCRIMINATOR_OPTIONS:
            raise ConfigError(f"train.adversarial.d_options: unknown option {key!r} "
                              f"(known: {', '.join(DISCRIMINATOR_OPTIONS)})")
    return SegDiscriminator(family, num_classes, **options)
