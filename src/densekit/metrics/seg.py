"""Semantic-segmentation metrics by the protocol of docs/protocols.md 2.1.

One confusion matrix is accumulated over the whole split (never averaged per image); pixels with
the ignore label are excluded. ``matrix[t, p]`` counts pixels of true class ``t`` predicted as
``p``. From it, per class ``IoU = p_ii / (sum_j p_ij + sum_j p_ji - p_ii)`` (NaN for a class
absent from both predictions and targets), ``miou`` = mean of the non-NaN IoUs, ``pixel_acc`` =
trace / total, ``mean_acc`` = mean over classes present in the targets of ``p_ii / sum_j p_ij``.

Distributed evaluation: every process updates its own matrix, then
:meth:`ConfusionMatrix.all_reduce` (a sum over processes) or :meth:`ConfusionMatrix.merge` /
``+`` combine them before ``compute``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["ConfusionMatrix"]


class ConfusionMatrix:
    """Accumulating (num_classes x num_classes) int64 confusion matrix (rows = ground truth)."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = int(ignore_index)
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        self.matrix = torch.zeros_like(self.matrix)

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch. ``pred``: class indices shaped like ``target``, or scores (N, C, ...)
        (argmax over dim 1). ``target``: class indices, ``ignore_index`` for void pixels.
        Labels outside ``[0, num_classes)`` (other than the ignore index) raise ValueError."""
        c = self.num_classes
        if pred.dim() == target.dim() + 1 and pred.shape[1] == c and \
                pred.shape[:1] + pred.shape[2:] == target.shape:
            pred = pred.argmax(1)
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} "
                             f"shapes differ")
        if pred.dtype.is_floating_point or target.dtype.is_floating_point:
            raise ValueError("pred and target must hold integer class indices")
        target = target.to(pred.device).long().reshape(-1)
        pred = pred.long().reshape(-1)
        valid = target != self.ignore_index
        target, pred = target[valid], pred[valid]
        for name, t in (("target", target), ("prediction", pred)):
            bad = (t < 0) | (t >= c)
            if bool(bad.any()):
                raise ValueError(f"{name} holds label {int(t[bad][0])} outside [0, {c}) "
                                 f"(ignore index {self.ignore_index})")
        counts = torch.bincount(target * c + pred, minlength=c * c).reshape(c, c)
        self.matrix = self.matrix.to(counts.device) + counts

    # ---- combining ------------------------------------------------------------------------------
    def _check_compatible(self, other: ConfusionMatrix) -> None:
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f"cannot merge ConfusionMatrix with {type(other).__name__}")
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError("cannot merge confusion matrices with different num_classes or "
                             "ignore_index")

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts into this matrix (in place); returns self."""
        self._check_compatible(other)
        self.matrix = self.matrix + other.matrix.to(self.matrix.device)
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        self._check_compatible(other)
        out = ConfusionMatrix(self.num_classes, self.ignore_index)
        out.matrix = self.matrix + other.matrix.to(self.matrix.device)
        return out

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return self.merge(other)

    def all_reduce(self, group=None) -> ConfusionMatrix:
        """Sum the matrices of all processes (no-op unless torch.distributed is initialised).
        The matrix must be on the backend's device (CUDA for NCCL): update with CUDA tensors
        or move ``self.matrix`` first."""
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM, group=group)
        return self

    # ---- results --------------------------------------------------------------------------------
    def compute(self) -> dict:
        """``{"iou": [per class], "miou", "pixel_acc", "mean_acc", "class_acc": [per class],
        "pixels"}``; floats (NaN where undefined)."""
        m = self.matrix.detach().cpu().to(torch.float64)
        tp = m.diag()
        gt = m.sum(1)   # pixels of each true class
        pr = m.sum(0)   # pixels predicted as each class
        union = gt + pr - tp
        nan = torch.full_like(tp, math.nan)
        iou = torch.where(union > 0, tp / union.clamp_min(1), nan)
        acc = torch.where(gt > 0, tp / gt.clamp_min(1), nan)
        total = m.sum()
        return {
            "iou": iou.tolist(),
            "miou": _nanmean(iou),
            "pixel_acc": float(tp.sum() / total) if total > 0 else math.nan,
            "mean_acc": _nanmean(acc),
            "class_acc": acc.tolist(),
            "pixels": int(self.matrix.sum()),
        }

    def __repr__(self) -> str:
        return (f"ConfusionMatrix(num_classes={self.num_classes}, "
                f"ignore_index={self.ignore_index}, pixels={int(self.matrix.sum())})")


def _nanmean(x: Tensor) -> float:
    keep = ~torch.isnan(x)
    return float(x[keep].mean()) if bool(keep.any()) else math.nan
