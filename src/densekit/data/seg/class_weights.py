"""Class weights from the label statistics of a training set."""

from __future__ import annotations

import numpy as np
import torch

from densekit.data.seg.base import sample_mask
from densekit.data.seg.labels import IGNORE_INDEX
from densekit.errors import DensekitError


def class_pixel_counts(dataset, num_classes: int, ignore_index: int = IGNORE_INDEX
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per class: labelled pixels, and labelled pixels of the images where the class appears."""
    counts = np.zeros(num_classes, dtype=np.int64)
    image_pixels = np.zeros(num_classes, dtype=np.int64)
    for i in range(len(dataset)):
        m = sample_mask(dataset, i).reshape(-1).long()
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
