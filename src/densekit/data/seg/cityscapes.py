"""Cityscapes fine annotations (the 19 evaluated classes)."""

from __future__ import annotations

import os
from pathlib import Path

from densekit.data.seg.base import SegDataset, Transform, images_by_stem, require_dir
from densekit.data.seg.labels import CITYSCAPES_LABELS, cityscapes_lut
from densekit.errors import DensekitError


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
        self.root = require_dir(Path(root), "Cityscapes root")
        self.split = split
        img_dir = require_dir(self.root / "leftImg8bit" / split, f"Cityscapes {split} image")
        lbl_dir = require_dir(self.root / "gtFine" / split, f"Cityscapes {split} label")
        images: dict[str, Path] = {}
        for city in sorted(p for p in img_dir.iterdir() if p.is_dir()):
            for stem, p in images_by_stem(city, "_leftImg8bit").items():
                images[f"{city.name}/{stem}"] = p
        labels: dict[str, Path] = {}
        for city in sorted(p for p in lbl_dir.iterdir() if p.is_dir()):
            for stem, p in images_by_stem(city, "_gtFine_labelIds").items():
                labels[f"{city.name}/{stem}"] = p
        if not images:
            raise DensekitError(f"{img_dir}: no *_leftImg8bit images (Cityscapes split {split} "
                                f"is empty)")
        for key in sorted(images):
            city, stem = key.split("/")
            self.files.append((images[key], labels.get(
                key, lbl_dir / city / f"{stem}_gtFine_labelIds.png")))
        self.orphan_labels = [labels[k] for k in sorted(set(labels) - set(images))]
