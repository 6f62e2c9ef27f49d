"""Segmentation inference and evaluation: whole-image or sliding-window, optional flip and
multi-scale testing, one confusion matrix over the split (the protocol of ``docs/protocols.md`` 2).
"""

from __future__ import annotations

import contextlib
import math
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densekit.data.seg import IMAGENET_MEAN, IMAGENET_STD, check_dataset
from densekit.engine import distributed
from densekit.errors import DensekitError
from densekit.metrics.seg import ConfusionMatrix


def normalize(image_uint8: Tensor) -> Tensor:
    """(3, H, W) or (N, 3, H, W) uint8 -> float normalised with the ImageNet mean/std."""
    x = image_uint8.float() / 255
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(-1, 1, 1)
    return (x - mean) / std


def _slide(model: nn.Module, x: Tensor, crop: tuple[int, int], stride: tuple[int, int],
           num_classes: int) -> Tensor:
    """Average logits over overlapping crops (the image is zero-padded up to the crop size)."""
    n, _, h, w = x.shape
    ch, cw = crop
    ph, pw = max(0, ch - h), max(0, cw - w)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    hh, ww = x.shape[-2:]
    rows = max(1, math.ceil((hh - ch) / stride[0]) + 1)
    cols = max(1, math.ceil((ww - cw) / stride[1]) + 1)
    out = x.new_zeros(n, num_classes, hh, ww, dtype=torch.float32)
    count = x.new_zeros(1, 1, hh, ww, dtype=torch.float32)
    for r in range(rows):
        for c in range(cols):
            y0 = min(r * stride[0], hh - ch)
            x0 = min(c * stride[1], ww - cw)
            out[..., y0:y0 + ch, x0:x0 + cw] += model(x[..., y0:y0 + ch, x0:x0 + cw]).float()
            count[..., y0:y0 + ch, x0:x0 + cw] += 1
    return (out / count)[..., :h, :w]


@torch.no_grad()
def predict_logits(model: nn.Module, x: Tensor, *, num_classes: int, mode: str = "whole",
                   crop: tuple[int, int] | None = None, stride: tuple[int, int] | None = None,
                   flip: bool = False, scales: tuple[float, ...] = (1.0,), resize: float = 1.0,
                   autocast=None) -> Tensor:
    """Class probabilities (N, C, H, W) at the input size for normalised images ``x``.

    ``resize`` scales the input first (e.g. 0.5 for half-resolution models); ``scales`` and
    ``flip`` average softmax outputs over rescaled and mirrored copies; ``mode="slide"``
    runs overlapping ``crop`` windows with ``stride`` (for large images such as Cityscapes).
    """
    ctx = autocast or contextlib.nullcontext
    h, w = x.shape[-2:]
    total = None
    for s in scales:
        f = s * resize
        xs = x if f == 1 else F.interpolate(x, scale_factor=f, mode="bilinear",
                                            align_corners=False)
        for flipped in ((False, True) if flip else (False,)):
            xi = xs.flip(-1) if flipped else xs
            with ctx():
                if mode == "slide":
                    if crop is None:
                        raise ValueError("sliding-window inference needs a crop size")
                    st = stride or (max(1, crop[0] * 2 // 3), max(1, crop[1] * 2 // 3))
                    logits = _slide(model, xi, crop, st, num_classes)
                else:
                    logits = model(xi)
            logits = logits.float()
            if flipped:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            p = logits.softmax(1)
            total = p if total is None else total + p
    return total / (len(scales) * (2 if flip else 1))


def evaluate_dataset(model: nn.Module, dataset, *, num_classes: int, device="cpu",
                     autocast=None, channels_last: bool = False, limit: int | None = None,
                     shard: tuple[int, int] = (0, 1), **inference) -> dict:
    """One confusion matrix over the dataset (untransformed images and labels): per-class IoU,
    mIoU, pixel accuracy. ``inference`` goes to :func:`predict_logits`. ``shard=(rank,
    processes)``: this process evaluates images rank, rank + processes, ... and the matrices
    are summed over the process group (torch.distributed) before the metrics."""
    rank, processes = shard
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index=dataset.ignore_index)
    t0 = time.perf_counter()
    n = len(dataset) if limit is None else min(limit, len(dataset))
    try:
        for i in range(rank, n, processes):
            image, mask = dataset[i]
            x = normalize(torch.as_tensor(image)[None]).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            probs = predict_logits(model, x, num_classes=num_classes, autocast=autocast,
                                   **inference)
            cm.update(probs.argmax(1).cpu(), torch.as_tensor(mask)[None].long())
    finally:
        model.train(was_training)
    if processes > 1:
        cm.matrix = distributed.all_sum(cm.matrix)
    res = cm.compute()
    res["images"] = n
    res["seconds"] = time.perf_counter() - t0
    return res


def check_pairs(dataset) -> None:
    """Refuse a data set whose images and labels do not pair up (a missing or extra label
    file, a label of another size than its image) in one line naming the first such file.
    Reads file names and image headers only: seconds for thousands of files."""
    problems = check_dataset(dataset, decode=False)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s); 'densekit data check' lists them)" \
            if len(problems) > 1 else ""
        raise DensekitError(problems[0] + more)


def evaluate_weights(model: nn.Module, meta: dict, dataset, *, dataset_name: str, split: str,
                     **kwargs) -> dict:
    """``densekit seg eval``'s result row for ``model`` and ``meta`` (from ``load_seg_model``)
    on ``dataset``: the classes and the image/label pairing are checked first, then
    :func:`evaluate_dataset` (``kwargs``) at the weights' ``resize``."""
    if list(meta["classes"]) != list(dataset.classes):
        raise DensekitError(f"{meta['path']}: trained for classes {meta['classes']}, the data "
                            f"set has {dataset.classes}")
    check_pairs(dataset)
    res = evaluate_dataset(model, dataset, num_classes=len(dataset.classes),
                           resize=meta.get("resize", 1.0), **kwargs)
    return {"dataset": dataset_name, "split": split, "model": meta["model"],
            "weights": str(meta["path"]), "miou": res["miou"], "pixel_acc": res["pixel_acc"],
            "mean_acc": res["mean_acc"], "iou": dict(zip(dataset.classes, res["iou"])),
            "images": res["images"], "seconds": res["seconds"]}
