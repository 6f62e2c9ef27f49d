"""Reading and writing images with clear errors.

Everything in densekit reads images through :func:`read_image`, which returns a float32 tensor
(C, H, W) in [0, 1] and the facts needed to write the result back in the same kind
(grayscale/RGB, alpha, 8/16 bit). Unreadable, truncated or absurdly large files raise
:class:`~densekit.errors.ImageError` naming the file. Writes are atomic
(:func:`densekit.io.atomic_write`), so no partial output file is ever left behind.
"""

from __future__ import annotations

import os
import struct
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from densekit.errors import DensekitError, ImageError
from densekit.io import atomic_write, write_above_bars

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MAX_PIXELS = 200_000_000  # refuse decompression bombs larger than this (about 14k x 14k)


@dataclass
class ImageInfo:
    """What is needed to write an image back in the kind it was read."""

    gray: bool  # single colour channel
    alpha: torch.Tensor | None  # (1, H, W) float in [0, 1], or None
    bits: int  # 8 or 16


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise ImageError(f"{folder}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def open_image(path: Path, load: bool = True) -> Image.Image:
    """The opened image, decoded and turned upright (EXIF orientation); with ``load=False``
    only the header is read (the caller closes the image)."""
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"{path}: {w}x{h} pixels is larger than the limit of {MAX_PIXELS}")
            if load:
                im.load()
                im = ImageOps.exif_transpose(im)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path}: image too large (decompression bomb guard)") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not an image or unsupported format") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated / corrupt data
        raise ImageError(f"{path}: cannot decode image ({e})") from None
    return im


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file as :func:`read_image` returns it (EXIF orientation
    applied), from the header alone: fast, but a file truncated after its header passes."""
    path = Path(path)
    im = open_image(path, load=False)
    try:
        w, h = im.size
        exif = im.info.get("exif")  # PNG: only an eXIf chunk before the pixel data
        if exif:
            try:
                orientation = Image.Exif()
                orientation.load(exif)
                if orientation.get(0x0112) in (5, 6, 7, 8):  # transposed or rotated 90/270
                    w, h = h, w
            except (OSError, SyntaxError, ValueError, TypeError, struct.error):
                pass  # unreadable EXIF: the stored size
        return h, w
    finally:
        im.close()


def read_image(path: str | os.PathLike) -> tuple[torch.Tensor, ImageInfo]:
    """Read an image file as float32 (C, H, W) in [0, 1] with C = 1 (gray) or 3 (colour).

    Palette and CMYK images become RGB; LA/RGBA lose their alpha into ``ImageInfo.alpha``;
    16-bit grayscale/RGB PNGs keep their full precision (``ImageInfo.bits == 16``).
    """
    path = Path(path)
    return image_from_pil(open_image(path), path)


def image_from_pil(im: Image.Image, name: str | os.PathLike = "image"
                   ) -> tuple[torch.Tensor, ImageInfo]:
    """:func:`read_image` of an opened PIL image (``name`` is used in error messages)."""
    alpha = None
    bits = 8
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        bits = 16
        arr = (np.clip(arr, 0, 65535) / 65535.0)[None]
        return torch.from_numpy(arr.astype(np.float32)), ImageInfo(True, None, bits)
    if mode == "F":  # NaN/Inf pixels (float TIFFs) would poison the output
        arr = np.clip(np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=1.0,
                                    neginf=0.0), 0, 1)[None]
        return torch.from_numpy(arr.copy()), ImageInfo(True, None, 8)
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA"):
        a = np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0
        alpha = torch.from_numpy(a[None].copy())
        im = im.convert("L" if mode == "LA" else "RGB")
        mode = im.mode
    if mode == "1":
        im = im.convert("L")
        mode = "L"
    if mode == "L":
        arr = np.asarray(im, dtype=np.float32)[None] / 255.0
        return torch.from_numpy(arr.copy()), ImageInfo(True, alpha, bits)
    if mode not in ("RGB",):
        try:
            im = im.convert("RGB")
        except (OSError, ValueError) as e:
            raise ImageError(f"{name}: unsupported image mode {mode} ({e})") from None
    arr = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return torch.from_numpy(arr.copy()), ImageInfo(False, alpha, bits)


def read_uint8_rgb_or_gray(path: str | os.PathLike) -> np.ndarray:
    """Read an image as a uint8 array (H, W, C), C = 1 or 3, for datasets and evaluation."""
    img, _ = read_image(path)
    return np.round(img.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)


def to_pil(img: torch.Tensor, info: ImageInfo | None = None) -> Image.Image:
    """A (C, H, W) [0, 1] tensor (C = 1 or 3, plus optional alpha in ``info``) as a PIL image."""
    img = img.detach().float().clamp(0, 1).cpu()
    bits = info.bits if info is not None else 8
    alpha = info.alpha if info is not None else None
    if bits == 16 and img.shape[0] == 1 and alpha is None:
        arr = np.floor(img[0].numpy().astype(np.float64) * 65535 + 0.5).astype(np.uint16)
        return Image.fromarray(arr)  # mode I;16
    arr = np.floor(img.numpy() * 255 + 0.5).astype(np.uint8)
    if alpha is not None:
        a = np.floor(alpha.detach().float().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        arr = np.concatenate([arr, a], axis=0)
    arr = arr.transpose(1, 2, 0)
    if arr.shape[2] == 1:
        return Image.fromarray(arr[:, :, 0], "L")
    if arr.shape[2] == 2:
        return Image.fromarray(arr, "LA")
    return Image.fromarray(arr, "RGBA" if arr.shape[2] == 4 else "RGB")


def save_image(path: str | os.PathLike, img: torch.Tensor, info: ImageInfo | None = None) -> None:
    """Write a (C, H, W) [0, 1] tensor as PNG atomically."""
    pil = to_pil(img, info)
    atomic_write(path, lambda f: pil.save(f, format="PNG"))


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Expand folders into their image files; keep files as given (checked when read)."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.is_file() and is_image_file(q)))
        else:
            files.append(p)
    return files


def prepare_out_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".densekit_write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ImageError(f"{out}: output folder is not writable ({e.strerror or e})") from None
    return out


def process_images(inputs: list[str], out_dir: str | os.PathLike, handle, *, verb: str,
                   progress: bool = True, report=print) -> dict:
    """Run ``handle(src_path, out_folder) -> written path`` on every image of ``inputs``
    (files and folders). A bad file is reported in one line (``report``, above the progress
    bar) and skipped; the rest go on. Returns ``{"written", "failed", "seconds"}``."""
    out = prepare_out_dir(out_dir)
    files = collect_inputs(inputs)
    if not files:
        raise DensekitError(f"{', '.join(inputs)}: no images to {verb}")
    done, failed = [], []
    t0 = time.perf_counter()
    for src in tqdm(files, disable=not progress or len(files) < 2, unit="img"):
        try:
            done.append(str(handle(src, out)))
        except DensekitError as e:
            failed.append(str(e))
            write_above_bars(f"densekit: error: {e}", report)
    return {"written": done, "failed": failed, "seconds": time.perf_counter() - t0}
