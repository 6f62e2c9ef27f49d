"""SS-GAN losses and the ground-truth embedding (paper eq. 1-7; docs/ssgan.md 3-4). Pure functions.

* :func:`embed_ground_truth` turns the label map into a "real" probability map that is not
  trivially distinguishable from G's softmax (eq. 1-2, Luc et al.'s "scaling" encoding).
* :func:`generator_loss`: ``L_G = L_mce(y, g(x)) - lambda * L_bce(0, d(g(x), x))`` (paper,
  "minimax") or ``L_mce + lambda * L_bce(1, d(g(x), x))`` ("nonsaturating").
* :func:`discriminator_loss`: ``L_D = L_bce(1, d(v, x)) + L_bce(0, d(g(x), x))``.

All discriminator outputs are logits (N, 1, 4, 4); BCE is ``binary_cross_entropy_with_logits``
averaged over cells and images. Losses are computed in float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from densekit.errors import ConfigError

__all__ = ["embed_ground_truth", "generator_loss", "discriminator_loss",
           "discriminator_accuracy", "cross_entropy", "ce_normalizer", "GENERATOR_LOSS_MODES"]

GENERATOR_LOSS_MODES = ("minimax", "nonsaturating")


def _check_target(target: Tensor, shape: torch.Size, ignore_index: int) -> Tensor:
    n, c, h, w = shape
    if target.shape != (n, h, w):
        raise ValueError(f"target must be (N, H, W) = {(n, h, w)}, got {tuple(target.shape)}")
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got {target.dtype}")
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= c))
    if bool(bad.any()):
        value = int(target[bad][0])
        raise ValueError(f"target holds label {value} outside [0, {c}) that is not the ignore "
                         f"index {ignore_index}")
    return valid


def embed_ground_truth(probs: Tensor, target: Tensor, eps: float = 0.9,
                       ignore_index: int = 255) -> Tensor:
    """The embedded ground truth v (N, C, H, W) from G's probabilities u and the labels.

    For pixel i with true class l: ``v_il = max(eps, u_il)`` (eq. 1) and
    ``v_ic = u_ic (1 - v_il) / (1 - u_il)`` for ``c != l`` (eq. 2). Where ``u_il >= eps`` (u_il
    = 1 included) this is exactly ``v_i = u_i``, so the division only happens where
    ``1 - u_il > 1 - eps > 0`` (eps = 1 is guarded the same way). Pixels with ``ignore_index``
    keep ``v_i = u_i``, so they carry no information for A. ``u`` is detached; rows of v sum to
    1 whenever rows of u do. Computed in float32, returned in ``probs.dtype``.
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 < eps <= 1.0:
        raise ConfigError(f"ssgan.eps must be in (0, 1], got {eps!r}")
    if probs.dim() != 4:
        raise ValueError(f"probs must be (N, C, H, W), got {tuple(probs.shape)}")
    valid = _check_target(target, probs.shape, ignore_index)
    u = probs.detach().float()
    t = torch.where(valid, target, torch.zeros_like(target)).long().unsqueeze(1)
    u_l = u.gather(1, t)
    lift = valid.unsqueeze(1) & (u_l < eps)          # pixels where eq. 1-2 change anything
    v_l = torch.where(lift, torch.full_like(u_l, float(eps)), u_l)
    scale = torch.where(lift, (1.0 - v_l) / (1.0 - u_l).clamp_min(1e-12), torch.ones_like(u_l))
    v = u * scale
    v = v.scatter(1, t, torch.where(lift, v_l, u_l))
    return v.to(probs.dtype)


def _class_weights(class_weights, num_classes: int, device) -> Tensor | None:
    if class_weights is None:
        return None
    weight = torch.as_tensor(class_weights, dtype=torch.float32, device=device)
    if weight.shape != (num_classes,):
        raise ValueError(f"class_weights must have {num_classes} entries, "
                         f"got shape {tuple(weight.shape)}")
    return weight


def ce_normalizer(target: Tensor, num_classes: int, ignore_index: int = 255,
                  class_weights: Tensor | None = None) -> Tensor:
    """What :func:`cross_entropy` divides by: the number of non-ignored pixels (their summed
    class weights with ``class_weights``)."""
    weight = _class_weights(class_weights, num_classes, target.device)
    valid = target != ignore_index
    if weight is None:
        return valid.sum().float()
    t = torch.where(valid, target, torch.zeros_like(target)).long()
    return (weight[t] * valid).sum()


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = 255,
                  class_weights: Tensor | None = None, normalizer: Tensor | None = None
                  ) -> Tensor:
    """Per-pixel multi-class CE averaged over non-ignored pixels (weighted mean with class
    weights, as ``F.cross_entropy``); 0 (with a gradient path) if every pixel is ignored.
    ``normalizer`` replaces the divisor :func:`ce_normalizer` (data-parallel training divides
    every shard by the global batch's value / number of shards)."""
    weight = _class_weights(class_weights, logits.shape[1], logits.device)
    per_pixel = F.cross_entropy(logits.float(), target.long(), weight=weight,
                                ignore_index=ignore_index, reduction="none")
    if normalizer is None:
        normalizer = ce_normalizer(target, logits.shape[1], ignore_index, class_weights)
    return per_pixel.sum() / normalizer.clamp_min(1e-12)


def _bce(logits: Tensor, label: float) -> Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


def generator_loss(logits: Tensor, target: Tensor, d_fake_logits: Tensor, lam: float = 1e-2,
                   mode: str = "minimax", ignore_index: int = 255,
                   class_weights: Tensor | None = None, normalizer: Tensor | None = None
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """G's loss; returns ``(total, ce, adv)``.

    ``d_fake_logits`` = A's logits on (image, softmax(logits)) with A's parameters frozen but
    the graph to G kept. ``adv`` is the BCE term itself (>= 0): ``BCE(0, d)`` for "minimax"
    (paper eq. 3: ``total = ce - lam * adv``) and ``BCE(1, d)`` for "nonsaturating"
    (``total = ce + lam * adv``). Either way G is pushed to make A answer "real".
    ``normalizer``: see :func:`cross_entropy`.
    """
    if not isinstance(mode, str) or mode not in GENERATOR_LOSS_MODES:
        raise ConfigError(f"ssgan.mode must be one of {', '.join(GENERATOR_LOSS_MODES)}, "
                          f"got {mode!r}")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) \
            or lam < 0:
        raise ConfigError(f"ssgan.lam must be a number >= 0, got {lam!r}")
    ce = cross_entropy(logits, target, ignore_index, class_weights, normalizer)
    if mode == "minimax":
        adv = _bce(d_fake_logits, 0.0)
        total = ce - lam * adv
    else:
        adv = _bce(d_fake_logits, 1.0)
        total = ce + lam * adv
    return total, ce, adv


def discriminator_loss(d_real_logits: Tensor, d_fake_logits: Tensor) -> Tensor:
    """``BCE(1, d(v, x)) + BCE(0, d(g(x), x))`` (paper eq. 6), each averaged over cells."""
    return _bce(d_real_logits, 1.0) + _bce(d_fake_logits, 0.0)


@torch.no_grad()
def discriminator_accuracy(d_real_logits: Tensor, d_fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Fractions of cells A gets right: ``(mean(real > 0), mean(fake <= 0))`` (a cell is
    called "real" when its probability exceeds 0.5). 0-dim float tensors."""
    return (d_real_logits > 0).float().mean(), (d_fake_logits <= 0).float().mean()
