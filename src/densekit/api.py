"""densekit's public Python API: two-line super-resolution and segmentation.

    import densekit
    big = densekit.upscale(Image.open("photo.png"), scale=2)         # shipped HDCN x2
    labels = densekit.segment(Image.open("street.png"))               # shipped CamVid model
    densekit.overlay(Image.open("street.png"), labels).save("overlay.png")

Images go in as a PIL image, a NumPy array (H x W or H x W x C, C = 1, 3 or 4, uint8 or uint16)
or a torch tensor ((C, H, W) or (H, W), float in [0, 1] or uint8), and come out as the same kind.
The pixels equal those that ``densekit sr upscale`` / ``densekit seg predict`` write for the same
image, options, device and precision. Every mistake in an argument raises
:class:`densekit.DensekitError` with a one-line message that names the argument.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from densekit.data.image_io import ImageInfo, image_from_pil, to_pil
from densekit.engine.precision import Precision, resolve_device, resolve_precision
from densekit.errors import DensekitError
from densekit.models.seg import SEG_MODELS, build_seg_model
from densekit.models.sr import SR_MODELS, SUPPORTED_SCALES, build_sr_model
from densekit.models.zoo import Weights, default_weights, get_weights, list_weights
from densekit.tasks.seg import load_seg_model
from densekit.tasks.seg_predict import overlay as _overlay_rgb
from densekit.tasks.seg_predict import label_png, rgb_uint8, segment_image
from densekit.tasks.sr import choose_weights as _choose_weights
from densekit.tasks.sr import load_sr_model
from densekit.tasks.sr_upscale import default_tile, upscale_image

__all__ = ["upscale", "choose_weights", "segment", "overlay", "colorize", "create_model",
           "list_models",
           "list_weights", "get_weights", "Weights", "DEFAULT_SEG_WEIGHTS"]

DEFAULT_SEG_WEIGHTS = "camvid_swiftnet_r18"  # the zoo name of the shipped CamVid model


# ---- models -------------------------------------------------------------------------------------
def list_models(task: str | None = None, *, pretrained: bool = False) -> list[str]:
    """Names :func:`create_model` builds: SR ("sr") and segmentation ("seg") models; with
    ``pretrained`` only those with shipped weights (see :func:`list_weights`)."""
    if task not in (None, "sr", "seg"):
        raise DensekitError(f"task: expected 'sr', 'seg' or None, got {task!r}")
    names = [n for n in SR_MODELS if n != "bicubic"] if task != "seg" else []
    names += list(SEG_MODELS) if task != "sr" else []
    if pretrained:
        shipped = {w.model for w in list_weights()}
        names = [n for n in names if n in shipped]
    return names


def _weights_path(name: str, weights, *, scale: int | None = None) -> Path | None:
    """The file behind ``weights``: None (none), "DEFAULT" (the shipped weights of ``name``), a
    zoo name, a :class:`Weights` record or a path."""
    if weights is None:
        return None
    if isinstance(weights, str) and weights.upper() == "DEFAULT":
        record = default_weights(name, scale=scale)
        if record is None:
            what = f"{name} x{scale}" if scale else name
            raise DensekitError(f"weights: no shipped weights for {what}")
        return record.verify()
    if isinstance(weights, Weights):
        return weights.verify()
    if isinstance(weights, str) and weights in {w.name for w in list_weights()}:
        return get_weights(weights).verify()
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights)
        if not path.is_file():
            raise DensekitError(f"weights: {path} is not a file (nor a shipped weights name)")
        return path
    raise DensekitError(f"weights: expected None, 'DEFAULT', a weights name, a Weights record "
                        f"or a path, got {type(weights).__name__}")


def create_model(name: str, *, weights=None, **options) -> nn.Module:
    """Build model ``name`` (see :func:`list_models`).

    ``weights``: None (random initialisation), "DEFAULT" (the shipped weights), a shipped
    weights name or :class:`Weights` record, or the path of a weights file / training checkpoint.
    Options: SR models take ``scale`` (default 2), ``channels`` and their builder's options;
    segmentation models ``num_classes`` (required without weights), ``pretrained`` (ImageNet
    backbone) and their builder's options. With weights the model is returned in eval mode, and
    only options that change no weights may be given (HDCN's ``fp32_features``).
    """
    if not isinstance(name, str) or (name not in SR_MODELS and name not in SEG_MODELS):
        raise DensekitError(f"name: unknown model {name!r} (known: "
                            f"{', '.join(list(SR_MODELS) + list(SEG_MODELS))})")
    if name in SR_MODELS:
        scale = _check_scale(options.pop("scale", 2))
        path = _weights_path(name, weights, scale=scale)
        if path is None:
            return build_sr_model(name, scale, **options)
        return load_sr_model(name, scale, path, options, option="options")
    path = _weights_path(name, weights)
    if path is None:
        if "num_classes" not in options:
            raise DensekitError(f"num_classes: required to build {name} without weights")
        return build_seg_model(name, options.pop("num_classes"), **options)
    model, meta = load_seg_model(path, option="weights")
    if meta["model"] != name:
        raise DensekitError(f"weights: {path} holds a {meta['model']} model, not {name}")
    if options:
        raise DensekitError(f"options: {', '.join(options)} cannot be set with weights "
                            "(the weights file fixes them)")
    return model


# ---- images in and out --------------------------------------------------------------------------
class _Image:
    """An input image as densekit's (C, H, W) float [0, 1] tensor + ImageInfo, and the way to
    give a result back as the caller's kind."""

    def __init__(self, image):
        self.kind = None
        if isinstance(image, Image.Image):
            self.kind = "pil"
            self.tensor, self.info = image_from_pil(image, "image")
        elif isinstance(image, np.ndarray):
            self._from_numpy(image)
        elif isinstance(image, torch.Tensor):
            self._from_tensor(image)
        else:
            raise DensekitError("image: expected a PIL image, a NumPy array or a torch tensor, "
                                f"got {type(image).__name__}")
        if min(self.tensor.shape[-2:]) < 1:
            raise DensekitError(f"image: empty image of size {tuple(self.tensor.shape[-2:])}")

    def _from_numpy(self, arr: np.ndarray) -> None:
        if arr.dtype not in (np.uint8, np.uint16):
            raise DensekitError(f"image: NumPy arrays must be uint8 or uint16, got {arr.dtype}")
        if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4) or arr.ndim not in (2, 3):
            raise DensekitError(f"image: expected an H x W or H x W x C array with C = 1, 3 or 4, "
                                f"got shape {arr.shape}")
        self.kind, self.dtype, self.ndim = "numpy", arr.dtype, arr.ndim
        if arr.dtype == np.uint8 or arr.ndim == 2:  # PIL holds these: the file reader's path
            pil = Image.fromarray(arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
            self.tensor, self.info = image_from_pil(pil, "image")
            return
        x = torch.from_numpy(arr.astype(np.float32) / 65535).permute(2, 0, 1)
        alpha = x[3:] if x.shape[0] == 4 else None
        self.tensor, self.info = x[:3], ImageInfo(gray=x.shape[0] == 1, alpha=alpha, bits=16)

    def _from_tensor(self, t: torch.Tensor) -> None:
        if t.dim() == 2:
            t = t[None]
            self.squeeze = True
        else:
            self.squeeze = False
        if t.dim() != 3 or t.shape[0] not in (1, 3, 4):
            raise DensekitError("image: expected a (C, H, W) tensor with C = 1, 3 or 4 or an "
                                f"(H, W) tensor, got shape {tuple(t.shape)}")
        if t.dtype == torch.uint8:
            x = t.float() / 255
        elif t.is_floating_point():
            x = t.detach().float().cpu().clamp(0, 1)
        else:
            raise DensekitError(f"image: tensors must be float in [0, 1] or uint8, got {t.dtype}")
        self.kind, self.dtype = "tensor", t.dtype
        alpha = x[3:] if x.shape[0] == 4 else None
        self.tensor, self.info = x[:3], ImageInfo(gray=x.shape[0] == 1, alpha=alpha, bits=8)

    def back(self, out: torch.Tensor, info: ImageInfo):
        """A (C, H, W) [0, 1] result (+ alpha in ``info``) as the input's kind."""
        if self.kind == "pil":
            return to_pil(out, info)
        if self.kind == "numpy":
            if self.dtype == np.uint8 or self.ndim == 2:
                arr = np.asarray(to_pil(out, info))
                return arr[:, :, None] if self.ndim == 3 and arr.ndim == 2 else arr
            x = torch.cat([out, info.alpha]) if info.alpha is not None else out
            return np.floor(x.clamp(0, 1).permute(1, 2, 0).numpy().astype(np.float64) * 65535
                            + 0.5).astype(np.uint16)
        x = torch.cat([out, info.alpha]) if info.alpha is not None else out
        if self.dtype == torch.uint8:
            x = torch.floor(x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        return x[0] if self.squeeze else x


# ---- inference ----------------------------------------------------------------------------------
def _check_scale(scale) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SUPPORTED_SCALES:
        raise DensekitError(f"scale: expected one of {', '.join(map(str, SUPPORTED_SCALES))}, "
                            f"got {scale!r}")
    return scale


def _precision(device: str, precision: str) -> Precision:
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise DensekitError(f"precision: expected auto, fp32, bf16 or fp16, got {precision!r}")
    dev = resolve_device(device)
    return Precision(dev, resolve_precision(precision, dev), channels_last=True)


def _cache_key(path: Path | None) -> tuple:
    return (None,) if path is None else (str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _sr_model(name: str, scale: int, key: tuple, device: str, precision: str,
              options: tuple = ()):
    prec = _precision(device, precision)
    path = None if key[0] is None else Path(key[0])
    model = load_sr_model(name, scale, path, dict(options), option="model_options")
    return prec.prepare(model), prec


@lru_cache(maxsize=2)
def _seg_model(key: tuple, device: str, precision: str):
    prec = _precision(device, precision)
    model, meta = load_seg_model(Path(key[0]), option="model")
    return prec.prepare(model), meta, prec


def upscale(image, scale: int = 2, *, model: str = "hdcn", weights=None, tile: int | None = None,
            self_ensemble: bool = False, device: str = "auto", precision: str = "auto",
            model_options: dict | None = None):
    """``image`` upscaled ``scale`` times by SR model ``model`` ("hdcn", "srcnn", "vdsr",
    "rednet" or "bicubic"), as the same kind of image.

    ``weights``: None for the shipped weights of ``model`` at ``scale`` that fit the image: for
    a PIL image read from a JPEG file whose quality (estimated from its quantisation tables) is
    at most :data:`~densekit.models.zoo.REAL_PHOTO_MAX_QUALITY`, the real-photo weights
    (``hdcn_real_x2``, ``hdcn_real_x4``) where they ship, else the clean ones (``hdcn_x2``...;
    :func:`choose_weights` tells which, and a PIL result carries the name in
    ``result.info["densekit_weights"]``); a shipped weights name such as "hdcn_x2" or
    "hdcn_real_x2"; or a weights file or checkpoint from ``densekit sr train``. ``tile``: LR
    tile size (None: about 512x512 output
    pixels per tile; 0: no tiling); the result does not depend on it. ``self_ensemble``:
    average over the 8 flips/rotations (8x the time). ``model_options``: options that change
    no weights, as ``densekit sr upscale --model-option`` (HDCN: ``{"fp32_features": False}``
    keeps its feature maps in the 16-bit type on a bf16/fp16 path: faster, PSNR a little lower).
    """
    scale = _check_scale(scale)
    if model not in SR_MODELS:
        raise DensekitError(f"model: unknown SR model {model!r} (known: {', '.join(SR_MODELS)})")
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 0):
        raise DensekitError(f"tile: expected None or an integer >= 0, got {tile!r}")
    try:  # the model cache's key: names (str) to hashable values
        options = tuple(sorted((model_options or {}).items()))
        hash(options)
    except (AttributeError, TypeError):
        options = None
    if options is None or not all(isinstance(k, str) for k, _ in options):
        raise DensekitError(f"model_options: expected a dict of names to values such as "
                            f"{{'fp32_features': False}}, got {model_options!r}")
    chosen = None
    if weights is None and model != "bicubic":
        chosen = choose_weights(image, scale, model=model)[0]
        weights = chosen if chosen is not None and chosen != f"{model}_x{scale}" else None
    path = _weights_path(model, weights, scale=scale) if weights is not None else None
    net, prec = _sr_model(model, scale, _cache_key(path), device, precision, options)
    img = _Image(image)
    out, info = upscale_image(net, img.tensor, img.info,
                              tile=default_tile(scale) if tile is None else tile,
                              autocast=prec.autocast, device=prec.device,
                              self_ensemble=bool(self_ensemble))
    result = img.back(out, info)
    if isinstance(result, Image.Image):
        result.info["densekit_weights"] = chosen if chosen is not None else (
            weights.name if isinstance(weights, Weights) else str(weights) if weights else model)
    return result


def choose_weights(image, scale: int = 2, *, model: str = "hdcn") -> tuple[str | None, int | None]:
    """The shipped weights :func:`upscale` uses for ``image`` when given no ``weights``, and
    the JPEG quality estimated from the image's file: ``("hdcn_real_x2", 70)`` for a PIL image
    opened from a JPEG of quality 70, ``("hdcn_x2", None)`` for a PNG, a NumPy array or a tensor
    (no file to tell). None as the name when nothing ships for ``model`` x ``scale``."""
    scale = _check_scale(scale)
    if model not in SR_MODELS:
        raise DensekitError(f"model: unknown SR model {model!r} (known: {', '.join(SR_MODELS)})")
    if not isinstance(image, Image.Image):
        record = default_weights(model, scale=scale)
        return (record.name if record is not None else None), None
    return _choose_weights(model, scale, image)


def _seg_weights(model) -> Path:
    if isinstance(model, Weights) or (isinstance(model, str) and
                                       model in {w.name for w in list_weights(task="seg")}):
        return (model if isinstance(model, Weights) else get_weights(model)).verify()
    if isinstance(model, (str, os.PathLike)) and Path(model).is_file():
        return Path(model)
    names = ", ".join(w.name for w in list_weights(task="seg")) or "none"
    raise DensekitError(f"model: {model!r} is neither a shipped segmentation model ({names}) "
                        "nor a weights file")


def segment(image, *, model=DEFAULT_SEG_WEIGHTS, flip: bool = False,
            scales: tuple[float, ...] = (1.0,), mode: str = "whole",
            crop: tuple[int, int] | None = None, device: str = "auto", precision: str = "auto"):
    """The label map (H x W class indices) of ``image``: a NumPy array (uint8 for up to 256
    classes) for PIL / NumPy input, a torch tensor (int64) for tensor input.

    ``model``: a shipped segmentation model (default: the CamVid model, see
    :func:`list_weights`) or a weights file / checkpoint from ``densekit seg train``.
    ``flip``, ``scales``, ``mode`` ("whole" or "slide") and ``crop`` (the sliding window)
    are the test-time options of ``densekit seg predict``. The colours: :func:`overlay`,
    :func:`colorize`.
    """
    if mode not in ("whole", "slide"):
        raise DensekitError(f"mode: expected 'whole' or 'slide', got {mode!r}")
    if mode == "slide" and not crop:
        raise DensekitError("crop: sliding-window inference (mode='slide') needs (H, W)")
    scales = tuple(scales)
    if not scales or any(isinstance(s, bool) or not isinstance(s, (int, float)) or
                         not 0 < s < float("inf") for s in scales):
        raise DensekitError(f"scales: expected numbers > 0, got {scales!r}")
    net, meta, prec = _seg_model(_cache_key(_seg_weights(model)), device, precision)
    img = _Image(image)
    labels = segment_image(net, meta, rgb_uint8(img.tensor), device=prec.device,
                           autocast=prec.autocast, mode=mode,
                           crop=tuple(crop) if crop else None, flip=bool(flip), scales=scales)
    if img.kind == "tensor":
        return torch.from_numpy(labels.astype(np.int64))
    return labels.astype(np.uint8) if len(meta["classes"]) <= 256 else labels


def _palette(palette, model) -> list:
    if palette is not None:
        return [tuple(c) for c in palette]
    if isinstance(model, Weights):
        return list(model.palette)
    return list(get_weights(model).palette)


def _labels(labels) -> np.ndarray:
    arr = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise DensekitError(f"labels: expected an H x W integer label map, got shape "
                            f"{arr.shape} of {arr.dtype}")
    return arr


def colorize(labels, *, palette=None, model=DEFAULT_SEG_WEIGHTS) -> Image.Image:
    """The label map as a palette PNG image (the ``_label.png`` of ``seg predict``);
    ``palette``: a list of (r, g, b), default the palette of shipped model ``model``."""
    arr = _labels(labels)
    pal = _palette(palette, model)
    if arr.size and (arr.min() < 0 or arr.max() >= len(pal)):
        raise DensekitError(f"labels: values must be in 0..{len(pal) - 1} for this palette")
    return label_png(arr, pal)


def overlay(image, labels, *, alpha: float = 0.5, palette=None,
            model=DEFAULT_SEG_WEIGHTS) -> Image.Image:
    """The image with the label colours blended in (the ``_overlay.png`` of ``seg predict``)."""
    img = _Image(image)
    arr = _labels(labels)
    if arr.shape != tuple(img.tensor.shape[-2:]):
        raise DensekitError(f"labels: size {arr.shape} does not match the image's "
                            f"{tuple(img.tensor.shape[-2:])}")
    if not 0 <= alpha <= 1:
        raise DensekitError(f"alpha: expected a number in [0, 1], got {alpha!r}")
    pal = _palette(palette, model)
    if arr.size and (arr.min() < 0 or arr.max() >= len(pal)):
        raise DensekitError(f"labels: values must be in 0..{len(pal) - 1} for this palette")
    rgb = rgb_uint8(img.tensor).permute(1, 2, 0).numpy().astype(np.float32)
    return _overlay_rgb(rgb, arr, pal, alpha)
