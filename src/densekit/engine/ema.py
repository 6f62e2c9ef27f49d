"""An exponential moving average (EMA) of a network's weights, for validation and export.

``torch.optim.swa_utils.AveragedModel`` with torch's EMA update keeps the copy: after every
optimizer step ``ema = decay * ema + (1 - decay) * weights`` (the first update copies the
weights), over parameters and buffers. The copy is an ordinary module, so checkpoints save and
resume it with the trained one.
"""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def build_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """An EMA copy of ``model`` (None for ``decay`` 0: no EMA)."""
    if not decay:
        return None
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema.eval()
