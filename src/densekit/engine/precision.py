"""Device, mixed precision and memory layout: the fast path is the default.

``auto`` picks bf16 autocast on CPUs with AMX or AVX-512 bf16 (5-7x faster conv training on
such CPUs) and on CUDA GPUs that support bf16, fp16 + GradScaler on older GPUs, fp32 otherwise.
channels_last is on by default for both devices.
"""

from __future__ import annotations

import contextlib
import functools

import torch

from densekit.engine import distributed
from densekit.errors import ConfigError


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return any(f in flags for f in (" amx_bf16", " avx512_bf16"))


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"engine.device: {name} requested but no CUDA GPU is available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"engine.device: unknown device {name!r}") from None


def resolve_precision(name: str, device: torch.device) -> str:
    if name != "auto":
        if name == "fp16" and device.type == "cpu":
            raise ConfigError("engine.precision: fp16 is for CUDA; use bf16 or fp32 on CPU")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


class Precision:
    """Autocast + optional GradScaler for one device/precision choice."""

    def __init__(self, device: torch.device, mode: str, channels_last: bool = True):
        self.device = device
        self.mode = mode
        self.channels_last = channels_last
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        self.scaler = torch.amp.GradScaler(device.type, enabled=(mode == "fp16"))

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self.device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module

    def input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                      params=None, clip: float = 0.0) -> bool:
        """backward + (unscale, clip) + step + scaler update. A non-finite loss is not applied
        (returns False), so NaNs never reach the weights through this step. Under torchrun a
        non-finite loss on any process skips the update on all of them."""
        if not distributed.all_true(bool(torch.isfinite(loss.detach()).all())):
            optimizer.zero_grad(set_to_none=True)
            return False
        self.scaler.scale(loss).backward()
        if clip and clip > 0:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, clip)
        self.scaler.step(optimizer)
        self.scaler.update()
        return True

    def state_dict(self):
        return {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, state):
        if state and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
