"""PASCAL VOC 2012 segmentation, with the SBD train_aug split."""

from __future__ import annotations

import os
from pathlib import Path

from densekit.data.seg.base import SegDataset, Transform
from densekit.data.seg.labels import VOC_CLASSES, identity_lut, voc_colormap
from densekit.errors import DensekitError


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DensekitError(f"{path}: split list not found")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DensekitError(f"{path}: cannot read split list ({e})") from None
    return [ln.split()[0] for ln in lines if ln.strip()]  # first column: the image id


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
