"""Super-resolution task: config schema, training task for the engine, weights files."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from densekit.config import check, command_line, load_config, to_dict
from densekit.data.degrade import DegradeConfig, jpeg_quality, parse_degrade
from densekit.data.sr import SRPatchBatches, check_folders
from densekit.data.stream import batch_stream
from densekit.engine import distributed
from densekit.engine.checkpoint import atomic_torch_save, load_checkpoint
from densekit.engine.ema import build_ema
from densekit.engine.optim import OptimConfig, SchedulerConfig, build_optimizer, build_scheduler
from densekit.engine.trainer import EngineConfig, format_out_dir, setup_engine, train_task
from densekit.errors import ConfigError, DensekitError
from densekit.io import write_above_bars
from densekit.models.sr import SR_MODELS, SR_RUNTIME_OPTIONS, build_sr_model
from densekit.models.zoo import (REAL_PHOTO_MAX_QUALITY, default_weights, get_weights,
                                 list_weights)

SCALES = (2, 3, 4)


@dataclass
class SRModelConfig:
    name: str = check("hdcn", choices=sorted(SR_MODELS))
    scale: int = check(2, choices=list(SCALES))
    channels: int = check(1, choices=[1, 3], help="1 = luminance (Y), 3 = RGB")
    options: dict = field(default_factory=dict)


@dataclass
class SRDataConfig:
    train: list[str] = field(default_factory=lambda: ["../shared/data/sr/T91",
                                                      "../shared/data/sr/BSD200"])
    val: list[str] = field(default_factory=lambda: ["../shared/data/sr/Set5"])
    patch_size: int = check(64, min=8, help="HR crop size (rounded down to a multiple of scale)")
    augment: bool = True
    resize_range: list[float] = field(default_factory=lambda: [1.0, 1.0])
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    val_degrade: str = check("", help="degrade the validation images' LR as 'densekit sr eval "
                                      "--degrade' does, e.g. jpeg:70 ('' = the clean protocol)")
    workers: int = check(1, min=0)

    def validate(self):
        parse_degrade(self.val_degrade, "val_degrade", ConfigError)
        r = self.resize_range
        if len(r) != 2 or not 0 < r[0] <= r[1] <= 1:
            raise ConfigError(f"resize_range: expected [lo, hi] with 0 < lo <= hi <= 1 (the "
                              f"factors a training image is downscaled by), got {r}")


@dataclass
class SRTrainConfig:
    epochs: int = check(100, min=1)
    iters_per_epoch: int = check(1000, min=1)
    batch_size: int = check(32, min=1)
    optimizer: OptimConfig = field(default_factory=lambda: OptimConfig(
        name="adam", lr=1e-3, betas=[0.9, 0.9999], eps=1e-8))
    scheduler: SchedulerConfig = field(default_factory=lambda: SchedulerConfig(
        name="step", step_epochs=20, gamma=0.5))
    loss: str = check("mse", choices=["mse", "l1", "charbonnier"],
                      help="pixel loss: mse (paper, eq. 14), l1 (EDSR), or charbonnier "
                           "(sqrt(d^2 + 1e-6), LapSRN)")
    l2: float = check(1e-3, min=0, help="beta of eq. 14: loss += beta * sum(w^2) / 2")
    ema: float = check(0.0, min=0, help="decay of an exponential moving average of the "
                                        "weights, which validation and the exported weights "
                                        "use (e.g. 0.999); 0 = none")
    grad_clip: float = check(0.0, min=0)
    val_every_epochs: int = check(1, min=0, help="0 = no validation")
    init_from: str = check("", help="start from these weights or checkpoint (fine-tuning); "
                                    "'shipped' = the packaged weights of model.name x scale; "
                                    "weights of another scale give every tensor but the "
                                    "upsampler's (x3/x4 from x2)")

    def validate(self):
        if not self.ema < 1:
            raise ConfigError(f"ema: must be below 1 (0 = none), got {self.ema}")


@dataclass
class SRConfig:
    task: str = check("sr", choices=["sr"])
    model: SRModelConfig = field(default_factory=SRModelConfig)
    data: SRDataConfig = field(default_factory=SRDataConfig)
    train: SRTrainConfig = field(default_factory=SRTrainConfig)
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(out_dir="runs/sr"))


# ---- weights files ---------------------------------------------------------------------------
WEIGHTS_FORMAT = "densekit-sr-weights-1"


def save_weights(path: Path, model: nn.Module, mcfg: SRModelConfig, meta: dict | None = None):
    state = {k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.cpu()
             for k, v in model.state_dict().items()}
    atomic_torch_save({"format": WEIGHTS_FORMAT, "model": mcfg.name, "scale": mcfg.scale,
                       "channels": mcfg.channels, "options": dict(mcfg.options),
                       "state_dict": state, "meta": meta or {}}, path, what="weights file")


def shipped_weights(name: str, scale: int) -> Path | None:
    ref = resources.files("densekit") / "weights" / f"{name}_x{scale}.pt"
    path = Path(str(ref))
    return path if path.is_file() else None


def read_sr_weights(path: str | Path) -> dict:
    """A weights file or training checkpoint as {model, scale, channels, options,
    state_dict}."""
    path = Path(path)
    state = load_checkpoint(path)
    if state.get("format") == "densekit-checkpoint-1":  # a training checkpoint also works
        if state.get("config", {}).get("task") != "sr":
            raise DensekitError(f"{path}: not a super-resolution checkpoint")
        cfg = state["config"]["model"]
        state = {"model": cfg["name"], "scale": cfg["scale"], "channels": cfg["channels"],
                 "options": cfg["options"], "state_dict": _result_state(state["modules"])}
    elif state.get("format") != WEIGHTS_FORMAT:
        raise DensekitError(f"{path}: not a densekit SR weights file")
    return state


def _result_state(modules: dict) -> dict:
    """A checkpoint's result weights: the EMA's (``train.ema``) if the run kept one, as the
    run's validation and weights.pt use them, else the trained weights."""
    if "ema" not in modules:
        return modules["model"]
    return {k[len("module."):]: v for k, v in modules["ema"].items() if k.startswith("module.")}


def choose_weights(name: str, scale: int, image) -> tuple[str | None, int | None]:
    """The shipped weights (zoo name) for upscaling ``image`` (a PIL image) with ``name`` x
    ``scale``, and the JPEG quality estimated from its file: the real-photo weights for a JPEG
    of quality <= :data:`REAL_PHOTO_MAX_QUALITY` of that scale where they ship, else the clean
    weights (None when nothing ships)."""
    quality = jpeg_quality(image)
    if quality is not None and quality <= REAL_PHOTO_MAX_QUALITY.get(scale, 0):
        real = default_weights(name, scale=scale, degradation="real")
        if real is not None:
            return real.name, quality
    clean = default_weights(name, scale=scale)
    return (clean.name if clean is not None else None), quality


def _weights_for(name: str, scale: int, weights: str | Path | None, option: str,
                 any_scale: bool = False) -> dict:
    """read_sr_weights of ``weights`` (None: the shipped file; a zoo name such as
    "hdcn_real_x2": that shipped file, its SHA-256 checked), checked to be ``name`` x ``scale``
    (any scale with ``any_scale``); ``option`` names the setting in the error when nothing is
    shipped."""
    if weights is None:
        weights = shipped_weights(name, scale)
        if weights is None:
            raise DensekitError(f"{option}: no shipped weights for {name} x{scale}; "
                                "pass a weights file from 'densekit sr train'")
    elif isinstance(weights, str) and weights in {w.name for w in list_weights(task="sr")}:
        weights = get_weights(weights).verify()
    path = Path(weights)
    if not path.exists():
        shipped = ", ".join(w.name for w in list_weights(task="sr")) or "none"
        raise DensekitError(f"{option}: {path} is neither a file nor a shipped weights name "
                            f"(shipped: {shipped})")
    state = read_sr_weights(path)
    if state["model"] != name:
        raise DensekitError(f"{path}: weights are for model {state['model']}, not {name}")
    if state["scale"] != scale and not any_scale:
        raise DensekitError(f"{path}: weights are for scale x{state['scale']}; unsupported "
                            f"scale x{scale} for these weights")
    state["path"] = path
    return state


def _misfit(state: dict, detail: str, what: str = "weights") -> DensekitError:
    """The one-line error for weights whose tensors do not fit the model being built."""
    return DensekitError(f"{state['path']}: {what} do not fit {state['model']} (they were "
                         f"trained with channels {state['channels']}, options "
                         f"{state['options']}; {detail})")


def _fill(model: nn.Module, state: dict) -> nn.Module:
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as e:
        lines = str(e).splitlines()
        raise _misfit(state, (lines[1] if len(lines) > 1 else lines[0]).strip()[:120]) from None
    return model


SCALE_DEPENDENT = "upsample."  # the only parameters whose shape or role depends on the scale


def _fill_across_scales(model: nn.Module, state: dict) -> list[str]:
    """Weights trained at another scale: copy every tensor of the same name and shape and keep
    the model's own initialisation for the rest, which must all belong to the scale-dependent
    upsampler (EDSR starts x3/x4 from x2 this way). Returns the names left initialised."""
    own = model.state_dict()
    theirs = state["state_dict"]
    fresh = [k for k, v in own.items() if k not in theirs or theirs[k].shape != v.shape]
    foreign = [k for k in theirs if k not in own]
    bad = [k for k in fresh + foreign if not k.startswith(SCALE_DEPENDENT)]
    if bad:
        raise _misfit(state, f"{bad[0]} differs", what=f"x{state['scale']} weights")
    model.load_state_dict({k: v for k, v in theirs.items() if k in own and k not in fresh},
                          strict=False)
    return fresh


def load_sr_model(name: str, scale: int, weights: str | Path | None = None,
                  options: dict | None = None, option: str = "--model-option") -> nn.Module:
    """An SR model ready for inference: bicubic, shipped weights, or a weights/checkpoint file.

    ``options`` sets options that change no weights (``SR_RUNTIME_OPTIONS``, e.g. HDCN's
    ``fp32_features``) over those the weights were trained with; ``option`` names the setting
    in the error for any other key."""
    options = dict(options or {})
    allowed = SR_RUNTIME_OPTIONS.get(name, ())
    for key in options:
        if key not in allowed:
            raise DensekitError(f"{option}: {key!r} cannot be set for {name} at inference "
                                f"(settable: {', '.join(allowed) or 'none'})")
    if name == "bicubic":
        return build_sr_model("bicubic", scale).eval()
    state = _weights_for(name, scale, weights, "--weights")
    model = build_sr_model(name, scale, state["channels"], **{**state["options"], **options})
    return _fill(model, state).eval()


# ---- training --------------------------------------------------------------------------------
class SRTask:
    def __init__(self, cfg: SRConfig):
        self.cfg = cfg
        self.precision = setup_engine(cfg.engine, batch_size=cfg.train.batch_size)
        check_folders(cfg.data.train, "data.train")
        check_folders(cfg.data.val, "data.val")
        m = cfg.model
        model = build_sr_model(m.name, m.scale, m.channels, **m.options)
        if not any(p.requires_grad for p in model.parameters()):
            raise DensekitError(f"model.name: {m.name} has nothing to train")
        if cfg.train.init_from:  # a resumed run's checkpoint replaces these weights later
            src = cfg.train.init_from
            state = _weights_for(m.name, m.scale, None if src == "shipped" else src,
                                 "train.init_from", any_scale=True)
            if state["scale"] == m.scale:
                _fill(model, state)
            else:
                fresh = _fill_across_scales(model, state)
                if distributed.rank() == 0:
                    write_above_bars(f"train.init_from: x{state['scale']} weights for x{m.scale}; "
                                     f"{len(fresh)} scale-dependent tensor(s) keep their "
                                     "initialisation" + (f" ({', '.join(fresh)})" if fresh else ""))
        self.model = self.precision.prepare(model)
        if cfg.engine.compile:
            self.model.compile()  # in place: state_dict keys unchanged
        self.net = distributed.wrap(self.model, cfg.engine.sync_bn)  # what train_step runs
        t = cfg.train
        self.total_steps = t.epochs * t.iters_per_epoch
        self.modules = {"model": self.model}
        self.ema = build_ema(self.model, t.ema)
        if self.ema is not None:
            self.modules["ema"] = self.ema
        opt = build_optimizer(t.optimizer, self.model.parameters())
        self.optimizers = {"model": opt}
        self.schedulers = {"model": build_scheduler(t.scheduler, opt, self.total_steps,
                                                    t.iters_per_epoch)}
        self.weights = [p for n, p in self.model.named_parameters() if p.dim() > 1]
        self.data = SRPatchBatches(cfg.data.train, scale=m.scale, patch_size=cfg.data.patch_size,
                                   batch_size=t.batch_size, channels=m.channels,
                                   augment=cfg.data.augment, seed=cfg.engine.seed,
                                   resize_range=cfg.data.resize_range,
                                   degrade=cfg.data.degrade, total_steps=self.total_steps,
                                   slots=distributed.shard_slots(t.batch_size))

    def batches(self, start_step: int):
        return batch_stream(self.data, start_step, self.total_steps, self.cfg.data.workers)

    def train_step(self, batch, step: int) -> dict[str, float]:
        lr, hr = (self.precision.input(t) for t in batch)
        self.model.train()
        with self.precision.autocast():
            out = self.net(lr)
        out = out.float()
        mse = F.mse_loss(out, hr)
        loss = mse if self.cfg.train.loss == "mse" else pixel_loss(self.cfg.train.loss, out, hr)
        if self.cfg.train.l2 > 0:
            loss = loss + self.cfg.train.l2 * 0.5 * sum(w.float().pow(2).sum()
                                                        for w in self.weights)
        opt = self.optimizers["model"]
        opt.zero_grad(set_to_none=True)
        self.precision.backward_step(loss, opt, self.model.parameters(), self.cfg.train.grad_clip)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        m = mse.item()
        return {"loss": loss.item(), "mse": m, "psnr": -10 * math.log10(max(m, 1e-12))}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Every process evaluates the whole (small) validation folders: same numbers on all."""
        from densekit.tasks.sr_eval import evaluate_folder

        model = self.result_model()
        model.eval()
        out = {}
        degrade = parse_degrade(self.cfg.data.val_degrade)
        for folder in self.cfg.data.val:
            r = evaluate_folder(model, folder, self.cfg.model.scale,
                                device=self.precision.device, autocast=self.precision.autocast,
                                degrade=degrade)
            out[f"psnr_{r['dataset']}"] = r["psnr"]
            out[f"ssim_{r['dataset']}"] = r["ssim"]
        self.model.train()
        return out

    def result_model(self) -> nn.Module:
        """What validation and the weights file use: the EMA of the weights if there is one."""
        return self.model if self.ema is None else self.ema.module

    def signature(self) -> dict:
        m = self.cfg.model
        sig = {"task": "sr", "model": m.name, "scale": m.scale, "channels": m.channels,
               "options": dict(sorted(m.options.items())),
               "batch_size": self.cfg.train.batch_size, "seed": self.cfg.engine.seed}
        if self.ema is not None:  # checkpoints of runs without an EMA have no such key
            sig["ema"] = self.cfg.train.ema
        return sig

    def extra_state(self) -> dict:
        return {"precision": self.precision.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.precision.load_state_dict(state.get("precision"))

    def export(self, path: Path) -> None:
        save_weights(path, self.result_model(), self.cfg.model,
                     meta={"steps": self.total_steps, "config": to_dict(self.cfg)})


def pixel_loss(name: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The training loss ``train.loss`` names, averaged over every pixel."""
    if name == "mse":
        return F.mse_loss(out, target)
    if name == "l1":
        return F.l1_loss(out, target)
    return torch.sqrt((out - target).pow(2) + 1e-6).mean()  # charbonnier


def train(config: str | None, overrides: list[str], resume: str | None = None) -> dict:
    cfg = load_config(SRConfig, config, overrides)
    cfg.engine.out_dir = format_out_dir(cfg.engine.out_dir, model=cfg.model.name,
                                        scale=cfg.model.scale, seed=cfg.engine.seed)
    return train_task(SRTask(cfg), cfg, command_line("densekit sr train", config, overrides),
                      resume)
