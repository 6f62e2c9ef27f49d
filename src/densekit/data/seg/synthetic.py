"""Generated scenes of textured regions: a quick, deterministic test bed, not a benchmark."""

from __future__ import annotations

import numpy as np
import torch
from torchvision import tv_tensors

from densekit.data.seg.base import SegDataset, Transform
from densekit.data.seg.labels import IGNORE_INDEX, voc_colormap
from densekit.errors import DensekitError

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
