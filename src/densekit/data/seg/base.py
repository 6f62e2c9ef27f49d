"""The contract every segmentation data set follows (:class:`SegDataset`), label files and the
pairing of image and label files that the file-backed sets share."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from densekit.data.image_io import is_image_file, open_image, read_image
from densekit.data.seg.labels import IGNORE_INDEX, identity_lut
from densekit.errors import DensekitError, ImageError

Transform = Callable[[Any, Any], tuple[Any, Any]]


def read_label_raw(path: str | os.PathLike) -> np.ndarray:
    """Raw label values (H, W) int64 of a label file.

    PNG/TIFF etc.: single-channel ('L', 'I;16', '1') or palette ('P', the palette index is the
    value) images. ``.mat``: SBD's ``GTcls.Segmentation`` class map.
    """
    path = Path(path)
    if path.suffix.lower() == ".mat":
        return _read_sbd_mat(path)
    im = open_image(path)
    if im.mode in ("P", "L", "1"):
        return np.asarray(im).astype(np.int64)
    if im.mode in ("I", "I;16", "I;16B", "I;16L"):
        return np.asarray(im).astype(np.int64)
    raise ImageError(f"{path}: label image has mode {im.mode}; expected single-channel class "
                     f"indices or a palette PNG")


def _read_sbd_mat(path: Path) -> np.ndarray:
    try:
        import scipy.io
    except ImportError:  # pragma: no cover - scipy is a dependency
        raise DensekitError(f"{path}: reading SBD .mat labels needs scipy (pip install scipy)") from None
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    try:
        seg = scipy.io.loadmat(str(path))["GTcls"][0]["Segmentation"][0]
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise ImageError(f"{path}: not an SBD class label file (GTcls.Segmentation: {e})") from None
    except Exception as e:  # noqa: BLE001 - scipy raises assorted errors on corrupt files
        raise ImageError(f"{path}: cannot read .mat file ({type(e).__name__}: {e})") from None
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise ImageError(f"{path}: GTcls.Segmentation has shape {seg.shape}, expected (H, W)")
    return seg.astype(np.int64)


def read_rgb_uint8(path: str | os.PathLike) -> torch.Tensor:
    """An image file as uint8 (3, H, W); grayscale is repeated, alpha dropped."""
    img, _ = read_image(path)
    img = torch.round(img * 255).to(torch.uint8)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1).contiguous()
    return img


def _format_values(values: np.ndarray) -> str:
    vals = [int(v) for v in values[:8]]
    more = "" if len(values) <= 8 else f" and {len(values) - 8} more"
    return ", ".join(map(str, vals)) + more


def _ranges(values: np.ndarray) -> str:
    """Sorted integers as compact ranges: [0, 1, 2, 5, 255] -> '0..2, 5, 255'."""
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(start) if v == start else f"{start}..{v}")
            start = None
    return ", ".join(parts) or "none"


class SegDataset(Dataset):
    """Base class: (image, mask) samples with ``classes``, ``palette``, ``ignore_index``, ``files``.

    Subclasses backed by files set ``files`` and ``lut`` (raw label value -> label, -1 invalid);
    generated sets override :meth:`load_image` and :meth:`load_mask`.
    """

    classes: list[str]
    palette: list[tuple[int, int, int]]
    ignore_index: int = IGNORE_INDEX

    def __init__(self, transform: Transform | None = None):
        self.transform = transform
        self.files: list[tuple[Path, Path]] = []
        self.orphan_labels: list[Path] = []
        self.lut: np.ndarray = identity_lut(0)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.files)

    def load_image(self, index: int) -> torch.Tensor:
        """The image of sample ``index``: uint8 (3, H, W), no transform."""
        return read_rgb_uint8(self.files[index][0])

    def map_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Raw label values -> labels via ``lut``; undefined values raise ImageError."""
        if raw.size and (raw.min() < 0 or raw.max() > 255):
            bad = np.unique(raw[(raw < 0) | (raw > 255)])
        else:
            mapped = self.lut[raw]
            if not (mapped < 0).any():
                return mapped
            bad = np.unique(raw[mapped < 0])
        raise ImageError(f"{path}: label values {_format_values(bad)} are not allowed in "
                         f"{type(self).__name__} (allowed: {_ranges(np.nonzero(self.lut >= 0)[0])})")

    def load_mask(self, index: int) -> torch.Tensor:
        """The mask of sample ``index``: int64 (H, W), labels or ``ignore_index``, no transform."""
        path = self.files[index][1]
        return torch.from_numpy(self.map_label(read_label_raw(path), path))

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        image = self.load_image(index)
        mask = self.load_mask(index)
        if image.shape[-2:] != mask.shape[-2:]:
            img_path, lbl_path = self.files[index] if self.files else ("<generated>",) * 2
            raise ImageError(f"{lbl_path}: label is {mask.shape[-1]}x{mask.shape[-2]} but image "
                             f"{img_path} is {image.shape[-1]}x{image.shape[-2]}")
        image, mask = tv_tensors.Image(image), tv_tensors.Mask(mask)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, mask

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, {self.num_classes} classes)"


class InMemory(Dataset):
    """A data set whose decoded samples stay in memory after their first read: the image as
    uint8, the mask as uint8 (labels and ``ignore_index`` fit), so an epoch after the first
    decodes no file. Items are ``(tv_tensors.Image, tv_tensors.Mask int64)`` as the wrapped set
    gives them (it must have no transform). Each DataLoader worker fills its own copy; CamVid's
    367 training images take about 250 MB."""

    def __init__(self, dataset):
        if getattr(dataset, "transform", None) is not None:
            raise ValueError("InMemory: wrap the data set without its transform")
        self.dataset = dataset
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        hit = self._cache.get(index)
        if hit is None:
            image, mask = self.dataset[index]
            hit = (image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).to(torch.uint8))
            self._cache[index] = hit
        image, mask = hit
        return tv_tensors.Image(image), tv_tensors.Mask(mask.long())


def sample_mask(dataset, index: int) -> torch.Tensor:
    """The mask of sample ``index`` without decoding its image or applying a transform (when the
    set has ``load_mask``)."""
    if hasattr(dataset, "load_mask"):
        return dataset.load_mask(index)  # no image decoding, no transform
    return torch.as_tensor(dataset[index][1])


def require_dir(path: Path, what: str) -> Path:
    """``path``, or a DensekitError naming it as the ``what`` folder."""
    if not path.is_dir():
        raise DensekitError(f"{path}: {what} folder not found")
    return path


def images_by_stem(folder: Path, suffix: str = "") -> dict[str, Path]:
    """Image files in ``folder`` keyed by stem (minus ``suffix``); duplicate stems are an error."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not (p.is_file() and is_image_file(p)):
            continue
        stem = p.stem
        if suffix:
            if not stem.endswith(suffix):
                continue
            stem = stem[: -len(suffix)]
        if stem in out:
            raise DensekitError(f"{p}: same name as {out[stem]} (ambiguous pairing)")
        out[stem] = p
    return out


def paired_folders(ds: SegDataset, img_dir: Path, lbl_dir: Path, what: str) -> None:
    """Fill ``ds.files`` with the images of ``img_dir`` and their labels in ``lbl_dir`` (same
    stem; a missing label keeps its expected path) and ``ds.orphan_labels`` with the rest."""
    images = images_by_stem(img_dir)
    if not images:
        raise DensekitError(f"{img_dir}: no images ({what} is empty)")
    labels = images_by_stem(lbl_dir)
    for stem in sorted(images):
        ds.files.append((images[stem], labels.get(stem, lbl_dir / f"{stem}.png")))
    ds.orphan_labels = [labels[s] for s in sorted(set(labels) - set(images))]
