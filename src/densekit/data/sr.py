"""Super-resolution data: the protocol's HR ground truth and LR images, and training batches of
random HR crops from folders of images, their LR made on the fly.

:func:`make_lr` and :func:`ground_truth_y` are steps 2 and 3 of the evaluation protocol
(:mod:`densekit.tasks.sr_eval`). All training images are decoded once and kept in memory as
uint8 tensors. Each training step's batch is a pure function of (seed, step): random image,
random crop, one of the 8 rotations/flips, then the LR patch by MATLAB-exact bicubic (the
evaluation protocol's degradation). That makes resumed runs see exactly the batches of an
uninterrupted run, and lets DataLoader workers build batches ahead of the training step without
any shared state.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from densekit.data.degrade import DegradeConfig, degrade_sample, draw_degradations, gaussian_blur
from densekit.data.image_io import list_images, read_image
from densekit.data.stream import step_generator
from densekit.errors import DensekitError
from densekit.ops.color import rgb_to_y, to_model_channels
from densekit.ops.imresize import imresize, round_uint8


def make_lr(hr: Tensor, scale: int, *, quantize: bool = False) -> Tensor:
    """The LR image of the protocol: MATLAB ``imresize(hr, 1/scale, 'bicubic')``.

    ``hr`` is a modcropped (..., C, H, W) image in [0, 1] (float64 recommended). By default the
    result is left unrounded, as SRCNN's ``demo_SR.m`` (which produced the published Bicubic
    numbers) computes it on the double image. ``quantize=True`` reproduces MATLAB ``imresize`` on
    a uint8 image instead (rounded to uint8 after each pass: the LR image as it would be saved).
    """
    scale = int(scale)
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not a multiple of the scale {scale}; modcrop first")
    return imresize(hr, 1.0 / scale, size=(h // scale, w // scale), quantize=quantize)


def ground_truth_y(hr: Tensor) -> Tensor:
    """The channel measured against: Y of an RGB image rounded to uint8 levels (MATLAB
    ``rgb2ycbcr`` on uint8), or the gray image itself. (C, H, W) -> (1, H, W)."""
    if hr.shape[-3] == 1:
        return round_uint8(hr)
    return round_uint8(rgb_to_y(hr))


def load_image_folders(folders: list[str]) -> tuple[list[torch.Tensor], list[str]]:
    """Decode every image of the folders once: uint8 (C, H, W) tensors and their names."""
    images, names = [], []
    for folder in folders:
        for path in list_images(folder):
            img, _ = read_image(path)
            images.append(torch.round(img * 255).to(torch.uint8))
            names.append(str(path))
    return images, names


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 rotations/flips of the last two axes (k in 0..7)."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


class SRPatchBatches(Dataset):
    """Item ``step`` is the training batch (lr, hr) of that step: the samples ``slots`` (default
    all ``batch_size``) of the step's global batch, e.g. one process's shard under torchrun.

    Each sample is a random HR crop in one of the 8 rotations/flips (``augment``). With
    ``resize_range`` (lo, hi) below 1 the crop comes from the image downscaled by a factor drawn
    from [lo, hi] per sample (LapSRN's augmentation): a region of side patch / factor, resized
    to the patch with MATLAB bicubic and rounded to 8-bit levels, then degraded like any other.

    With an active ``degrade`` (:class:`~densekit.data.degrade.DegradeConfig`) the LR patch is
    made from the RGB crop (blurred, downscaled, noised, stored as 8 bits, JPEG-compressed, as
    drawn per sample after the crops) and a Y model gets its luminance; without, the LR patch
    is the evaluation protocol's, bicubic of the rounded Y."""

    def __init__(self, folders: list[str], *, scale: int, patch_size: int, batch_size: int,
                 channels: int = 1, augment: bool = True, seed: int = 0, total_steps: int = 0,
                 slots: range | None = None, resize_range: tuple[float, float] = (1.0, 1.0),
                 degrade: DegradeConfig | None = None):
        self.scale = scale
        self.degrade = degrade if degrade is not None and degrade.active else None
        self.resize_range = tuple(resize_range)
        self.hr_size = scale * (patch_size // scale)  # HR patch must be a multiple of the scale
        self.batch_size = batch_size
        self.channels = channels
        self.augment = augment
        self.seed = seed
        self.total_steps = total_steps
        self.slots = range(batch_size) if slots is None else slots
        self.images, names = load_image_folders(folders)
        small = [n for n, im in zip(names, self.images)
                 if min(im.shape[-2:]) < self.hr_size]
        if small:
            raise DensekitError(f"{small[0]}: smaller than the {self.hr_size}px training patch "
                                f"(data.patch_size); remove it or lower the patch size")

    def __len__(self) -> int:
        return self.total_steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = step_generator(self.seed, step)
        n = len(self.images)
        p = self.hr_size
        lo, hi = self.resize_range
        crops = []  # drawn for the whole global batch, so a shard's samples do not depend on it
        for _ in range(self.batch_size):
            img = self.images[int(torch.randint(n, (1,), generator=g))]
            h, w = img.shape[-2:]
            q = p  # the side of the region cropped from the image, resized to p x p
            if (lo, hi) != (1.0, 1.0):
                factor = lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))
                q = min(h, w, max(p, round(p / factor)))
            y = int(torch.randint(h - q + 1, (1,), generator=g))
            x = int(torch.randint(w - q + 1, (1,), generator=g))
            k = int(torch.randint(8, (1,), generator=g)) if self.augment else 0
            crops.append((img, y, x, q, k))
        params = draw_degradations(self.degrade, self.batch_size, g) if self.degrade else None
        lrs, hrs = [], []
        for i in self.slots:
            img, y, x, q, k = crops[i]
            hr = img[:, y:y + q, x:x + q].to(torch.float64) / 255
            if q != p:  # a downscaled copy of the image, as an 8-bit image would be stored
                hr = round_uint8(imresize(hr, size=(p, p)))
            hr = dihedral(hr, k)
            if params is None:
                # exactly as the evaluation protocol: rounded Y (or RGB), then unrounded bicubic
                hr = ground_truth_y(hr) if self.channels == 1 else to_model_channels(hr, 3)
                lr = make_lr(hr, self.scale)
            else:
                sample = {key: v[i].item() for key, v in params.items()}
                blur = sample["blur"]
                blurred = gaussian_blur(hr[None], torch.tensor([blur]))[0] if blur > 0 else hr
                lr = degrade_sample(make_lr(blurred, self.scale), sample)
                lr = to_model_channels(lr, self.channels)
                hr = ground_truth_y(hr) if self.channels == 1 else to_model_channels(hr, 3)
            hrs.append(hr.float())
            lrs.append(lr.float())
        return torch.stack(lrs), torch.stack(hrs)


def check_folders(folders: list[str], key: str) -> None:
    for f in folders:
        if not Path(f).is_dir():
            raise DensekitError(f"{key}: {f} is not a folder")
