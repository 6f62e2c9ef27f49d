"""Semantic segmentation data sets, joint image/mask transforms, class weights and checks.

Every data set here follows one contract (:class:`SegDataset`): item ``i`` is
``(image, mask)``, the image a ``tv_tensors.Image`` uint8 (3, H, W) and the mask a
``tv_tensors.Mask`` int64 (H, W) holding class indices ``0..num_classes-1`` or
``ignore_index`` (255), passed through the optional joint ``transform(image, mask)``. Each
set has ``classes`` (names), ``palette`` (one RGB tuple per class, for writing label PNGs),
``ignore_index`` and ``files`` (``(image_path, label_path)`` pairs; empty for generated data).

Raw label values are mapped to training labels with a 256-entry lookup table per set; raw
values that the set does not define (e.g. 12 in CamVid, 21..254 in VOC) are a data error:
reading such a mask raises :class:`~densekit.errors.ImageError` naming the file, and
:func:`check_dataset` lists every problem of a set without stopping at the first one.

Loaders are lenient about pairing: an image whose label file is missing stays in ``files``
(reading it raises an error naming the missing file) and label files without an image are kept
in ``orphan_labels``, so that :func:`check_dataset` can report both. Run it on new data before
training. A missing root or split folder, or an empty split, raises
:class:`~densekit.errors.DensekitError` at construction.

The PASCAL VOC, SBD and Cityscapes loaders are written here rather than taken from
``torchvision.datasets``: those need the train_aug merge (VOC + SBD), sorted file order,
``DensekitError`` messages and no download/extract side effects.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from densekit.data.image_io import _open, image_size, is_image_file, read_image
from densekit.errors import ConfigError, DensekitError, ImageError

IGNORE_INDEX = 255
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Transform = Callable[[Any, Any], tuple[Any, Any]]


def voc_colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """The PASCAL VOC colour map (bit-interleaved); entry 255 is the void colour (224, 224, 192)."""
    cmap = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap.append((r, g, b))
    return cmap


VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]

# cityscapesScripts labels.py: (name, labelId, trainId, colour) for the 19 evaluated classes.
CITYSCAPES_LABELS = [
    ("road", 7, 0, (128, 64, 128)), ("sidewalk", 8, 1, (244, 35, 232)),
    ("building", 11, 2, (70, 70, 70)), ("wall", 12, 3, (102, 102, 156)),
    ("fence", 13, 4, (190, 153, 153)), ("pole", 17, 5, (153, 153, 153)),
    ("traffic light", 19, 6, (250, 170, 30)), ("traffic sign", 20, 7, (220, 220, 0)),
    ("vegetation", 21, 8, (107, 142, 35)), ("terrain", 22, 9, (152, 251, 152)),
    ("sky", 23, 10, (70, 130, 180)), ("person", 24, 11, (220, 20, 60)),
    ("rider", 25, 12, (255, 0, 0)), ("car", 26, 13, (0, 0, 142)), ("truck", 27, 14, (0, 0, 70)),
    ("bus", 28, 15, (0, 60, 100)), ("train", 31, 16, (0, 80, 100)),
    ("motorcycle", 32, 17, (0, 0, 230)), ("bicycle", 33, 18, (119, 11, 32)),
]

CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                  "Car", "Pedestrian", "Bicyclist"]
# SegNet tutorial colours (Scripts/camvid colour table); Unlabelled (11) is (0, 0, 0).
CAMVID_PALETTE = [(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
                  (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                  (0, 128, 192)]


def identity_lut(num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Raw value v -> v for v < num_classes, ignore -> ignore, everything else -1 (invalid)."""
    lut = np.full(256, -1, dtype=np.int64)
    lut[:num_classes] = np.arange(num_classes)
    lut[ignore_index] = ignore_index
    return lut


def cityscapes_lut() -> np.ndarray:
    """labelId -> trainId (the official 19 classes), every other id -> 255."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.int64)
    for _, label_id, train_id, _ in CITYSCAPES_LABELS:
        lut[label_id] = train_id
    return lut


def camvid_lut() -> np.ndarray:
    """0..10 -> themselves, 11 (Unlabelled) -> 255, anything above 11 is invalid (-1)."""
    lut = identity_lut(11)
    lut[255] = -1
    lut[11] = IGNORE_INDEX
    return lut


# --------------------------------------------------------------------------------------------
# Reading


def read_label_raw(path: str | os.PathLike) -> np.ndarray:
    """Raw label values (H, W) int64 of a label file.

    PNG/TIFF etc.: single-channel ('L', 'I;16', '1') or palette ('P', the palette index is the
    value) images. ``.mat``: SBD's ``GTcls.Segmentation`` class map.
    """
    path = Path(path)
    if path.suffix.lower() == ".mat":
        return _read_sbd_mat(path)
    im = _open(path)
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


# --------------------------------------------------------------------------------------------
# The common contract


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


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DensekitError(f"{path}: {what} folder not found")
    return path


def _images_by_stem(folder: Path, suffix: str = "") -> dict[str, Path]:
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


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DensekitError(f"{path}: split list not found")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DensekitError(f"{path}: cannot read split list ({e})") from None
    return [ln.split()[0] for ln in lines if ln.strip()]  # first column: the image id


# --------------------------------------------------------------------------------------------
# PASCAL VOC 2012 (+ SBD)


def _find_voc(root: Path) -> Path:
    for cand in (root / "VOCdevkit" / "VOC2012", root / "VOC2012", root):
        if (cand / "JPEGImages").is_dir() and (cand / "ImageSets").is_dir():
            return cand
    if not root.is_dir():
        raise DensekitError(f"{root}: VOC root folder not found")
    raise DensekitError(f"{root}: no VOCdevkit/VOC2012 (with JPEGImages/ and ImageSets/) inside")


def _find_sbd(sbd_root: Path) -> Path:
    for cand in (sbd_root / "dataset", sbd_root / "benchmark_RELEASE" / "dataset", sbd_root):
        if (cand / "cls").is_dir():
            return cand
    if not sbd_root.is_dir():
        raise DensekitError(f"{sbd_root}: SBD root folder not found")
    raise DensekitError(f"{sbd_root}: no SBD dataset/cls folder inside")


class VOCSegmentation(SegDataset):
    """PASCAL VOC 2012 segmentation: 21 classes (background + 20), void 255.

    ``root`` holds ``VOCdevkit/VOC2012`` (``root`` may also be VOCdevkit or VOC2012 itself);
    labels are the palette PNGs of ``SegmentationClass`` (the palette index is the class).
    Splits: ``train``, ``val``, ``trainval`` (``ImageSets/Segmentation/{split}.txt``) and
    ``train_aug``: (SBD train + SBD val + VOC train) minus VOC val, deduplicated and sorted
    (10,582 images on the real sets), which needs ``sbd_root`` (the folder holding SBD's
    ``dataset/{cls,img,train.txt,val.txt}``). A train_aug label comes from
    ``SegmentationClass`` when present, else from the SBD ``cls/*.mat``; its image from
    ``JPEGImages`` when present, else from SBD ``img/``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 sbd_root: str | os.PathLike | None = None, transform: Transform | None = None):
        super().__init__(transform)
        self.classes = list(VOC_CLASSES)
        self.palette = voc_colormap(21)
        self.lut = identity_lut(21)
        self.root = _find_voc(Path(root))
        self.split = split
        jpeg, seg = self.root / "JPEGImages", self.root / "SegmentationClass"
        lists = self.root / "ImageSets" / "Segmentation"
        if split == "train_aug":
            if sbd_root is None:
                raise DensekitError("VOC split train_aug needs sbd_root (the SBD benchmark "
                                    "folder holding dataset/cls/*.mat)")
            sbd = _find_sbd(Path(sbd_root))
            voc_val = set(_read_list(lists / "val.txt"))
            names = set(_read_list(sbd / "train.txt")) | set(_read_list(sbd / "val.txt"))
            names |= set(_read_list(lists / "train.txt"))
            names = sorted(names - voc_val)
            for n in names:
                img = jpeg / f"{n}.jpg"
                if not img.exists() and (sbd / "img" / f"{n}.jpg").exists():
                    img = sbd / "img" / f"{n}.jpg"
                lbl = seg / f"{n}.png"
                if not lbl.exists():
                    lbl = sbd / "cls" / f"{n}.mat"
                self.files.append((img, lbl))
        else:
            list_file = lists / f"{split}.txt"
            if not list_file.is_file():
                have = sorted(p.stem for p in lists.glob("*.txt")) if lists.is_dir() else []
                raise DensekitError(f"{list_file}: split list not found (VOC splits here: "
                                    f"{', '.join(have) or 'none'}; or train_aug with sbd_root)")
            names = _read_list(list_file)
            self.files = [(jpeg / f"{n}.jpg", seg / f"{n}.png") for n in names]
        if not self.files:
            raise DensekitError(f"{self.root}: VOC split {split} is empty")


# --------------------------------------------------------------------------------------------
# Cityscapes


class Cityscapes(SegDataset):
    """Cityscapes fine annotations: labelIds mapped to the 19 trainIds, everything else 255.

    Layout: ``root/leftImg8bit/{split}/{city}/*_leftImg8bit.png`` and
    ``root/gtFine/{split}/{city}/*_gtFine_labelIds.png``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 transform: Transform | None = None):
        super().__init__(transform)
        self.classes = [name for name, *_ in CITYSCAPES_LABELS]
        self.palette = [colour for *_, colour in CITYSCAPES_LABELS]
        self.lut = cityscapes_lut()
        self.root = _require_dir(Path(root), "Cityscapes root")
        self.split = split
        img_dir = _require_dir(self.root / "leftImg8bit" / split, f"Cityscapes {split} image")
        lbl_dir = _require_dir(self.root / "gtFine" / split, f"Cityscapes {split} label")
        images: dict[str, Path] = {}
        for city in sorted(p for p in img_dir.iterdir() if p.is_dir()):
            for stem, p in _images_by_stem(city, "_leftImg8bit").items():
                images[f"{city.name}/{stem}"] = p
        labels: dict[str, Path] = {}
        for city in sorted(p for p in lbl_dir.iterdir() if p.is_dir()):
            for stem, p in _images_by_stem(city, "_gtFine_labelIds").items():
                labels[f"{city.name}/{stem}"] = p
        if not images:
            raise DensekitError(f"{img_dir}: no *_leftImg8bit images (Cityscapes split {split} "
                                f"is empty)")
        for key in sorted(images):
            city, stem = key.split("/")
            self.files.append((images[key], labels.get(
                key, lbl_dir / city / f"{stem}_gtFine_labelIds.png")))
        self.orphan_labels = [labels[k] for k in sorted(set(labels) - set(images))]


# --------------------------------------------------------------------------------------------
# CamVid (SegNet version) and users' own folders


def _paired_folders(ds: SegDataset, img_dir: Path, lbl_dir: Path, what: str) -> None:
    images = _images_by_stem(img_dir)
    if not images:
        raise DensekitError(f"{img_dir}: no images ({what} is empty)")
    labels = _images_by_stem(lbl_dir)
    for stem in sorted(images):
        ds.files.append((images[stem], labels.get(stem, lbl_dir / f"{stem}.png")))
    ds.orphan_labels = [labels[s] for s in sorted(set(labels) - set(images))]


class CamVid(SegDataset):
    """CamVid, SegNet layout: ``root/{split}/*.png`` and ``root/{split}annot/*.png``.

    11 classes (Sky, Building, Pole, Road, Pavement, Tree, SignSymbol, Fence, Car, Pedestrian,
    Bicyclist); label 11 (Unlabelled) becomes 255; values above 11 are a data error.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 transform: Transform | None = None):
        super().__init__(transform)
        self.classes = list(CAMVID_CLASSES)
        self.palette = list(CAMVID_PALETTE)
        self.lut = camvid_lut()
        self.root = _require_dir(Path(root), "CamVid root")
        self.split = split
        img_dir = _require_dir(self.root / split, f"CamVid {split} image")
        lbl_dir = _require_dir(self.root / f"{split}annot", f"CamVid {split} label")
        _paired_folders(self, img_dir, lbl_dir, f"CamVid split {split}")


def read_classes(classes: str | os.PathLike | Sequence[str]) -> list[str]:
    """Class names from a list or a text file with one name per line."""
    if isinstance(classes, (str, os.PathLike)):
        path = Path(classes)
        if not path.is_file():
            raise DensekitError(f"{path}: classes file not found")
        try:
            names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise DensekitError(f"{path}: cannot read classes file ({e})") from None
        where = str(path)
    else:
        names = [str(c) for c in classes]
        where = "classes"
    if not names:
        raise DensekitError(f"{where}: no class names")
    if len(names) > IGNORE_INDEX:
        raise DensekitError(f"{where}: {len(names)} classes; at most {IGNORE_INDEX} are supported")
    if len(set(names)) != len(names):
        raise DensekitError(f"{where}: duplicate class names")
    return names


class FolderDataset(SegDataset):
    """Users' own data: ``root/images/*`` and ``root/masks/*`` matched by file stem.

    Masks are single-channel PNGs of class indices (255 = ignore) or palette PNGs (the palette
    index is the class). ``classes`` is a text file (one name per line) or a list of names.
    With ``split``, the folders are ``root/{split}/images`` and ``root/{split}/masks``.
    ``palette`` defaults to the VOC colour map.
    """

    def __init__(self, root: str | os.PathLike, classes: str | os.PathLike | Sequence[str],
                 split: str | None = None, palette: Sequence[Sequence[int]] | None = None,
                 transform: Transform | None = None):
        super().__init__(transform)
        self.classes = read_classes(classes)
        if palette is None:
            self.palette = voc_colormap(len(self.classes))
        else:
            if len(palette) < len(self.classes):
                raise DensekitError(f"palette has {len(palette)} colours for "
                                    f"{len(self.classes)} classes")
            self.palette = [tuple(int(v) for v in c) for c in palette[:len(self.classes)]]
        self.lut = identity_lut(len(self.classes))
        self.root = _require_dir(Path(root), "dataset root")
        base = _require_dir(self.root / split, f"split {split}") if split else self.root
        img_dir = _require_dir(base / "images", "images")
        lbl_dir = _require_dir(base / "masks", "masks")
        _paired_folders(self, img_dir, lbl_dir, "images folder")


# --------------------------------------------------------------------------------------------
# Synthetic scenes

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth random field in [-1, 1]: bilinear upsampling of a (cells+1)^2 random grid."""
    grid = rng.uniform(-1, 1, (cells + 1, cells + 1))
    y = np.linspace(0, cells, h)
    x = np.linspace(0, cells, w)
    y0 = np.minimum(y.astype(int), cells - 1)
    x0 = np.minimum(x.astype(int), cells - 1)
    fy = (y - y0)[:, None]
    fx = (x - x0)[None, :]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    return (g00 * (1 - fy) * (1 - fx) + g01 * (1 - fy) * fx + g10 * fy * (1 - fx)
            + g11 * fy * fx)


class SyntheticScenes(SegDataset):
    """Generated scenes of textured regions: a test bed, NOT a real benchmark.

    Results on these images say nothing about real data; they exist so that training,
    evaluation and adversarial losses can be exercised quickly and deterministically.

    Each label map is a warped Voronoi partition (a few random cells with wavy borders, every
    class present). Classes come in pairs that share a mean colour and differ only in the
    orientation and frequency of their stripe texture, and every pixel gets colour noise; in
    addition ``ambiguous`` (default 10%) of the pixels take the appearance of a random other
    class while keeping their label. So one pixel alone cannot be classified reliably: the
    texture and the spatial contiguity of regions must be used.

    The class appearance depends only on ``num_classes``; the scenes are a pure function of
    ``(seed, split, index)``, so train and val sets (different ``split`` or ``seed``) share
    classes but not images.
    """

    def __init__(self, num_images: int, size: tuple[int, int] = (128, 128), num_classes: int = 5,
                 seed: int = 0, split: str = "train", ambiguous: float = 0.1,
                 noise: float = 12.0, transform: Transform | None = None):
        super().__init__(transform)
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        if num_images < 1:
            raise DensekitError(f"synthetic scenes: num_images must be >= 1, got {num_images}")
        if not 2 <= num_classes <= IGNORE_INDEX:
            raise DensekitError(f"synthetic scenes: num_classes must be in 2..{IGNORE_INDEX}, "
                                f"got {num_classes}")
        if h * w < 16 * num_classes or min(h, w) < 8:
            raise DensekitError(f"synthetic scenes: {h}x{w} is too small for {num_classes} classes")
        if split not in SPLIT_IDS:
            raise DensekitError(f"synthetic scenes: split must be one of {', '.join(SPLIT_IDS)}")
        self.num_images = int(num_images)
        self.size = (int(h), int(w))
        self.seed = int(seed)
        self.split = split
        self.ambiguous = float(ambiguous)
        self.noise = float(noise)
        self.classes = [f"class{i}" for i in range(num_classes)]
        self.palette = voc_colormap(num_classes)
        # Class appearance: fixed per num_classes, shared by every seed and split.
        arng = np.random.default_rng([7919, num_classes])
        n_colours = (num_classes + 1) // 2
        colours = arng.uniform(60, 196, (n_colours, 3))
        self._base = np.stack([colours[c // 2] for c in range(num_classes)])
        self._angle = np.array([(c % 2) * np.pi / 2 + arng.uniform(-0.3, 0.3)
                                for c in range(num_classes)])
        self._period = arng.uniform(4.0, 9.0, num_classes)
        self._amp = arng.uniform(18, 30, num_classes)
        self._tint = arng.uniform(-1, 1, (num_classes, 3))
        self._tint /= np.linalg.norm(self._tint, axis=1, keepdims=True)

    def __len__(self) -> int:
        return self.num_images

    def scene(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image uint8 (H, W, 3), label int64 (H, W)) of scene ``index``."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} scenes")
        rng = np.random.default_rng([self.seed, SPLIT_IDS[self.split], index])
        h, w = self.size
        n = self.num_classes
        # Label field: Voronoi cells of warped coordinates.
        k = n + int(rng.integers(0, n + 1))
        centres = rng.uniform(0, 1, (k, 2)) * np.array([h, w])
        cell_class = np.concatenate([rng.permutation(n), rng.integers(0, n, k - n)])
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        amp = 0.12 * min(h, w)
        wy = yy + amp * _smooth_noise(rng, h, w, 3)
        wx = xx + amp * _smooth_noise(rng, h, w, 3)
        best = np.full((h, w), np.inf)
        label = np.zeros((h, w), dtype=np.int64)
        for (cy, cx), c in zip(centres, cell_class):
            d = (wy - cy) ** 2 + (wx - cx) ** 2
            closer = d < best
            best[closer] = d[closer]
            label[closer] = c
        # Every class present: carve a small disc for a missing class out of the largest one.
        radius = max(1.0, np.sqrt(h * w / (8.0 * n)))
        for c in range(n):
            counts = np.bincount(label.ravel(), minlength=n)
            if counts[c]:
                continue
            big = int(counts.argmax())
            ys, xs = np.nonzero(label == big)
            j = int(rng.integers(len(ys)))
            disc = ((yy - ys[j]) ** 2 + (xx - xs[j]) ** 2 <= radius ** 2) & (label == big)
            label[disc] = c
        # Appearance: per-class stripes around the class colour, per-image phase and lighting.
        phase = rng.uniform(0, 2 * np.pi, n)
        appearance = label.copy()
        flip = rng.random((h, w)) < self.ambiguous
        other = (label + rng.integers(1, n, (h, w))) % n
        appearance[flip] = other[flip]
        img = np.zeros((h, w, 3))
        for c in range(n):
            sel = appearance == c
            if not sel.any():
                continue
            proj = np.cos(self._angle[c]) * xx[sel] + np.sin(self._angle[c]) * yy[sel]
            wave = self._amp[c] * np.sin(2 * np.pi * proj / self._period[c] + phase[c])
            img[sel] = self._base[c] + wave[:, None] * self._tint[c]
        img = img + rng.uniform(-15, 15, 3) + rng.normal(0, self.noise, (h, w, 3))
        img = np.clip(np.round(img), 0, 255).astype(np.uint8)
        return img, label.astype(np.int64)

    def load_image(self, index: int) -> torch.Tensor:
        img, _ = self.scene(index)
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))

    def load_mask(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.scene(index)[1])

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        img, label = self.scene(index)
        image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
        mask = tv_tensors.Mask(torch.from_numpy(label))
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, mask


# --------------------------------------------------------------------------------------------
# Factory

SEG_DATASETS = ("voc", "cityscapes", "camvid", "folder", "synthetic")
_SYNTHETIC_DEFAULT_IMAGES = {"train": 256, "val": 64, "test": 64}


def build_seg_dataset(name: str, root: str | os.PathLike | None, split: str | None = "train",
                      **kwargs) -> SegDataset:
    """A segmentation data set by name: voc, cityscapes, camvid, folder or synthetic.

    ``kwargs`` go to the class: ``transform`` for all; ``sbd_root`` for voc; ``classes`` (and
    ``palette``) for folder; ``num_images``, ``size``, ``num_classes``, ``seed`` for synthetic
    (``root`` is ignored there; ``num_images`` defaults to 256 for train, 64 otherwise).
    """
    key = name.lower()
    cls = {"voc": VOCSegmentation, "cityscapes": Cityscapes, "camvid": CamVid,
           "folder": FolderDataset, "synthetic": SyntheticScenes}.get(key)
    if cls is not None:  # config options reach the class as keyword arguments
        known = [p for p in inspect.signature(cls.__init__).parameters
                 if p not in ("self", "root", "split")]
        unknown = [k for k in kwargs if k not in known]
        if unknown:
            raise ConfigError(f"data.options: unknown option {unknown[0]!r} for the {key} data "
                              f"set (known: {', '.join(known)})")
    if key != "synthetic" and root is None:
        raise DensekitError(f"data set {name} needs a root folder")
    if key == "voc":
        return VOCSegmentation(root, split or "train", **kwargs)
    if key == "cityscapes":
        return Cityscapes(root, split or "train", **kwargs)
    if key == "camvid":
        return CamVid(root, split or "train", **kwargs)
    if key == "folder":
        if "classes" not in kwargs:
            raise DensekitError("folder data set needs classes (a text file or a list of names)")
        return FolderDataset(root, split=split, **kwargs)
    if key == "synthetic":
        split = split or "train"
        if split not in SPLIT_IDS:
            raise DensekitError(f"synthetic scenes: split must be one of {', '.join(SPLIT_IDS)}")
        kwargs.setdefault("num_images", _SYNTHETIC_DEFAULT_IMAGES[split])
        return SyntheticScenes(split=split, **kwargs)
    raise DensekitError(f"unknown segmentation data set {name!r}; choose from "
                        f"{', '.join(SEG_DATASETS)}")


# --------------------------------------------------------------------------------------------
# Joint transforms


class RandomScale(v2.Transform):
    """Resize image and mask together by a random factor drawn uniformly from ``scale_range``.

    With ``base_size`` the factor scales ``base_size`` and the shorter side is resized to it
    (aspect ratio kept); without, it scales the input's own size. Images use bilinear
    interpolation with antialiasing; masks are resized with nearest neighbour (v2 always
    resamples ``tv_tensors.Mask`` that way).
    """

    def __init__(self, scale_range: tuple[float, float] = (0.5, 2.0), base_size: int | None = None):
        super().__init__()
        lo, hi = float(scale_range[0]), float(scale_range[1])
        if not 0 < lo <= hi:
            raise DensekitError(f"scale_range must satisfy 0 < min <= max, got {scale_range}")
        self.scale_range = (lo, hi)
        self.base_size = base_size

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        lo, hi = self.scale_range
        s = lo + float(torch.rand(())) * (hi - lo)
        if self.base_size is not None:
            s = s * self.base_size / min(h, w)
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(TF.resize, inpt, size=params["size"],
                                 interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


def _to_float_normalized(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            v2.Normalize(mean=list(mean), std=list(std))]


def train_transforms(crop_size: int | tuple[int, int], scale_range: tuple[float, float] = (0.5, 2.0),
                     mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                     ignore_index: int = IGNORE_INDEX, hflip: bool = True,
                     base_size: int | None = None) -> v2.Compose:
    """Joint training augmentation: random scale, random crop, horizontal flip, normalise.

    Inputs smaller than the crop are padded: the image with the mean colour (so it becomes 0
    after normalisation), the mask with ``ignore_index``. Output: float32 normalised image
    (3, ch, cw) and int64 mask (ch, cw).
    """
    crop = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    pad_colour = tuple(round(255 * m) for m in mean)
    ops: list[v2.Transform] = []
    if base_size is not None or (scale_range is not None and tuple(scale_range) != (1.0, 1.0)):
        ops.append(RandomScale(scale_range or (1.0, 1.0), base_size))
    ops.append(v2.RandomCrop(crop, pad_if_needed=True,
                             fill={tv_tensors.Image: pad_colour, tv_tensors.Mask: ignore_index}))
    if hflip:
        ops.append(v2.RandomHorizontalFlip())
    ops += _to_float_normalized(mean, std)
    return v2.Compose(ops)


def eval_transforms(mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """Evaluation: full resolution, image to float32 and normalised, mask unchanged."""
    return v2.Compose(_to_float_normalized(mean, std))


# --------------------------------------------------------------------------------------------
# Class weights and checks


def _raw_mask(dataset, index: int) -> torch.Tensor:
    if hasattr(dataset, "load_mask"):
        return dataset.load_mask(index)  # no image decoding, no transform
    return torch.as_tensor(dataset[index][1])


def class_pixel_counts(dataset, num_classes: int, ignore_index: int = IGNORE_INDEX
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per class: labelled pixels, and labelled pixels of the images where the class appears."""
    counts = np.zeros(num_classes, dtype=np.int64)
    image_pixels = np.zeros(num_classes, dtype=np.int64)
    for i in range(len(dataset)):
        m = _raw_mask(dataset, i).reshape(-1).long()
        m = m[m != ignore_index]
        if m.numel() and (m.min() < 0 or m.max() >= num_classes):
            bad = torch.unique(m[(m < 0) | (m >= num_classes)]).tolist()
            raise DensekitError(f"sample {i}: label values {bad[:8]} outside 0..{num_classes - 1}")
        c = torch.bincount(m, minlength=num_classes).numpy()
        counts += c
        image_pixels[c > 0] += int(m.numel())
    return counts, image_pixels


def median_frequency_weights(dataset, num_classes: int, ignore_index: int = IGNORE_INDEX
                             ) -> torch.Tensor:
    """Median frequency balancing (Eigen & Fergus 2015): float32 weights (num_classes,).

    freq(c) = pixels of class c / pixels of the images where c appears, weight(c) =
    median(freq) / freq(c), the median taken over the classes that appear; classes that never
    appear get weight 0. Ignored pixels count nowhere (neither as class pixels nor in an
    image's pixel total).
    """
    counts, image_pixels = class_pixel_counts(dataset, num_classes, ignore_index)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    if present.any():
        freq = counts[present] / image_pixels[present]
        weights[present] = np.median(freq) / freq
    return torch.tensor(weights, dtype=torch.float32)


def enet_weights(dataset, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 c: float = 1.10) -> torch.Tensor:
    """ENet's class weights (Paszke et al. 2016): float32 ``1 / ln(c + p(class))``, p the class's
    share of all labelled pixels; bounded by ``1 / ln(c)`` for rare classes (c = 1.10: 10.5, as in
    ESPNet, CGNet and DABNet on CamVid). Classes that never appear get weight 0."""
    counts, _ = class_pixel_counts(dataset, num_classes, ignore_index)
    weights = np.zeros(num_classes, dtype=np.float64)
    present = counts > 0
    if present.any():
        weights[present] = 1.0 / np.log(c + counts[present] / counts.sum())
    return torch.tensor(weights, dtype=torch.float32)


def check_dataset(dataset, *, decode: bool = True) -> list[str]:
    """Every problem found in a file-backed data set, one line each naming the file.

    Reports images without a label file, label files without an image, unreadable images or
    labels, image/label size mismatches and label values that are neither a class nor ignore.
    Reads every file once; generated data sets have nothing to check (empty list).
    ``decode=False`` checks the pairing only, fast: missing files, labels without an image,
    files that are not images and size mismatches, from the file headers (nothing decoded).
    """
    problems: list[str] = []
    for img_path, lbl_path in getattr(dataset, "files", []):
        img_path, lbl_path = Path(img_path), Path(lbl_path)
        img_ok = img_path.exists()
        lbl_ok = lbl_path.exists()
        if not img_ok:
            problems.append(f"{img_path}: image missing (label {lbl_path})")
        if not lbl_ok:
            problems.append(f"{lbl_path}: label missing for image {img_path}")
        img_size = None
        if img_ok:
            try:
                if decode:
                    im = _open(img_path)
                    img_size = (im.size[1], im.size[0])
                else:
                    img_size = image_size(img_path)
            except DensekitError as e:
                problems.append(str(e))
        if not lbl_ok:
            continue
        try:
            if decode or lbl_path.suffix.lower() == ".mat":
                raw = read_label_raw(lbl_path)
                lbl_size = tuple(raw.shape)
            else:
                lbl_size = image_size(lbl_path)
        except DensekitError as e:
            problems.append(str(e))
            continue
        if img_size is not None and lbl_size != img_size:
            problems.append(f"{lbl_path}: label is {lbl_size[1]}x{lbl_size[0]} but image "
                            f"{img_path} is {img_size[1]}x{img_size[0]}")
        if decode and hasattr(dataset, "map_label"):
            try:
                dataset.map_label(raw, lbl_path)
            except DensekitError as e:
                problems.append(str(e))
    for p in getattr(dataset, "orphan_labels", []):
        problems.append(f"{p}: label without an image")
    return problems
