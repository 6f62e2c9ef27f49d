"""What the web app does with one upload, without the web: read it under the server's limits,
run :func:`densekit.upscale` / :func:`densekit.segment` and write the result files.

Nothing here imports gradio, so these functions are tested on their own. Mistakes (a file that is
not an image, a truncated file, a decompression bomb, an option the shipped weights cannot do)
raise :class:`~densekit.errors.DensekitError` with one line that names the upload by its
original file name, never by its path on the server.
"""

from __future__ import annotations

import html
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from densekit import api
from densekit.data.degrade import jpeg_quality
from densekit.data.image_io import MAX_PIXELS, image_from_pil, image_size, open_image, to_pil
from densekit.errors import DensekitError, ImageError
from densekit.models.sr import SUPPORTED_SCALES
from densekit.models.zoo import default_weights, get_weights, list_weights

SEG_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # the multi-scale choices offered
TILE_CHOICES = ("auto", "0", "64", "128", "256", "512")  # "auto": the API's default, 0: none
RESULTS_MAX_AGE_S = 3600  # result folders older than this are removed on the next request


REAL = "_real"  # an SR model name + REAL: that model with its real-photo weights


def sr_models() -> list[str]:
    """The SR models the app offers: those with shipped weights (which pick the real-photo
    weights for a JPEG upload, as ``densekit.upscale`` does), each with real-photo weights also
    as NAME_real (those weights whatever the upload), and bicubic."""
    records = list_weights(task="sr")
    real = {w.model + REAL for w in records if w.degradation == "real"}
    return sorted({w.model for w in records}) + sorted(real) + ["bicubic"]


def seg_models() -> list[str]:
    """The shipped segmentation models (zoo names), the default first."""
    names = [w.name for w in list_weights(task="seg")]
    return sorted(names, key=lambda n: n != api.DEFAULT_SEG_WEIGHTS)


def upload_name(orig_name: str | None) -> str:
    """A safe stem for messages and result files: the upload's own file name without folders,
    suffix or characters outside ``A-Za-z0-9._-`` (at most 64 of them), or ``image``."""
    stem = Path(str(orig_name or "").replace("\\", "/")).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:64]
    return stem or "image"


def read_upload(path: str | Path, name: str, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The uploaded file at ``path`` decoded (EXIF orientation applied), after checking its
    header against ``max_pixels`` and densekit's decompression-bomb limit (the same as every
    command's). ``name`` stands for the file in error messages."""
    path = Path(path)
    try:
        h, w = image_size(path)  # the header only: bombs are refused before decoding
        if h * w > max_pixels:
            raise ImageError(f"{path}: {w}x{h} pixels is larger than this server's limit of "
                             f"{max_pixels:,} pixels")
        im = open_image(path)
        if min(im.size) < 1:
            raise ImageError(f"{path}: empty image")
        return im
    except DensekitError as e:
        raise ImageError(_hide_path(str(e), path, name)) from None


def _hide_path(message: str, path: Path, name: str) -> str:
    message = message.replace(str(path), name).replace(str(path.parent), "")
    return " ".join(message.split())


def new_result_dir(root: str | Path) -> Path:
    """A fresh folder for one request's results under ``root``; folders of earlier requests
    older than :data:`RESULTS_MAX_AGE_S` are removed."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.iterdir():
        try:
            if old.is_dir() and now - old.stat().st_mtime > RESULTS_MAX_AGE_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(dir=root))


def parse_tile(tile) -> int | None:
    """One of :data:`TILE_CHOICES` (text or int) as :func:`densekit.upscale`'s tile; other
    sizes are refused (a tiny tile would hold the one model slot for a very long time)."""
    text = "auto" if tile is None else str(tile).strip().lower()
    if text not in TILE_CHOICES:
        raise DensekitError(f"tile: expected one of {', '.join(TILE_CHOICES)}, got {tile!r}")
    return None if text == "auto" else int(text)


@dataclass
class SRResult:
    before: Path  # the input enlarged to the output's size (nearest neighbour), for comparing
    after: Path  # the upscaled image, NAME_xS.png, as `densekit sr upscale` names it
    summary: str  # one line: sizes, model, time


def run_upscale(image: Image.Image, name: str, out_dir: str | Path, *, scale: int = 2,
                model: str = "hdcn", tile=None, self_ensemble: bool = False,
                device: str = "auto", precision: str = "auto") -> SRResult:
    """Upscale ``image`` with :func:`densekit.upscale` and write the result and a nearest-
    neighbour enlargement of the input (the slider's "before") as PNGs into ``out_dir``."""
    if str(scale) not in map(str, SUPPORTED_SCALES):
        raise DensekitError(f"scale: expected one of {', '.join(map(str, SUPPORTED_SCALES))}, "
                            f"got {scale!r}")
    scale = int(scale)
    if model not in sr_models():
        raise DensekitError(f"model: expected one of {', '.join(sr_models())}, got {model!r}")
    out_dir = Path(out_dir)
    weights = None
    if model.endswith(REAL):
        model = model[:-len(REAL)]
        record = default_weights(model, scale=scale, degradation="real")
        if record is None:
            scales = sorted(w.scale for w in list_weights(task="sr", model=model)
                            if w.degradation == "real")
            raise DensekitError(f"model: no real-photo weights for {model} x{scale} (shipped "
                                f"for x{', x'.join(map(str, scales))})")
        weights = record.name
    t0 = time.perf_counter()
    out = api.upscale(image, scale, model=model, weights=weights, tile=parse_tile(tile),
                      self_ensemble=bool(self_ensemble), device=device, precision=precision)
    seconds = time.perf_counter() - t0
    after = out_dir / f"{name}_x{scale}.png"
    out.save(after, format="PNG")
    before = out_dir / f"{name}_input.png"
    to_pil(*image_from_pil(image, name)).resize(out.size, Image.NEAREST).save(before,
                                                                             format="PNG")
    what = f"{model} x{scale}" + (" + self-ensemble" if self_ensemble else "")
    used = out.info.get("densekit_weights")
    if model != "bicubic" and used:
        quality = jpeg_quality(image)
        what += f" ({used}" + (f", JPEG quality ~{quality}" if quality is not None else "") + ")"
    summary = (f"{name}: {image.width}x{image.height} -> {out.width}x{out.height} pixels, "
               f"{what}, {seconds:.1f} s")
    return SRResult(before, after, summary)


@dataclass
class LegendEntry:
    name: str
    color: tuple[int, int, int]
    fraction: float  # of the image's pixels


@dataclass
class SegResult:
    overlay: Path  # NAME_overlay.png, as `densekit seg predict` writes it
    label: Path  # NAME_label.png (palette PNG of class indices)
    legend: list[LegendEntry]  # the classes present, most pixels first
    summary: str


def run_segment(image: Image.Image, name: str, out_dir: str | Path, *,
                model: str = api.DEFAULT_SEG_WEIGHTS, flip: bool = False,
                scales=(1.0,), device: str = "auto", precision: str = "auto") -> SegResult:
    """Segment ``image`` with :func:`densekit.segment` (shipped model ``model``) and write its
    overlay and label PNG into ``out_dir``."""
    if model not in seg_models():
        raise DensekitError(f"model: expected one of {', '.join(seg_models())}, got {model!r}")
    try:
        scales = tuple(sorted(float(s) for s in scales or ()))
    except (TypeError, ValueError):
        raise DensekitError(f"scales: expected numbers, got {scales!r}") from None
    if not scales:
        raise DensekitError("scales: pick at least one scale")
    if not set(scales) <= set(SEG_SCALES):  # the choices: no request may ask for far more work
        raise DensekitError(f"scales: expected some of {', '.join(map(str, SEG_SCALES))}, got "
                            f"{' '.join(f'{s:g}' for s in scales)}")
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    labels = api.segment(image, model=model, flip=bool(flip), scales=scales, device=device,
                         precision=precision)
    seconds = time.perf_counter() - t0
    overlay = out_dir / f"{name}_overlay.png"
    api.overlay(image, labels, model=model).save(overlay, format="PNG")
    label = out_dir / f"{name}_label.png"
    api.colorize(labels, model=model).save(label, format="PNG")
    weights = get_weights(model)
    entries = legend(labels, weights.classes, weights.palette)
    tta = (" + flip" if flip else "") + (
        f", scales {' '.join(f'{s:g}' for s in scales)}" if scales != (1.0,) else "")
    summary = (f"{name}: {image.width}x{image.height} pixels, {model}{tta}, "
               f"{len(entries)} classes present, {seconds:.1f} s")
    return SegResult(overlay, label, entries, summary)


def legend(labels, classes, palette) -> list[LegendEntry]:
    """The classes present in ``labels`` with their colours and pixel fractions, most pixels
    first."""
    arr = np.asarray(labels).ravel()
    counts = np.bincount(arr, minlength=len(classes)) if arr.size else np.zeros(len(classes))
    order = sorted((i for i in range(len(classes)) if counts[i]), key=lambda i: -counts[i])
    return [LegendEntry(str(classes[i]), tuple(int(c) for c in palette[i]),
                        float(counts[i]) / arr.size) for i in order]


def legend_html(entries: list[LegendEntry]) -> str:
    """The legend as HTML: a colour swatch, the class name and its share of the pixels."""
    if not entries:
        return ""
    rows = "".join(
        f'<li class="densekit-legend-item" data-class="{html.escape(e.name, quote=True)}">'
        f'<span class="densekit-swatch" style="display:inline-block;width:1em;height:1em;'
        f'margin-right:0.4em;vertical-align:middle;border:1px solid #0003;'
        f'background:rgb({e.color[0]},{e.color[1]},{e.color[2]})"></span>'
        f"{html.escape(e.name)} <small>{100 * e.fraction:.1f}%</small></li>"
        for e in entries)
    return ('<ul class="densekit-legend" style="list-style:none;padding:0;margin:0;'
            f'columns:2">{rows}</ul>')
