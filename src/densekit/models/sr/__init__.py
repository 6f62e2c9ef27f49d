"""Super-resolution models with one interface: ``forward(lr (N, C, h, w) in [0, 1])`` ->
``(N, C, scale*h, scale*w)``, attributes ``scale``, ``channels``, ``context``, ``align``."""

from __future__ import annotations

from torch import nn

from densekit.models import check_builder_args
from densekit.models.sr import bicubic, hdcn, rednet, srcnn, vdsr
from densekit.models.sr.bicubic import Bicubic
from densekit.models.sr.hdcn import HDCN
from densekit.models.sr.rednet import REDNet
from densekit.models.sr.common import SUPPORTED_SCALES, check_channels, check_scale
from densekit.models.sr.srcnn import SRCNN
from densekit.models.sr.vdsr import VDSR

__all__ = ["SR_MODELS", "SR_MODEL_OPTIONS", "SR_RUNTIME_OPTIONS", "SUPPORTED_SCALES",
           "build_sr_model", "Bicubic", "HDCN", "SRCNN", "VDSR", "REDNet"]

# name -> builder(scale, channels=1, **options). The package attributes ``hdcn``, ``srcnn``, ...
# stay the submodules (``import densekit.models.sr.hdcn`` keeps working); the builders are
# ``densekit.models.sr.hdcn.hdcn`` etc.
SR_MODELS = {"bicubic": bicubic.bicubic, "hdcn": hdcn.hdcn, "srcnn": srcnn.srcnn,
             "vdsr": vdsr.vdsr, "rednet": rednet.rednet}

# keyword options each builder accepts besides scale and channels
SR_MODEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "bicubic": (), "hdcn": hdcn.HDCN_OPTIONS, "srcnn": (), "vdsr": (), "rednet": ()}

# the options that change no weights, which inference may set on weights trained with others
SR_RUNTIME_OPTIONS: dict[str, tuple[str, ...]] = {
    "bicubic": (), "hdcn": hdcn.RUNTIME_OPTIONS, "srcnn": (), "vdsr": (), "rednet": ()}


def build_sr_model(name: str, scale: int, channels: int = 1, **options) -> nn.Module:
    """Build SR model ``name``; unknown names, options or invalid values raise ConfigError."""
    check_builder_args("SR", SR_MODELS, SR_MODEL_OPTIONS, name, options)
    scale = check_scale(name, scale)
    channels = check_channels(name, channels)
    return SR_MODELS[name](scale, channels, **options)
