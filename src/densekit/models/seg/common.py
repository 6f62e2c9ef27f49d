"""Helpers the segmentation networks share: argument checks and loading torchvision ImageNet
weights (by enum or from a local state_dict file) with one-line errors naming the file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from densekit.errors import ConfigError

__all__ = ["check_num_classes", "load_pretrained_state", "load_state_into"]


def check_num_classes(owner: str, num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"{owner}: num_classes must be an integer >= 1, got {num_classes!r}")
    return num_classes


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def load_pretrained_state(owner: str, pretrained, weights_cls: type[WeightsEnum],
                          default: WeightsEnum) -> tuple[dict[str, Tensor], str] | None:
    """Resolve ``pretrained`` to a torchvision classification state_dict and a description.

    ``pretrained``: None (-> None: train from scratch), ``"imagenet"`` (-> ``default``, loaded by
    torchvision's ``get_state_dict``, which downloads unless the file is in the torch hub cache),
    a member of ``weights_cls``, or a path to a file written by
    ``torch.save(torchvision_model.state_dict(), path)`` (a ``{"state_dict": ...}`` or
    ``{"model": ...}`` wrapper is unwrapped). Errors raise ConfigError naming the source.
    """
    if pretrained is None:
        return None
    if isinstance(pretrained, WeightsEnum):
        if not isinstance(pretrained, weights_cls):
            raise ConfigError(f"{owner}: pretrained weights {pretrained!r} are not "
                              f"{weights_cls.__name__} weights")
        weights = pretrained
    elif isinstance(pretrained, str) and pretrained.strip().lower() == "imagenet":
        weights = default
    elif isinstance(pretrained, (str, os.PathLike)):
        path = Path(pretrained).expanduser()
        return _load_file(owner, path), str(path)
    else:
        raise ConfigError(f"{owner}: pretrained must be null, 'imagenet' or a state_dict file "
                          f"path, got {pretrained!r}")
    try:
        state = weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # network, cache or hash failure: one line for the user
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise ConfigError(f"{owner}: cannot get pretrained {weights!r} ({_one_line(exc)}); "
                          f"put its file in {cache} or pass a local state_dict path") from exc
    return _as_state_dict(owner, state, repr(weights)), repr(weights)


def _load_file(owner: str, path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise ConfigError(f"{owner}: pretrained file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{owner}: cannot read pretrained file {path} ({_one_line(exc)})") \
            from exc
    return _as_state_dict(owner, obj, str(path))


def _as_state_dict(owner: str, obj, source: str) -> dict[str, Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise ConfigError(f"{owner}: pretrained {source} is not a state_dict (a mapping of "
                          f"parameter names to tensors)")
    return dict(obj)


def load_state_into(owner: str, module: nn.Module, state: Mapping[str, Tensor], source: str,
                    arch: str) -> None:
    """Strictly load ``state`` into ``module``; a mismatch raises a one-line ConfigError."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if keys:
            more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            problems.append(f"{what}: {', '.join(keys[:3])}{more}")
    if problems:
        raise ConfigError(f"{owner}: pretrained {source} is not a torchvision {arch} state_dict "
                          f"({'; '.join(problems)})")
    module.load_state_dict(state, strict=True)
