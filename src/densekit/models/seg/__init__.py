"""Semantic-segmentation models with one interface: ``forward(images (N, 3, H, W), normalised
with the ImageNet mean/std)`` -> logits ``(N, num_classes, H, W)`` at the input size for any
``H, W >= 1``; attributes ``num_classes`` and ``family`` ("vgg", "resnet" or "resnet18", which
picks the SS-GAN discriminator's image branch).

``pretrained`` (every generator): None (from scratch), "imagenet" (torchvision's ImageNet-1k V1
weights enum, loaded by torchvision: downloads unless cached in the torch hub cache), a
torchvision weights enum member, or the path of a torchvision-format classification state_dict
(``torch.save(torchvision.models.vgg16().state_dict(), path)``, resp. ``resnet50``).
"""

from __future__ import annotations

from torch import nn

from densekit.models import check_builder_args
from densekit.models.seg import deeplab, fcn8s, swiftnet
from densekit.models.seg.adapter import TorchvisionSegAdapter
from densekit.models.seg.deeplab import DeepLabR50
from densekit.models.seg.discriminator import (DISCRIMINATOR_OPTIONS, SegDiscriminator,
                                               build_discriminator)
from densekit.models.seg.common import check_num_classes
from densekit.models.seg.fcn8s import FCN8s
from densekit.models.seg.swiftnet import SwiftNetR18
from densekit.models.seg.ssgan import (discriminator_accuracy, discriminator_loss,
                                       embed_ground_truth, generator_loss)

__all__ = ["SEG_MODELS", "SEG_MODEL_OPTIONS", "build_seg_model", "FCN8s", "DeepLabR50", "SwiftNetR18",
           "TorchvisionSegAdapter",
           "SegDiscriminator", "build_discriminator", "DISCRIMINATOR_OPTIONS",
           "embed_ground_truth", "generator_loss", "discriminator_loss", "discriminator_accuracy"]

# name -> builder(num_classes, *, pretrained=None, **options)
SEG_MODELS = {"fcn8s_vgg16": fcn8s.fcn8s_vgg16, "deeplab_r50": deeplab.deeplab_r50,
              "swiftnet_r18": swiftnet.swiftnet_r18}

# keyword options each builder accepts besides num_classes and pretrained
SEG_MODEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "fcn8s_vgg16": fcn8s.FCN8S_OPTIONS, "deeplab_r50": deeplab.DEEPLAB_OPTIONS,
    "swiftnet_r18": swiftnet.SWIFTNET_OPTIONS}


def build_seg_model(name: str, num_classes: int, *, pretrained=None, **options) -> nn.Module:
    """Build segmentation model ``name``; unknown names, options or invalid values (and
    unreadable or mismatching pretrained weights) raise ConfigError."""
    check_builder_args("segmentation", SEG_MODELS, SEG_MODEL_OPTIONS, name, options)
    check_num_classes(f"model.{name}", num_classes)
    return SEG_MODELS[name](num_classes, pretrained=pretrained, **options)
