"""An exponential moving average (EMA) of a network's weights, for validation and export.

``torch.optim.swa_utils.AveragedModel`` keeps the copy, over parameters and buffers; after every
optimizer step ``ema = d * ema + (1 - d) * weights`` with the decay warmed up as TensorFlow's
``ExponentialMovingAverage(num_updates=...)`` does: ``d = min(decay, (1 + n) / (10 + n))`` after
``n`` updates (the first update copies the weights). Without the warm-up the random
initialisation keeps a weight of ``decay ** n`` (9 % after 2,400 steps at 0.999). The copy is an
ordinary module, so checkpoints save and resume it with the trained one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ema_decay(decay: float, updates: int) -> float:
    """The decay applied at the update that follows ``updates`` earlier ones."""
    return min(decay, (1 + updates) / (10 + updates))


def build_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """An EMA copy of ``model`` (None for ``decay`` 0: no EMA)."""
    if not decay:
        return None

    @torch.no_grad()
    def update(ema_params, params, num_averaged):
        d = ema_decay(decay, int(num_averaged))
        torch._foreach_lerp_(ema_params, params, 1 - d)

    ema = AveragedModel(model, multi_avg_fn=update, use_buffers=True)
    ema.requires_grad_(False)
    return ema.eval()
