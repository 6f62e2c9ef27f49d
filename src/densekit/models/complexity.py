"""Model size and cost: parameter count and FLOPs per output pixel.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode` (PyTorch's own counter, 2 FLOPs
per multiply-add) on one real forward pass: convolutions - transposed ones included, counted on
their input size - and matrix products (``mm``/``bmm``/``addmm``, e.g. the dense matrices of the
MATLAB bicubic resize) are counted; element-wise ops (bias, ReLU, skip additions) are not.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "count_flops", "flops_per_pixel"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared ones once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _probe(model: nn.Module, lr_size: tuple[int, int], channels: int | None):
    h, w = (int(v) for v in lr_size)
    if channels is None:
        channels = int(getattr(model, "channels", 1))
    ref = next(model.parameters(), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    gen = torch.Generator().manual_seed(0)
    return torch.rand(1, channels, h, w, generator=gen).to(device=device, dtype=dtype)


def count_flops(model: nn.Module, lr_size: tuple[int, int] = (32, 32),
                channels: int | None = None) -> tuple[int, torch.Size]:
    """(total FLOPs, output shape) of one eval-mode forward pass on a (1, C, h, w) input;
    C = ``channels`` or ``model.channels`` (1 if absent)."""
    x = _probe(model, lr_size, channels)
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            out = model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()), out.shape


def flops_per_pixel(model: nn.Module, lr_size: tuple[int, int] = (32, 32),
                    channels: int | None = None) -> float:
    """FLOPs of one forward pass on an LR input of ``lr_size`` divided by the number of output
    (HR) pixels (N * H * W, channels not counted)."""
    total, shape = count_flops(model, lr_size, channels)
    pixels = shape[0] * shape[-2] * shape[-1]
    return total / pixels
