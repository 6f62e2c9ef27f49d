"""torch.hub entry points for densekit's models.

    model = torch.hub.load("path/to/densekit", "hdcn", source="local", scale=2, pretrained=True)

``pretrained=True`` loads the weights shipped in the package (SR: at ``scale``; ``hdcn_real``:
HDCN's real-photo weights, for JPEG and noisy photos, at x2 and x4; segmentation: the CamVid
model where one ships); ``pretrained=False`` builds the model with random weights
(segmentation models then need ``num_classes``). Other keyword arguments go to the builder
(see ``densekit.create_model``).
"""

import os
import sys

dependencies = ["torch", "torchvision", "numpy", "PIL", "yaml"]

try:
    import densekit  # noqa: F401  (installed, e.g. `pip install -e .`)
except ImportError:  # a plain checkout: use its src/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from densekit.api import create_model as _create_model  # noqa: E402


def _entry(name: str, doc: str):
    def load(pretrained: bool = False, **options):
        return _create_model(name, weights="DEFAULT" if pretrained else None, **options)

    load.__name__ = name
    load.__doc__ = doc + " ``pretrained``: the shipped weights. Options: see create_model."
    return load


hdcn = _entry("hdcn", "HDCN super-resolution (scale=2, 3 or 4).")


def hdcn_real(pretrained: bool = False, scale: int = 2, **options):
    """HDCN with its real-photo weights (trained on blurred, noisy, JPEG-compressed inputs;
    scale=2 or 4). ``pretrained=False``: random weights, as ``hdcn``."""
    weights = f"hdcn_real_x{scale}" if pretrained else None
    return _create_model("hdcn", weights=weights, scale=scale, **options)


srcnn = _entry("srcnn", "SRCNN super-resolution (scale=2, 3 or 4).")
vdsr = _entry("vdsr", "VDSR super-resolution (scale=2, 3 or 4).")
rednet = _entry("rednet", "RED30 super-resolution (scale=2, 3 or 4).")
fcn8s_vgg16 = _entry("fcn8s_vgg16", "FCN-8s (VGG16) segmentation generator.")
deeplab_r50 = _entry("deeplab_r50", "DeepLab-style (dilated ResNet50 + ASPP) segmentation "
                                    "generator.")
swiftnet_r18 = _entry("swiftnet_r18", "SwiftNet-R18 segmentation (pretrained: CamVid).")
