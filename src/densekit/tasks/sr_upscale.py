"""Upscaling users' images: any size and kind, tiled with bounded memory, atomic outputs.

Tiling: the LR image is cut into core tiles; each is run with ``model.context`` extra LR pixels
of real neighbours on every side (tile origins aligned to ``model.align``), and only the core's
HR pixels are kept. Because the context covers the receptive field, the tiled result equals
the untiled one (up to float rounding), at a memory cost set by the tile size.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch
from torch import nn

from densekit.data.image_io import ImageInfo, process_images, read_image, save_image
from densekit.models.sr.bicubic import Bicubic
from densekit.models.sr.common import dihedral_ensemble
from densekit.ops.color import rgb_to_ycbcr, ycbcr_to_rgb


def default_tile(scale: int) -> int:
    """LR tile size keeping one tile's HR output near 512x512 pixels."""
    return max(32, 512 // scale)


def _tiles(length: int, tile: int, align: int) -> list[tuple[int, int]]:
    tile = max(align, (tile // align) * align)
    return [(s, min(s + tile, length)) for s in range(0, length, tile)]


@torch.no_grad()
def tiled_forward(model: nn.Module, lr: torch.Tensor, tile: int = 0, *, autocast=None,
                  device="cpu", self_ensemble: bool = False) -> torch.Tensor:
    """Run ``model`` on lr (1, C, h, w); tile > 0 processes tiles of that many LR pixels.

    ``self_ensemble``: the mean over the 8 flips/rotations of the whole image, each tiled the
    same way (so the tiled result still equals the untiled one).
    """
    if self_ensemble:
        return dihedral_ensemble(lambda x: tiled_forward(model, x, tile, autocast=autocast,
                                                         device=device), lr)
    s = model.scale
    ctx = autocast or contextlib.nullcontext
    _, c, h, w = lr.shape

    first = next(model.parameters(), None)
    channels_last = first is not None and first.dim() == 4 and \
        first.is_contiguous(memory_format=torch.channels_last)

    def run(x):
        x = x.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with ctx():
            y = model(x)
        return y.float().cpu()

    if tile <= 0 or (h <= tile and w <= tile):
        return run(lr)
    m, a = int(model.context), int(getattr(model, "align", 1))
    out = torch.empty(1, c, h * s, w * s)
    for y0, y1 in _tiles(h, tile, a):
        for x0, x1 in _tiles(w, tile, a):
            ys = max(0, ((y0 - m) // a) * a) if y0 - m > 0 else 0
            xs = max(0, ((x0 - m) // a) * a) if x0 - m > 0 else 0
            ye, xe = min(h, y1 + m), min(w, x1 + m)
            y = run(lr[:, :, ys:ye, xs:xe])
            out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = \
                y[:, :, (y0 - ys) * s:(y1 - ys) * s, (x0 - xs) * s:(x1 - xs) * s]
    return out


def upscale_image(model: nn.Module, img: torch.Tensor, info: ImageInfo | None = None, *,
                  tile: int = 0, autocast=None, device="cpu",
                  self_ensemble: bool = False) -> tuple[torch.Tensor, ImageInfo]:
    """Upscale a (C, H, W) [0, 1] image (C = 1 or 3) with an SR model of 1 (Y) or 3 channels.

    A Y model runs on the luminance; chroma is upscaled with bicubic. Alpha is upscaled with
    bicubic separately. Everything goes through the same tiles, so memory stays bounded.
    ``self_ensemble`` averages the model over the 8 flips/rotations (8x the time).
    """
    run = functools.partial(tiled_forward, model, tile=tile, autocast=autocast, device=device,
                            self_ensemble=self_ensemble)
    s = model.scale
    x = img.to(torch.float32)
    gray = x.shape[0] == 1
    if model.channels == 1:
        if gray:
            out = run(x[None])[0]
        else:
            ycc = rgb_to_ycbcr(x)
            y = run(ycc[None, :1])[0]
            cbcr = tiled_forward(Bicubic(s, 2), ycc[None, 1:], tile)[0]
            out = ycbcr_to_rgb(torch.cat([y, cbcr]))
    else:
        inp = x.expand(3, -1, -1) if gray else x
        out = run(inp[None])[0]
        if gray:
            out = out.mean(0, keepdim=True)
    out = out.clamp(0, 1)
    new_info = ImageInfo(gray=gray, alpha=None, bits=info.bits if info else 8)
    if info is not None and info.alpha is not None:
        new_info.alpha = tiled_forward(Bicubic(s, 1), info.alpha[None].float(),
                                       tile)[0].clamp(0, 1)
    return out, new_info


def output_path(out_dir: Path, src: Path, scale: int) -> Path:
    return out_dir / f"{src.stem}_x{scale}.png"


def upscale_files(model: nn.Module, inputs: list[str], out_dir: str | Path, *, tile: int = 0,
                  autocast=None, device="cpu", self_ensemble: bool = False,
                  progress: bool = True, report=print) -> dict:
    """Upscale every input; a bad file is reported and skipped. Returns counts and failures."""

    def handle(src: Path, out: Path) -> Path:
        img, info = read_image(src)
        y, yinfo = upscale_image(model, img, info, tile=tile, autocast=autocast, device=device,
                                 self_ensemble=self_ensemble)
        dst = output_path(out, src, model.scale)
        save_image(dst, y, yinfo)
        return dst

    return process_images(inputs, out_dir, handle, verb="upscale", progress=progress,
                          report=report)
