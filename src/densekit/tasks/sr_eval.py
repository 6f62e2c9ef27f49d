"""The super-resolution evaluation protocol (bicubic degradation, "BI"), in one place.

This reproduces how the published SR tables (SRCNN / VDSR and the papers that copy their Bicubic
rows, see ``docs/protocols.md`` 1.5) were measured, i.e. SRCNN's ``demo_SR.m``:

1. HR: read the image at uint8 levels, ``modcrop`` it to a multiple of ``scale`` (top-left).
2. Ground truth: the luminance of the HR image as MATLAB ``rgb2ycbcr`` gives it for a uint8 image,
   i.e. Y (BT.601) rounded to uint8 levels. Grayscale images are used as they are.
3. LR: MATLAB ``imresize(y_hr, 1/scale, 'bicubic')`` computed on the double image and *not*
   rounded (``demo_SR.m`` works on ``single(im)/255``). An RGB model gets the RGB image resized
   the same way (also unrounded).
4. The model runs on the LR image; its output is rounded to uint8 levels.
5. Measure on Y (the Y of an RGB model's output, rounded like ``rgb2ycbcr`` on uint8), after
   shaving ``scale`` pixels from every border: PSNR and SSIM (``densekit.metrics.sr``), averaged
   over the images of the folder.

Why this variant: with MATLAB-exact bicubic on ``shared/data/sr`` it is the only reading of the
protocol examined that gives every published Set5 Bicubic number (x2/x3/x4, PSNR and SSIM) to the
printed digit (33.66/0.9299, 30.39/0.8682, 28.42/0.8104); on Set14 it gives 30.23/0.8687,
27.54/0.7736, 26.00/0.7019 (the SRCNN paper's Set14 Bicubic row; the VDSR row quoted in
docs/protocols.md, 30.24/0.8688, 27.55/0.7742, 26.00/0.7027, is within 0.01 dB). Readings that round
the LR image (MATLAB uint8 ``imresize``), resize RGB before taking Y, or leave Y unrounded land
0.005-0.03 dB away from the Set5 numbers; all are within 0.05 dB. ``make_lr(..., quantize=True)``
gives the uint8 LR image MATLAB would store on disk instead.

Steps 2 and 3 (:func:`~densekit.data.sr.ground_truth_y`, :func:`~densekit.data.sr.make_lr`) live
in :mod:`densekit.data.sr`, whose training batches are made the same way.

Everything is computed in float64 except the model, which runs in float32 (or under autocast).

Degraded inputs (``degrade``, ``densekit sr eval --degrade jpeg:70``): step 3 is followed by
storing the LR image as 8 bits and degrading it once with :func:`densekit.data.degrade.degrade_lr`
(Gaussian noise seeded by the file name, JPEG through libjpeg with 4:2:0 chroma). The LR is then
made from the RGB image (a photo is compressed in colour), and a Y model gets the luminance of
the degraded RGB image; the ground truth is the same as without ``degrade``.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from densekit.data.degrade import degrade_lr
from densekit.data.image_io import list_images, read_image
from densekit.data.sr import ground_truth_y, make_lr
from densekit.errors import DensekitError
from densekit.metrics.sr import modcrop, psnr, ssim
from densekit.models.sr.common import dihedral_ensemble
from densekit.ops.color import rgb_to_y, to_model_channels
from densekit.ops.imresize import round_uint8

__all__ = [
    "protocol_lr",
    "measure_y",
    "super_resolve",
    "evaluate_image",
    "evaluate_folder",
    "load_hr",
]


def load_hr(path: str | Path, scale: int) -> Tensor:
    """Read an HR image as float64 (C, H, W) at uint8 levels in [0, 1], modcropped to ``scale``."""
    img, _ = read_image(path)
    img = modcrop(round_uint8(img.to(torch.float64)), scale)
    if img.shape[-1] < scale or img.shape[-2] < scale:
        raise DensekitError(f"{path}: image of {tuple(img.shape[-2:])} pixels is smaller than "
                            f"the scale {scale}")
    return img


def measure_y(sr: Tensor, gray: bool) -> Tensor:
    """The channel of a (rounded) model output that is measured: (C, H, W) -> (1, H, W).

    1-channel output: itself (it is Y, or the gray image). 3-channel (RGB model) output: Y of it
    rounded to uint8 levels; for a grayscale image (fed to the model replicated to RGB) the mean
    of the three channels, rounded, since gray images are measured as they are.
    """
    if sr.shape[-3] == 1:
        return sr
    if gray:
        return round_uint8(sr.mean(dim=-3, keepdim=True))
    return round_uint8(rgb_to_y(sr))


def _model_device(model: nn.Module) -> torch.device:
    t = next(itertools.chain(model.parameters(), model.buffers()), None)
    return t.device if t is not None else torch.device("cpu")


def _autocast_ctx(autocast: Any):
    if autocast is None:
        return contextlib.nullcontext()
    if hasattr(autocast, "__enter__"):  # a context manager (e.g. a torch.autocast instance)
        return autocast
    if callable(autocast):  # a factory returning one
        return autocast()
    raise TypeError("autocast must be a context manager or a callable returning one")


def protocol_lr(hr: Tensor, scale: int, channels: int, degrade: list | None = None,
                key: str = "") -> Tensor:
    """The LR input of the protocol in a model's channels, from a modcropped HR (C, H, W) image.

    1-channel (Y) model: ``make_lr`` of ``ground_truth_y`` (the uint8-rounded Y of the HR
    image, as SRCNN's ``demo_SR.m`` takes ``rgb2ycbcr`` of the uint8 image before resizing).
    3-channel model: ``make_lr`` of the image as it is (a gray image stays 1-channel, so that
    :func:`super_resolve` knows to replicate it and to measure the gray result).

    ``degrade`` (the steps of :func:`densekit.data.degrade.parse_degrade`): ``make_lr`` of the
    image as it is, stored as 8 bits and degraded (noise seeded by ``key``); the image's channels
    are kept, :func:`super_resolve` takes a Y model's luminance.
    """
    if channels not in (1, 3):
        raise ValueError(f"model channels must be 1 (Y) or 3 (RGB), got {channels}")
    if degrade:
        return degrade_lr(make_lr(hr, scale), degrade, key)
    if channels == 1:
        return make_lr(ground_truth_y(hr), scale)
    return make_lr(hr, scale)


def super_resolve(
    model: nn.Module,
    lr: Tensor,
    hr: Tensor | None = None,
    *,
    device: str | torch.device | None = None,
    autocast: Any = None,
    self_ensemble: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Run ``model`` on one LR image; return the predicted channel that is measured.

    ``lr`` is a (C, h, w) image in [0, 1], C = 1 (gray, or Y already) or 3 (RGB). It is turned
    into the model's channels (:func:`densekit.ops.color.to_model_channels`: Y for a 1-channel
    model, gray replicated for an RGB model), run as float32 without gradients on ``device``
    (default: the model's), optionally under ``autocast`` (a context manager, or a callable
    returning one, e.g. ``Precision.autocast``), with ``self_ensemble`` averaged over the 8
    flips/rotations of the input (:func:`~densekit.models.sr.common.dihedral_ensemble`), and the
    output is rounded to uint8 levels. The
    result is float64 (1, s*h, s*w) on the CPU: the output itself for a 1-channel model, its Y
    (or, for a gray input, its channel mean) for an RGB model, see :func:`measure_y`.

    With ``hr`` (the modcropped HR image, (C, H, W)) the pair ``(prediction, reference)`` is
    returned, the reference being ``ground_truth_y`` of ``hr``: ready for
    ``psnr(pred, ref, shave=scale)`` / ``ssim(...)``. For the exact protocol make ``lr`` with
    :func:`protocol_lr` (for a Y model it resizes the uint8-rounded Y, which ``make_lr`` of an RGB
    image followed by Y does not; the difference is a few thousandths of a dB).
    """
    if lr.dim() != 3:
        raise ValueError(f"expected one (C, h, w) LR image, got shape {tuple(lr.shape)}")
    channels = int(getattr(model, "channels", 1))
    scale = int(getattr(model, "scale"))
    dev = torch.device(device) if device is not None else _model_device(model)
    x = to_model_channels(lr, channels).to(device=dev, dtype=torch.float32).unsqueeze(0)
    with torch.no_grad(), _autocast_ctx(autocast):
        y = dihedral_ensemble(model, x) if self_ensemble else model(x)
    expected = (1, channels, scale * lr.shape[-2], scale * lr.shape[-1])
    if tuple(y.shape) != expected:
        raise DensekitError(f"model output has shape {tuple(y.shape)}, expected {expected}")
    sr = round_uint8(y[0].detach().to(device="cpu", dtype=torch.float64))
    pred = measure_y(sr, gray=lr.shape[-3] == 1)
    if hr is None:
        return pred
    ref = ground_truth_y(hr.detach().to(device="cpu", dtype=torch.float64))
    if ref.shape != pred.shape:
        raise ValueError(f"HR image {tuple(hr.shape[-2:])} does not match the x{scale} "
                         f"prediction {tuple(pred.shape[-2:])}; modcrop the HR image first")
    return pred, ref


def evaluate_image(
    model: nn.Module,
    hr: Tensor,
    scale: int,
    *,
    device: str | torch.device | None = None,
    autocast: Any = None,
    self_ensemble: bool = False,
    degrade: list | None = None,
    key: str = "",
) -> dict:
    """Evaluate one modcropped HR image (float64 (C, H, W) at uint8 levels) with the protocol
    (``degrade``, ``key``: see :func:`protocol_lr`). Returns ``{"psnr", "ssim", "seconds"}``
    (seconds: model time)."""
    lr = protocol_lr(hr, scale, int(getattr(model, "channels", 1)), degrade, key)
    dev = torch.device(device) if device is not None else _model_device(model)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    pred, ref = super_resolve(model, lr, hr, device=dev, autocast=autocast,
                              self_ensemble=self_ensemble)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    return {"psnr": psnr(pred, ref, shave=scale), "ssim": ssim(pred, ref, shave=scale),
            "seconds": seconds}


def evaluate_folder(
    model: nn.Module,
    folder: str | Path,
    scale: int,
    *,
    device: str | torch.device = "cpu",
    autocast: Any = None,
    self_ensemble: bool = False,
    degrade: list | None = None,
) -> dict:
    """Evaluate ``model`` (the common SR interface) on every image of ``folder`` at ``scale``.

    Returns ``{"dataset", "model", "scale", "psnr", "ssim", "images", "seconds", "per_image"}``:
    PSNR/SSIM are means over the images (Y channel, ``scale`` pixels shaved, the protocol of this
    module), ``seconds`` is the wall time of the whole evaluation and ``per_image`` lists
    ``{"image", "psnr", "ssim", "seconds"}`` (seconds: model time) per file, sorted by name.
    The model is moved to ``device`` and put in eval mode; ``self_ensemble`` averages it over
    the 8 flips/rotations of each input (see :func:`super_resolve`); ``degrade`` degrades each
    LR image (:func:`protocol_lr`, the noise seeded by the file name).
    """
    folder = Path(folder)
    scale = int(scale)
    model_scale = getattr(model, "scale", None)
    if model_scale is not None and int(model_scale) != scale:
        raise DensekitError(f"model upscales by x{model_scale} but the evaluation asks for "
                            f"x{scale}")
    t0 = time.perf_counter()
    files = list_images(folder)
    dev = torch.device(device)
    model = model.to(dev)
    was_training = model.training
    model.eval()
    per_image = []
    try:
        for path in files:
            hr = load_hr(path, scale)
            try:
                r = evaluate_image(model, hr, scale, device=dev, autocast=autocast,
                                   self_ensemble=self_ensemble, degrade=degrade, key=path.name)
            except ValueError as e:  # e.g. too small to shave / for the SSIM window
                raise DensekitError(f"{path}: {e}") from None
            per_image.append({"image": path.name, **r})
    finally:
        model.train(was_training)
    n = len(per_image)
    return {
        "dataset": folder.name,
        "model": getattr(model, "name", None) or type(model).__name__,
        "scale": scale,
        "psnr": sum(r["psnr"] for r in per_image) / n,
        "ssim": sum(r["ssim"] for r in per_image) / n,
        "images": n,
        "seconds": time.perf_counter() - t0,
        "per_image": per_image,
    }
