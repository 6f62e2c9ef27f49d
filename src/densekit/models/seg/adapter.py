"""Any torchvision segmentation model as a generator of densekit's segmentation interface."""

from __future__ import annotations

import inspect

import torchvision.models.segmentation as tvseg
from torch import nn

from densekit.errors import ConfigError


class TorchvisionSegAdapter(nn.Module):
    """Any torchvision segmentation model (dict output) as a plain logits module."""

    def __init__(self, name: str, num_classes: int, **options):
        super().__init__()
        fn = getattr(tvseg, name, None)
        if fn is None or not callable(fn):
            raise ConfigError(f"model.name: torchvision has no segmentation model {name!r}")
        # torchvision's builders swallow unknown keywords: accept only their named options
        known = [k for k, v in inspect.signature(fn).parameters.items()
                 if v.kind is v.KEYWORD_ONLY and k not in ("weights", "weights_backbone",
                                                           "num_classes", "progress")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"model.options: torchvision {name} has no option {unknown[0]!r} "
                              f"(options: {', '.join(known) or 'none'})")
        self.net = fn(weights=None, weights_backbone=None, num_classes=num_classes, **options)
        self.num_classes = num_classes
        self.family = "resnet" if "resnet" in name else "vgg"

    def forward(self, x):
        return self.net(x)["out"]
