"""Optimizers and per-step learning-rate schedules from config."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from densekit.config import check


@dataclass
class OptimConfig:
    name: str = check("adam", choices=["adam", "adamw", "sgd"])
    lr: float = check(1e-3, gt=0)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = check(1e-8, gt=0)
    momentum: float = check(0.9, min=0, max=1)
    weight_decay: float = check(0.0, min=0)

    def validate(self):
        from densekit.errors import ConfigError

        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas: expected two numbers in [0, 1), got {self.betas}")


@dataclass
class SchedulerConfig:
    name: str = check("constant", choices=["constant", "step", "linear", "poly"])
    step_epochs: int = check(20, min=1, help="step: multiply by gamma every this many epochs")
    gamma: float = check(0.5, gt=0, max=1)
    end_factor: float = check(0.1, min=0, max=1, help="linear/poly: final lr = lr * end_factor")
    power: float = check(0.9, gt=0)
    warmup_steps: int = check(0, min=0, help="ramp lr linearly from lr/(N+1) over the first N "
                                             "steps (e.g. when fine-tuning trained weights)")


def build_optimizer(cfg: OptimConfig, params) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                 weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


def build_scheduler(cfg: SchedulerConfig, optimizer, total_steps: int, iters_per_epoch: int):
    """A LambdaLR stepped once per training step."""
    total = max(1, total_steps)
    if cfg.name == "constant":
        fn = lambda s: 1.0  # noqa: E731
    elif cfg.name == "step":
        every = cfg.step_epochs * iters_per_epoch
        fn = lambda s: cfg.gamma ** (s // every)  # noqa: E731
    elif cfg.name == "linear":
        fn = lambda s: 1.0 - (1.0 - cfg.end_factor) * min(s, total) / total  # noqa: E731
    else:
        fn = lambda s: cfg.end_factor + (1 - cfg.end_factor) * (1 - min(s, total) / total) ** cfg.power  # noqa: E731,E501
    if cfg.warmup_steps:
        base, n = fn, cfg.warmup_steps
        fn = lambda s: base(s) * min(1.0, (s + 1) / (n + 1))  # noqa: E731
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
