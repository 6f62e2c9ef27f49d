"""CamVid in the SegNet layout (11 classes)."""

from __future__ import annotations

import os
from pathlib import Path

from densekit.data.seg.base import SegDataset, Transform, paired_folders, require_dir
from densekit.data.seg.labels import CAMVID_CLASSES, CAMVID_PALETTE, camvid_lut


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
        self.root = require_dir(Path(root), "CamVid root")
        self.split = split
        img_dir = require_dir(self.root / split, f"CamVid {split} image")
        lbl_dir = require_dir(self.root / f"{split}annot", f"CamVid {split} label")
        paired_folders(self, img_dir, lbl_dir, f"CamVid split {split}")
