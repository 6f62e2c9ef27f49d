"""Semantic segmentation data: data sets, joint image/mask transforms, class weights, checks
and the training batches.

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

Modules: ``base`` (the contract, label files, file pairing), one per family (``voc``,
``cityscapes``, ``camvid``, ``folder``, ``synthetic``), ``labels`` (class names, palettes, lookup
tables), ``transforms``, ``class_weights``, ``check``, ``groups`` (validation on held-out groups of
files) and ``batches`` (a training run's batches); :func:`build_seg_dataset` picks a set by name.
"""

from __future__ import annotations

import inspect
import os

from densekit.data.seg.base import InMemory, SegDataset, Transform, read_label_raw, sample_mask
from densekit.data.seg.batches import SegStepBatches
from densekit.data.seg.camvid import CamVid
from densekit.data.seg.check import check_dataset
from densekit.data.seg.cityscapes import Cityscapes
from densekit.data.seg.class_weights import (class_pixel_counts, enet_weights,
                                             median_frequency_weights)
from densekit.data.seg.folder import FolderDataset, read_classes
from densekit.data.seg.groups import (file_group, format_sizes, group_sizes, pooled,
                                      split_groups)
from densekit.data.seg.labels import (CAMVID_CLASSES, CAMVID_PALETTE, CITYSCAPES_LABELS,
                                      IGNORE_INDEX, VOC_CLASSES, voc_colormap)
from densekit.data.seg.synthetic import SPLIT_IDS, SyntheticScenes
from densekit.data.seg.transforms import (IMAGENET_MEAN, IMAGENET_STD, RandomScale,
                                          eval_transforms, train_transforms)
from densekit.data.seg.voc import VOCSegmentation
from densekit.errors import ConfigError, DensekitError

__all__ = ["SEG_DATASETS", "build_seg_dataset", "SegDataset", "InMemory", "SegStepBatches",
           "VOCSegmentation", "Cityscapes", "CamVid", "FolderDataset", "SyntheticScenes",
           "IGNORE_INDEX", "IMAGENET_MEAN", "IMAGENET_STD", "VOC_CLASSES", "CITYSCAPES_LABELS",
           "CAMVID_CLASSES", "CAMVID_PALETTE", "voc_colormap", "read_classes", "read_label_raw",
           "sample_mask", "RandomScale", "train_transforms", "eval_transforms",
           "class_pixel_counts", "median_frequency_weights", "enet_weights", "check_dataset",
           "Transform", "file_group", "group_sizes", "format_sizes", "pooled", "split_groups"]

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

