"""Label tables of the segmentation data sets: class names, palettes (one RGB tuple per class, for
writing label PNGs) and the 256-entry lookup tables mapping raw label values to training labels
(-1: a value the set does not define)."""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255


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
