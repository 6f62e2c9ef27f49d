"""Every problem of a file-backed data set, one line each naming the file."""

from __future__ import annotations

from pathlib import Path

from densekit.data.image_io import image_size, open_image
from densekit.data.seg.base import read_label_raw
from densekit.errors import DensekitError


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
                    im = open_image(img_path)
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
