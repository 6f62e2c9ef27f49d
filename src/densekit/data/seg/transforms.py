"""Joint image/mask transforms: training augmentation and evaluation normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from densekit.data.seg.labels import IGNORE_INDEX
from densekit.errors import DensekitError

IMAGENET_MEAN = (0.485, 0.456, 0.406)

IMAGENET_STD = (0.229, 0.224, 0.225)


class RandomScale(v2.Transform):
    """Resize image and mask together by a random factor drawn uniformly from ``scale_range``.

    With ``base_size`` the factor scales ``base_size`` and the shorter side is resized to it
    (aspect ratio kept); without, it scales the input's own size. Images use bilinear
    interpolation with antialiasing; masks are resized with nearest neighbour (v2 always
    resamples ``tv_tensors.Mask`` that way).
    """

    def __init__(self, scale_range: tuple[float, float] = (0.5, 2.0), base_size: int | None = None):
        super().__init__()
        lo, hi = float(scale_range[0]), float(scale_range[1])
        if not 0 < lo <= hi:
            raise DensekitError(f"scale_range must satisfy 0 < min <= max, got {scale_range}")
        self.scale_range = (lo, hi)
        self.base_size = base_size

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        lo, hi = self.scale_range
        s = lo + float(torch.rand(())) * (hi - lo)
        if self.base_size is not None:
            s = s * self.base_size / min(h, w)
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(TF.resize, inpt, size=params["size"],
                                 interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


def _to_float_normalized(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            v2.Normalize(mean=list(mean), std=list(std))]


def train_transforms(crop_size: int | tuple[int, int], scale_range: tuple[float, float] = (0.5, 2.0),
                     mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                     ignore_index: int = IGNORE_INDEX, hflip: bool = True,
                     base_size: int | None = None) -> v2.Compose:
    """Joint training augmentation: random scale, random crop, horizontal flip, normalise.

    Inputs smaller than the crop are padded: the image with the mean colour (so it becomes 0
    after normalisation), the mask with ``ignore_index``. Output: float32 normalised image
    (3, ch, cw) and int64 mask (ch, cw).
    """
    crop = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    pad_colour = tuple(round(255 * m) for m in mean)
    ops: list[v2.Transform] = []
    if base_size is not None or (scale_range is not None and tuple(scale_range) != (1.0, 1.0)):
        ops.append(RandomScale(scale_range or (1.0, 1.0), base_size))
    ops.append(v2.RandomCrop(crop, pad_if_needed=True,
                             fill={tv_tensors.Image: pad_colour, tv_tensors.Mask: ignore_index}))
    if hflip:
        ops.append(v2.RandomHorizontalFlip())
    ops += _to_float_normalized(mean, std)
    return v2.Compose(ops)


def eval_transforms(mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """Evaluation: full resolution, image to float32 and normalised, mask unchanged."""
    return v2.Compose(_to_float_normalized(mean, std))
