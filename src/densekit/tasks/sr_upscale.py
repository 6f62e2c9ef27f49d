"""Upscaling users' images: any size and kind, tiled and streamed with bounded memory, atomic
outputs.

Tiling: the LR image is cut into core tiles; each is run with ``model.context`` extra LR pixels
of real neighbours on every side (tile origins aligned to ``model.align``), and only the core's
HR pixels are kept. Because the context covers the receptive field, the tiled result equals
the untiled one (up to float rounding), at a memory cost set by the tile size.

Streaming: the model runs one row of tiles at a time. The rest of the image (the bicubic
chroma of a Y-channel model, the bicubic alpha, the YCbCr -> RGB conversion and the rounding to
8 or 16 bits) is done on bands of at most :data:`BAND_PIXELS` output pixels, each written into
the preallocated output image at once. Those steps are computed pixel by pixel (bicubic as a
fixed sum of its taps, colour as a fixed sum of three products), so a band equals the same rows
of the whole-image computation bit for bit. They run in NumPy, on one thread: on bands this
small torch's threads wait on each other on a busy machine (several times slower than one).
Held for the whole image: the decoded input and the 8/16-bit output (with self-ensemble also
the model's float output, see :func:`tiled_forward`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from densekit.data.image_io import (ImageInfo, ImageRows, TensorRows, array_to_pil, open_image,
                                    process_images, quantize)
from densekit.io import atomic_write
from densekit.models.sr.common import dihedral_ensemble
from densekit.ops.color import rgb_to_ycbcr_pointwise, ycbcr_to_rgb_pointwise
from densekit.ops.imresize import upscale_band

BAND_PIXELS = 1 << 17  # output pixels per band of the chroma / alpha / colour / rounding steps
# zlib level of the output PNGs: 1 writes a photo 6x faster than PIL's default 6 (64 vs 391 ms
# per output Mpx on a 2-core Xeon, where HDCN itself takes 550-1,250) for files ~16% larger;
# the pixels are the same
PNG_LEVEL = 1


def default_tile(scale: int) -> int:
    """LR tile size keeping one tile's HR output near 512x512 pixels."""
    return max(32, 512 // scale)


def _tiles(length: int, tile: int, align: int) -> list[tuple[int, int]]:
    tile = max(align, (tile // align) * align)
    return [(s, min(s + tile, length)) for s in range(0, length, tile)]


def model_runner(model: nn.Module, autocast=None, device="cpu"
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``run(x)``: the model's float32 CPU output for an LR input x, on ``device``, under
    ``autocast``, channels_last when the model is (as each tile is run)."""
    ctx = autocast or contextlib.nullcontext
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

    return run


def _tile_rows(model: nn.Module, rows: Callable[[int, int], torch.Tensor], h: int, w: int,
               tile: int, run) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(y0, y1, out)`` for each row of tiles, top to bottom: ``out`` (1, C, (y1 - y0) * s,
    w * s) is the model's output for LR rows y0..y1-1 (valid until the next row is asked for:
    the rows share one buffer); ``rows(a, b)`` gives LR rows a..b-1 as (C, b - a, w)."""
    s = model.scale
    if tile <= 0 or (h <= tile and w <= tile):
        yield 0, h, run(rows(0, h)[None])
        return
    m, a = int(model.context), int(getattr(model, "align", 1))
    buffer = None  # one for every row of tiles: no new long-lived memory between the model runs
    for y0, y1 in _tiles(h, tile, a):
        ys = max(0, ((y0 - m) // a) * a) if y0 - m > 0 else 0
        ye = min(h, y1 + m)
        band = rows(ys, ye)[None]
        for x0, x1 in _tiles(w, tile, a):
            xs = max(0, ((x0 - m) // a) * a) if x0 - m > 0 else 0
            xe = min(w, x1 + m)
            y = run(band[:, :, :, xs:xe])
            if buffer is None:
                buffer = torch.empty(1, y.shape[1], (y1 - y0) * s, w * s)
            buffer[:, :, :(y1 - y0) * s, x0 * s:x1 * s] = \
                y[:, :, (y0 - ys) * s:(y1 - ys) * s, (x0 - xs) * s:(x1 - xs) * s]
        yield y0, y1, buffer[:, :, :(y1 - y0) * s]


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
    _, _, h, w = lr.shape
    s = model.scale
    out = None
    for y0, y1, band in _tile_rows(model, lambda a, b: lr[0, :, a:b], h, w, tile,
                                   model_runner(model, autocast, device)):
        if (y0, y1) == (0, h):
            return band
        if out is None:
            out = torch.empty(1, band.shape[1], h * s, w * s)
        out[:, :, y0 * s:y1 * s] = band
    return out


@torch.no_grad()
def upscale_rows(model: nn.Module, src: ImageRows | TensorRows, *, tile: int = 0,
                 autocast=None, device="cpu", self_ensemble: bool = False
                 ) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor | None]]:
    """The upscaled image as bands ``(r0, r1, img, alpha)``, top to bottom: output rows
    r0..r1-1 as float32 (C, r1 - r0, W) in [0, 1] and their alpha (1, r1 - r0, W) or None.

    ``src``: the (C, H, W) [0, 1] input image (C = 1 or 3) by rows (:class:`ImageRows`,
    :class:`TensorRows`). A Y-channel model runs on the luminance and the chroma is upscaled with
    bicubic; alpha is upscaled with bicubic. ``self_ensemble`` averages the model over the 8
    flips/rotations (8x the time; the model's output is then made for the whole image first).
    """
    s = model.scale
    h, w = src.height, src.width
    y_model = model.channels == 1
    chroma = y_model and not src.gray
    chunk = max(1, BAND_PIXELS // (w * s * s))  # LR rows a band
    if not y_model:
        lr_rows = (lambda a, b: src.rows(a, b).expand(3, -1, -1)) if src.gray else src.rows
    elif chroma:
        def lr_rows(a, b):  # Y of a few rows at a time: no float64 copy of a whole tile row
            out = np.empty((1, b - a, w), np.float32)
            for c in range(a, b, chunk):
                out[:, c - a:min(c + chunk, b) - a] = rgb_to_ycbcr_pointwise(
                    src.rows(c, min(c + chunk, b)).numpy(), (0,))
            return torch.from_numpy(out)
    else:
        lr_rows = src.rows
    if self_ensemble:
        full = tiled_forward(model, lr_rows(0, h)[None], tile, autocast=autocast,
                             device=device, self_ensemble=True)
        bands = iter([(0, h, full)])
    else:
        bands = _tile_rows(model, lr_rows, h, w, tile, model_runner(model, autocast, device))
    step = s * chunk  # output rows a band
    for y0, y1, out in bands:
        for r0 in range(y0 * s, y1 * s, step):
            r1 = min(r0 + step, y1 * s)
            img = out[0, :, r0 - y0 * s:r1 - y0 * s].numpy()
            if not y_model and src.gray:
                img = img.mean(0, keepdims=True, dtype=np.float32)
            if chroma:
                cbcr = upscale_band(lambda a, b: rgb_to_ycbcr_pointwise(src.rows(a, b).numpy(),
                                                                        (1, 2)),
                                    r0 // s, r1 // s, h, w, s)
                img = ycbcr_to_rgb_pointwise(np.concatenate([img, cbcr]))
            alpha = None
            if src.has_alpha:
                alpha = np.clip(upscale_band(lambda a, b: src.alpha_rows(a, b).numpy(),
                                             r0 // s, r1 // s, h, w, s), 0, 1)
                alpha = torch.from_numpy(alpha)
            yield r0, r1, torch.from_numpy(np.clip(img, 0, 1)), alpha
        del out


def upscale_image(model: nn.Module, img: torch.Tensor, info: ImageInfo | None = None, *,
                  tile: int = 0, autocast=None, device="cpu",
                  self_ensemble: bool = False) -> tuple[torch.Tensor, ImageInfo]:
    """Upscale a (C, H, W) [0, 1] image (C = 1 or 3) with an SR model of 1 (Y) or 3 channels,
    as a float image and its :class:`ImageInfo` (the bands of :func:`upscale_rows` put
    together; :func:`upscale_to_pil` rounds the same bands into an image without the float
    copy)."""
    src = TensorRows(img, info)
    s = model.scale
    out = torch.empty(src.channels, src.height * s, src.width * s)
    alpha = torch.empty(1, src.height * s, src.width * s) if src.has_alpha else None
    for r0, r1, band, a in upscale_rows(model, src, tile=tile, autocast=autocast,
                                        device=device, self_ensemble=self_ensemble):
        out[:, r0:r1] = band
        if alpha is not None:
            alpha[:, r0:r1] = a
    return out, ImageInfo(gray=src.gray, alpha=alpha, bits=src.bits)


def upscale_to_pil(model: nn.Module, src: ImageRows | TensorRows, *, tile: int = 0,
                   autocast=None, device="cpu", self_ensemble: bool = False) -> Image.Image:
    """The upscaled image as a PIL image (8-bit, or 16-bit for 16-bit grayscale input), each
    band of :func:`upscale_rows` rounded into it as it comes: equal to
    ``to_pil(*upscale_image(...))`` pixel for pixel, without the float image."""
    s = model.scale
    mode = quantize(torch.zeros(src.channels, 1, 1),  # the mode of the output's bands
                    torch.zeros(1, 1, 1) if src.has_alpha else None, src.bits)[1]
    result = Image.new(mode, (src.width * s, src.height * s))  # before the model's memory
    for r0, _, band, alpha in upscale_rows(model, src, tile=tile, autocast=autocast,
                                           device=device, self_ensemble=self_ensemble):
        result.paste(array_to_pil(*quantize(band, alpha, src.bits)), (0, r0))
    return result


def output_path(out_dir: Path, src: Path, scale: int) -> Path:
    """``OUT/NAME_xS.png`` for ``NAME.EXT`` (``src``: the input's path relative to its INPUT
    folder, or its file name: subfolders are kept)."""
    return out_dir / output_names(Path(src), scale)[0]


def output_names(rel: Path, scale: int) -> list[Path]:
    """The output of an input at ``rel`` (its path relative to its INPUT folder), relative to
    the output folder: ``sub/NAME.EXT`` -> ``sub/NAME_xS.png``."""
    return [rel.parent / f"{rel.stem}_x{scale}.png"]


def upscale_files(model: nn.Module, inputs: list[str], out_dir: str | Path, *, tile: int = 0,
                  autocast=None, device="cpu", self_ensemble: bool = False,
                  progress: bool = True, report=print, skip_existing: bool = False,
                  report_file: str | Path | None = None,
                  pick: Callable[[Image.Image], tuple[nn.Module, dict]] | None = None) -> dict:
    """Upscale every input (files, and folders with their subfolders) into ``out_dir``
    (:func:`output_names`); a bad file is reported and skipped. ``pick``: the model for each
    opened image instead of ``model`` (of the same scale), and what to record of the choice in
    the input's report entry (e.g. ``{"weights": "hdcn_real_x2", "jpeg_quality": 70}``).
    Returns the outcome of :func:`~densekit.data.image_io.process_images`."""

    def handle(src: Path, dsts: list[Path]) -> dict | None:
        im = open_image(src)
        net, chosen = pick(im) if pick is not None else (model, None)
        image = upscale_to_pil(net, ImageRows(im, src), tile=tile, autocast=autocast,
                               device=device, self_ensemble=self_ensemble)
        atomic_write(dsts[0], lambda f: image.save(f, format="PNG", compress_level=PNG_LEVEL))
        return chosen

    return process_images(inputs, out_dir, handle,
                          outputs=lambda rel: output_names(rel, model.scale), verb="upscale",
                          progress=progress, report=report, skip_existing=skip_existing,
                          report_file=report_file)
