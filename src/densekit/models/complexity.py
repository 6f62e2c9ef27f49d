"""Model size and cost: parameter count and FLOPs per output pixel.

FLOPs come from :class:`FlopCounter`: PyTorch's own
:class:`torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-add) with its formula for
the convolution backward pass corrected for grouped convolutions. On one real forward pass:
convolutions - transposed ones included, counted on their input size - and matrix products
(``mm``/``bmm``/``addmm``, e.g. the dense matrices of the MATLAB bicubic resize) are counted;
element-wise ops (bias, ReLU, skip additions) are not.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

__all__ = ["FlopCounter", "conv_backward_flop", "count_params", "count_flops", "flops_per_pixel"]


def conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                       transposed, _output_padding, _groups, output_mask, out_shape=None,
                       **kwargs) -> int:
    """FLOPs of ``aten.convolution_backward``: the input gradient and the weight gradient each
    take exactly the multiply-adds of the forward convolution (every product of the forward
    pass, input x weight, appears once in each), grouped or not, transposed or not.

    torch's own formula (``torch.utils.flop_counter.conv_backward_flop``, torch 2.14) counts the
    weight gradient as a convolution over all input channels, ignoring ``groups``: ``groups``
    times too many, e.g. 256x for a depthwise conv over 256 channels (25.7 GFLOP instead of 0.3
    for forward + backward of a 3x3 depthwise conv, 256 channels, batch 8 at 45x60). Its input
    gradient and every dense convolution agree with this formula."""
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


class FlopCounter(FlopCounterMode):
    """:class:`torch.utils.flop_counter.FlopCounterMode` (``display=False`` by default) with
    :func:`conv_backward_flop` for ``aten.convolution_backward``: the FLOP counter for
    everything densekit reports (``densekit bench``, :func:`count_flops`)."""

    def __init__(self, display: bool = False, custom_mapping: dict | None = None, **kwargs):
        mapping = {torch.ops.aten.convolution_backward: conv_backward_flop}
        mapping.update(custom_mapping or {})
        super().__init__(display=display, custom_mapping=mapping, **kwargs)


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
        counter = FlopCounter()
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
