"""Reading and writing images with clear errors.

Everything in densekit reads images through :func:`read_image`, which returns a float32 tensor
(C, H, W) in [0, 1] and the facts needed to write the result back in the same kind
(grayscale/RGB, alpha, 8/16 bit). Unreadable, truncated, absurdly large or multi-frame
(animated, multi-page) files raise :class:`~densekit.errors.ImageError` naming the file. Writes
are atomic (:func:`densekit.io.atomic_write`), so no partial output file is ever left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import time
import unicodedata
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
# Formats whose further frames belong to the first (MPO: a camera JPEG's previews or depth map):
# the first frame is the image. Any other file of several frames is refused, not cut to one.
SINGLE_PICTURE_FORMATS = ("MPO",)


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
            try:
                frames = getattr(im, "n_frames", 1)  # reads the headers of every frame
            except Exception as e:  # a corrupt later frame: any error of the format's plugin
                raise ImageError(f"{path}: cannot decode image ({e})") from None
            if frames > 1 and im.format not in SINGLE_PICTURE_FORMATS:
                raise ImageError(f"{path}: {frames} frames (an animation or a multi-page file); "
                                 "save the frame to use as an image of its own")
            if load:
                im.load()
                ImageOps.exif_transpose(im, in_place=True)  # no copy of an upright image
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
    rows = ImageRows(im, name)
    return rows.rows(0, rows.height), rows.info()


class ImageRows:
    """An opened image as densekit reads it, made into float rows on demand.

    ``rows(a, b)`` equals ``read_image(path)[0][:, a:b]`` bit for bit (:func:`read_image` is
    built on it), and ``alpha_rows(a, b)`` the rows of ``ImageInfo.alpha``; only the decoded
    image is held (1-4 bytes a pixel), never the whole float image. Palette and CMYK images
    become RGB, LA/RGBA lose their alpha into ``alpha_rows``, 16-bit grayscale/RGB PNGs keep
    their full precision (``bits == 16``).
    """

    def __init__(self, im: Image.Image, name: str | os.PathLike = "image"):
        self.name = str(name)
        self._alpha = None  # the alpha channel as a PIL "L" image
        self.bits = 8
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            self._kind, self.bits = "int", 16
        elif mode == "F":  # NaN/Inf pixels (float TIFFs) would poison the output
            self._kind = "float"
        else:
            if mode == "P":
                im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
                mode = im.mode
            if mode in ("RGBA", "LA", "PA"):
                self._alpha = im.getchannel("A")
                im = im.convert("L" if mode == "LA" else "RGB")
                mode = im.mode
            if mode == "1":
                im = im.convert("L")
                mode = "L"
            if mode not in ("L", "RGB"):
                try:
                    im = im.convert("RGB")
                except (OSError, ValueError) as e:
                    raise ImageError(f"{name}: unsupported image mode {mode} ({e})") from None
                mode = "RGB"
            self._kind = "u8"
        self._im = im
        self.width, self.height = im.size
        self.gray = im.mode != "RGB"
        self.channels = 1 if self.gray else 3
        self.has_alpha = self._alpha is not None

    def _part(self, im: Image.Image, a: int, b: int) -> Image.Image:
        return im if (a, b) == (0, self.height) else im.crop((0, a, self.width, b))

    def rows(self, a: int, b: int) -> torch.Tensor:
        """Rows a..b-1 as float32 (C, b - a, W) in [0, 1]."""
        part = self._part(self._im, a, b)
        if self._kind == "int":
            arr = np.asarray(part, dtype=np.float64)
            arr = (np.clip(arr, 0, 65535) / 65535.0)[None].astype(np.float32)
        elif self._kind == "float":
            arr = np.clip(np.nan_to_num(np.asarray(part, dtype=np.float32), nan=0.0, posinf=1.0,
                                        neginf=0.0), 0, 1)[None]
        elif self.gray:
            arr = np.asarray(part, dtype=np.float32)[None] / 255.0
        else:
            arr = np.asarray(part, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return torch.from_numpy(np.ascontiguousarray(arr))

    def alpha_rows(self, a: int, b: int) -> torch.Tensor | None:
        """Rows a..b-1 of the alpha channel as float32 (1, b - a, W), or None without alpha."""
        if self._alpha is None:
            return None
        arr = np.asarray(self._part(self._alpha, a, b), dtype=np.float32) / 255.0
        return torch.from_numpy(np.ascontiguousarray(arr[None]))

    def info(self) -> ImageInfo:
        """The :class:`ImageInfo` of :func:`read_image` (the whole alpha channel in float)."""
        return ImageInfo(self.gray, self.alpha_rows(0, self.height), self.bits)


class TensorRows:
    """A (C, H, W) [0, 1] image and its :class:`ImageInfo` with the row interface of
    :class:`ImageRows`."""

    def __init__(self, img: torch.Tensor, info: ImageInfo | None = None):
        self._img = img.detach().to(torch.float32).cpu()
        self._alpha = info.alpha.detach().cpu() if info is not None and info.alpha is not None \
            else None
        self.channels, self.height, self.width = self._img.shape
        self.gray = self.channels == 1
        self.bits = info.bits if info is not None else 8
        self.has_alpha = self._alpha is not None

    def rows(self, a: int, b: int) -> torch.Tensor:
        return self._img[:, a:b]

    def alpha_rows(self, a: int, b: int) -> torch.Tensor | None:
        return None if self._alpha is None else self._alpha[:, a:b].float()


def read_uint8_rgb_or_gray(path: str | os.PathLike) -> np.ndarray:
    """Read an image as a uint8 array (H, W, C), C = 1 or 3, for datasets and evaluation."""
    img, _ = read_image(path)
    return np.round(img.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)


def to_pil(img: torch.Tensor, info: ImageInfo | None = None) -> Image.Image:
    """A (C, H, W) [0, 1] tensor (C = 1 or 3, plus optional alpha in ``info``) as a PIL image."""
    return array_to_pil(*quantize(img, info.alpha if info is not None else None,
                                  info.bits if info is not None else 8))


def array_to_pil(arr: np.ndarray, mode: str) -> Image.Image:
    """The PIL image of an array and mode from :func:`quantize`."""
    return Image.fromarray(arr) if mode == "I;16" else Image.fromarray(arr, mode)


def quantize(img: torch.Tensor, alpha: torch.Tensor | None = None, bits: int = 8
             ) -> tuple[np.ndarray, str]:
    """A (C, H, W) [0, 1] image (C = 1 or 3) and its (1, H, W) alpha as the (H, W[, C]) array
    of a PIL image and its mode: uint16 "I;16" for a 16-bit image of one channel without alpha,
    else uint8 "L", "LA", "RGB" or "RGBA". Element by element: any band of rows gives the rows
    of the whole image's array."""
    img = np.clip(img.detach().float().cpu().numpy(), 0, 1)  # NumPy: one thread (bands)
    if bits == 16 and img.shape[0] == 1 and alpha is None:
        arr = np.floor(img[0].astype(np.float64) * 65535 + 0.5).astype(np.uint16)
        return arr, "I;16"
    arr = np.floor(img * 255 + 0.5).astype(np.uint8)
    if alpha is not None:
        a = np.clip(alpha.detach().float().cpu().numpy(), 0, 1)
        arr = np.concatenate([arr, np.floor(a * 255 + 0.5).astype(np.uint8)], axis=0)
    arr = arr.transpose(1, 2, 0)
    if arr.shape[2] == 1:
        return np.ascontiguousarray(arr[:, :, 0]), "L"
    return np.ascontiguousarray(arr), {2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]


def save_image(path: str | os.PathLike, img: torch.Tensor, info: ImageInfo | None = None) -> None:
    """Write a (C, H, W) [0, 1] tensor as PNG atomically."""
    pil = to_pil(img, info)
    atomic_write(path, lambda f: pil.save(f, format="PNG"))


@dataclass(frozen=True)
class InputFile:
    """An image of a batch run: ``path`` as found, and ``rel``, its path relative to the INPUT
    folder it was found in (a file INPUT: its file name), which names its outputs."""

    path: Path
    rel: Path


def _folder_images(folder: Path, skip: str | None) -> list[Path]:
    """Image files of ``folder`` and its subfolders as paths relative to it, sorted; symbolic
    links to folders are not followed, the folder whose real path is ``skip`` is left out."""
    def fail(e: OSError):
        raise ImageError(f"{e.filename}: cannot list folder ({e.strerror or e})")

    found = []
    for top, dirs, names in os.walk(folder, onerror=fail):
        dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(top, d)) != skip)
        rel = Path(top).relative_to(folder)
        found += [rel / n for n in names if is_image_file(n)
                  and os.path.isfile(os.path.join(top, n))]
    return sorted(found, key=lambda r: r.parts)


def find_inputs(inputs: list[str], *, skip: str | os.PathLike | None = None) -> list[InputFile]:
    """The images of ``inputs`` in their order: a folder INPUT gives the image files (by name)
    in it and in its subfolders, sorted by path; any other INPUT is kept as given (checked when
    read). A folder inside an INPUT whose real path is ``skip`` (the output folder) is not
    searched. A file reached twice (same real path) is kept once, the first time."""
    skip = os.path.realpath(skip) if skip is not None else None
    files, seen = [], set()
    for item in inputs:
        p = Path(item)
        found = [InputFile(p / r, r) for r in _folder_images(p, skip)] if p.is_dir() else \
            [InputFile(p, Path(p.name))]
        for f in found:
            real = os.path.realpath(f.path)
            if real not in seen:
                seen.add(real)
                files.append(f)
    return files


def collect_inputs(inputs: list[str]) -> list[Path]:
    """The paths of :func:`find_inputs`."""
    return [f.path for f in find_inputs(inputs)]


def name_key(path: str | os.PathLike) -> str:
    """``path`` as compared for clashes: ignoring case and Unicode normalisation (NFC / NFD),
    as case-insensitive file systems (macOS, Windows) do."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", str(path)).casefold())


def _entry_key(path: Path) -> str:
    """The clash key of the directory entry ``path`` (its folder's real path + its name)."""
    return name_key(os.path.join(os.path.realpath(path.parent), path.name))


def plan_outputs(files: list[InputFile], out_dir: str | os.PathLike, outputs,
                 report_file: str | os.PathLike | None = None) -> list[tuple[InputFile, list[Path]]]:
    """Each input with its output files, ``out_dir / outputs(input.rel)``. Raises
    :class:`DensekitError` (one line naming both files) when two inputs would get the same
    output, an output would replace one of the inputs or stand where another output needs a
    folder, or ``report_file`` is one of them; names are compared with :func:`name_key`."""
    out = Path(out_dir)
    plan = [(f, [out / r for r in outputs(f.rel)]) for f in files]
    owner: dict[str, tuple[InputFile, Path]] = {}
    problems = []
    for f, dsts in plan:
        for d in dsts:
            k = name_key(d.relative_to(out))
            if k in owner:
                problems.append(f"{owner[k][0].path} and {f.path} would both be written to {d} "
                                "(an output keeps the input's path under its INPUT folder "
                                "without the extension, compared ignoring case: rename one, "
                                "or run it with another -o)")
            else:
                owner[k] = (f, d)
    for f, dsts in plan:
        for d in dsts:
            for parent in d.relative_to(out).parents[:-1]:
                k = name_key(parent)
                if k in owner and owner[k][0] != f:
                    problems.append(f"{owner[k][1]}: the output of {owner[k][0].path} would "
                                    f"stand where {f.path} needs the folder of {d}")
    targets = {_entry_key(d): (f, d) for f, dsts in plan for d in dsts}
    for f in files:
        if _entry_key(f.path) in targets:
            g, d = targets[_entry_key(f.path)]
            problems.append(f"{d}: the output of {g.path} would replace the input {f.path}; "
                            "choose another -o")
    if report_file is not None:
        k = _entry_key(Path(report_file))
        if k in targets or k in {_entry_key(f.path) for f in files}:
            problems.append(f"{report_file}: the --report file is one of the run's inputs or "
                            "outputs")
    if problems:
        more = f" (and {len(problems) - 1} more clash(es))" if len(problems) > 1 else ""
        raise DensekitError(problems[0] + more)
    return plan


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


def _write_report(path, entries: list[dict], out_dir, seconds: float, state: str) -> None:
    counts = {k: sum(e["status"] == k for e in entries)
              for k in ("written", "skipped", "failed", "pending")}
    report = {"output_folder": str(out_dir), "state": state, "inputs": len(entries),
              **counts, "seconds": round(seconds, 3), "images": entries}
    atomic_write(path, lambda f: f.write((json.dumps(report, indent=1, ensure_ascii=False)
                                          + "\n").encode("utf-8")), what="--report")


def process_images(inputs: list[str], out_dir: str | os.PathLike, handle, *, outputs,
                   verb: str, progress: bool = True, report=print, skip_existing: bool = False,
                   report_file: str | os.PathLike | None = None) -> dict:
    """Run ``handle(src_path, output_paths)`` on every image of ``inputs`` (files, and folders
    with their subfolders: :func:`find_inputs`, the output folder left out), writing the files
    ``out_dir / outputs(rel)`` (:func:`plan_outputs`, which refuses clashes before anything is
    written). A bad file is reported in one line (``report``, above the progress bar) and
    skipped; the rest go on. ``skip_existing``: an input whose outputs all exist is not
    processed (outputs are written atomically, so an existing one is complete); otherwise they
    are replaced. ``report_file``: a JSON file with every input and its outcome (written
    atomically, at the start with every input "pending" and again at the end).

    A dict that ``handle`` returns is added to the input's report record.

    Returns ``{"written", "skipped"}`` (input paths), ``"failed"`` (the error lines),
    ``"entries"`` (the report's per-input records) and ``"seconds"``."""
    files = find_inputs(inputs, skip=out_dir)
    if not files:
        raise DensekitError(f"{', '.join(map(str, inputs))}: no images to {verb}")
    plan = plan_outputs(files, out_dir, outputs, report_file)
    out = prepare_out_dir(out_dir)
    entries = [{"input": str(f.path), "status": "pending", "outputs": [str(d) for d in dsts]}
               for f, dsts in plan]
    t0 = time.perf_counter()
    if report_file is not None:
        _write_report(report_file, entries, out, 0.0, "running")
    state = "interrupted"
    try:
        for (src, dsts), entry in zip(tqdm(plan, disable=not progress or len(plan) < 2,
                                           unit="img"), entries):
            if skip_existing and all(d.is_file() for d in dsts):
                entry["status"] = "skipped"
                continue
            try:
                entry.update(handle(src.path, dsts) or {})
                entry["status"] = "written"
            except DensekitError as e:
                entry.update(status="failed", error=str(e))
                del entry["outputs"]
                write_above_bars(f"densekit: error: {e}", report)
        state = "done"
    finally:
        if report_file is not None:
            if state == "done":
                _write_report(report_file, entries, out, time.perf_counter() - t0, state)
            else:  # keep the first exception; the report is a best effort here
                with contextlib.suppress(DensekitError):
                    _write_report(report_file, entries, out, time.perf_counter() - t0, state)
    return {k: [e["error"] if k == "failed" else e["input"] for e in entries
                if e["status"] == k] for k in ("written", "skipped", "failed")} | {
        "entries": entries, "seconds": time.perf_counter() - t0}
