"""Users' own segmentation data: a folder of images and a folder of masks, matched by name."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from densekit.data.seg.base import SegDataset, Transform, paired_folders, require_dir
from densekit.data.seg.labels import IGNORE_INDEX, identity_lut, voc_colormap
from densekit.errors import DensekitError


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
        self.root = require_dir(Path(root), "dataset root")
        base = require_dir(self.root / split, f"split {split}") if split else self.root
        img_dir = require_dir(base / "images", "images")
        lbl_dir = require_dir(base / "masks", "masks")
        paired_folders(self, img_dir, lbl_dir, "images folder")
