"""Joint image/mask transforms: training augmentation and evaluation normalisation."""

from __future__ import annotations

import math
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


class RandomGamma(v2.Transform):
    """Gamma correction of the image (not the mask) by a gamma drawn uniformly from
    ``gamma_range``: below 1 brightens the shadows, above 1 darkens them (dusk, exposure)."""

    def __init__(self, gamma_range: tuple[float, float]):
        super().__init__()
        self.gamma_range = (float(gamma_range[0]), float(gamma_range[1]))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        lo, hi = self.gamma_range
        return {"gamma": lo + float(torch.rand(())) * (hi - lo)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        return TF.adjust_gamma(inpt, params["gamma"])


class RandomNoise(v2.Transform):
    """White Gaussian noise on a float image (not the mask), sigma drawn uniformly from
    ``sigma_range`` in 8-bit levels, clipped to [0, 1]."""

    def __init__(self, sigma_range: tuple[float, float]):
        super().__init__()
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        lo, hi = self.sigma_range
        return {"sigma": (lo + float(torch.rand(())) * (hi - lo)) / 255}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        noisy = (inpt + torch.randn_like(inpt) * params["sigma"]).clamp(0, 1)
        return tv_tensors.wrap(noisy, like=inpt)


def photometric_transforms(prob: float = 0.0, brightness: float = 0.0, contrast: float = 0.0,
                           saturation: float = 0.0, hue: float = 0.0,
                           gamma: tuple[float, float] = (1.0, 1.0), blur_prob: float = 0.0,
                           blur_sigma: tuple[float, float] = (0.1, 1.5),
                           noise_prob: float = 0.0, noise_sigma: tuple[float, float] = (1.0, 8.0)
                           ) -> tuple[list[v2.Transform], list[v2.Transform]]:
    """The photometric augmentation of :func:`train_transforms`: ``(on_uint8, on_float)``, the
    ops before and after the conversion to float. With probability ``prob`` a sample gets
    torchvision's ColorJitter (``brightness``, ``contrast``, ``saturation``: factors from
    [1 - x, 1 + x]; ``hue``: shift from [-hue, hue]) and a gamma from ``gamma``; with
    ``blur_prob`` a Gaussian blur (sigma from ``blur_sigma``, pixels); with ``noise_prob``
    Gaussian noise (sigma from ``noise_sigma``, 8-bit levels). The mask is never changed."""
    before: list[v2.Transform] = []
    if prob > 0:
        before.append(v2.RandomApply([v2.ColorJitter(brightness, contrast, saturation, hue),
                                      RandomGamma(gamma)], p=prob))
    if blur_prob > 0:
        k = 2 * math.ceil(3 * blur_sigma[1]) + 1
        before.append(v2.RandomApply([v2.GaussianBlur(k, tuple(blur_sigma))], p=blur_prob))
    after: list[v2.Transform] = []
    if noise_prob > 0:
        after.append(v2.RandomApply([RandomNoise(noise_sigma)], p=noise_prob))
    return before, after


def _to_float_normalized(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            v2.Normalize(mean=list(mean), std=list(std))]


def train_transforms(crop_size: int | tuple[int, int], scale_range: tuple[float, float] = (0.5, 2.0),
                     mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                     ignore_index: int = IGNORE_INDEX, hflip: bool = True,
                     base_size: int | None = None, photometric: dict | None = None) -> v2.Compose:
    """Joint training augmentation: random scale, random crop, horizontal flip, optional
    photometric changes of the image (``photometric``: the arguments of
    :func:`photometric_transforms`), normalise.

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
    before, after = photometric_transforms(**(photometric or {}))
    to_float, normalize = _to_float_normalized(mean, std)
    return v2.Compose(ops + before + [to_float] + after + [normalize])


def eval_transforms(mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """Evaluation: full resolution, image to float32 and normalised, mask unchanged."""
    return v2.Compose(_to_float_normalized(mean, std))
