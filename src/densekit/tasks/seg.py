"""Semantic segmentation with SS-GAN adversarial training, on the shared engine.

One run has two phases (``docs/ssgan.md``, paper 2.3):

1. the generator G alone with per-pixel cross-entropy (Adam, lr 1e-4 decayed linearly to 1e-5);
2. adversarial: each step first updates the adversarial network A with G frozen (real = the
   eps-embedded ground truth, fake = G's softmax), then G with A frozen, with
   L_G = CE - lambda * BCE(0, A(G(x), x)) (or the non-saturating form). G gets a fresh Adam
   (lr 3e-5), A uses SGD with momentum 0.9 (lr 3e-4); both decay linearly.

The generator can be any ``nn.Module`` mapping normalised images to class logits at input size:
``fcn8s_vgg16``, ``deeplab_r50`` or any ``torchvision:<segmentation model>``.

Collapse guard (the paper says its training "collapses easily"): a non-finite loss, the
adversarial network winning outright (its loss below ``d_loss_floor`` for ``patience`` steps),
or validation mIoU falling below the phase-1 value by ``miou_margin`` rolls the run back to the
last good checkpoint and damps lambda and A's learning rate by ``damping``; logged as ROLLBACK.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from densekit.config import check, load_config, to_dict
from densekit.data.seg import (IGNORE_INDEX, InMemory, _raw_mask, build_seg_dataset,
                               check_dataset, enet_weights, median_frequency_weights,
                               train_transforms)
from densekit.data.stream import batch_stream, step_generator
from densekit.engine import distributed
from densekit.engine.checkpoint import atomic_torch_save
from densekit.engine.optim import OptimConfig, SchedulerConfig, build_optimizer, build_scheduler
from densekit.engine.trainer import EngineConfig, Rollback, Trainer, setup_engine
from densekit.errors import ConfigError, DensekitError
from densekit.models.seg import (SEG_MODELS, build_discriminator, build_seg_model,
                                 discriminator_accuracy, discriminator_loss, embed_ground_truth,
                                 generator_loss)
from densekit.models.seg.ssgan import ce_normalizer, cross_entropy
from densekit.tasks.seg_eval import evaluate_dataset


# ---- config ----------------------------------------------------------------------------------
@dataclass
class SegModelConfig:
    name: str = "fcn8s_vgg16"
    pretrained: str = check("", help="'' (from scratch), 'imagenet' (torchvision enum) or a "
                                     "torchvision classification state_dict file")
    options: dict = field(default_factory=dict)

    def validate(self):
        if self.name not in SEG_MODELS and not self.name.startswith("torchvision:"):
            raise ConfigError(f"name: unknown generator {self.name!r} (known: "
                              f"{', '.join(SEG_MODELS)}, or torchvision:<segmentation model>)")


@dataclass
class SegDataConfig:
    dataset: str = check("camvid", choices=["voc", "cityscapes", "camvid", "folder",
                                            "synthetic"])
    root: str = "../shared/data/camvid"
    train_split: str = "train"
    val_split: str = "val"
    options: dict = field(default_factory=dict, metadata={"help": "data set arguments"})
    crop_size: list[int] = field(default_factory=lambda: [360, 480])
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    resize: float = check(1.0, gt=0, max=1, help="train and infer at this fraction of the "
                                                 "resolution (0.5 = half), score at full size")
    class_weights: str = check("none", choices=["none", "median_frequency", "enet"],
                               help="enet: 1 / ln(1.10 + class share of labelled pixels)")
    workers: int = check(1, min=0)
    val_limit: int = check(0, min=0, help="validate on the first N images only (0 = all)")
    cache: bool = check(False, help="keep the decoded training images in memory (CamVid train: "
                                    "~250 MB per loader worker)")
    check: bool = check(True, help="check every image/label pair before training starts")

    def validate(self):
        if len(self.crop_size) != 2 or min(self.crop_size) < 8:
            raise ConfigError(f"crop_size: expected [height, width] >= 8, got {self.crop_size}")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ConfigError(f"scale_range: expected [low, high] with 0 < low <= high, got "
                              f"{self.scale_range}")


@dataclass
class AdversarialConfig:
    lam: float = check(1e-2, min=0, help="lambda of eq. 7")
    eps: float = check(0.9, gt=0, max=1, help="ground-truth embedding eps (eq. 1)")
    loss: str = check("minimax", choices=["minimax", "nonsaturating"])
    g_optimizer: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=3e-5))
    d_optimizer: OptimConfig = field(default_factory=lambda: OptimConfig(
        name="sgd", lr=3e-4, momentum=0.9))
    scheduler: SchedulerConfig = field(default_factory=lambda: SchedulerConfig(
        name="linear", end_factor=0.0))
    d_options: dict = field(default_factory=dict)
    d_pretrained_from_g: bool = check(True, help="copy the generator's first layers into A's "
                                                 "image branch when the families match")
    guard: bool = True
    miou_margin: float = check(0.02, min=0, help="roll back if val mIoU < phase-1 mIoU - this")
    d_loss_floor: float = check(0.05, min=0, help="A is winning outright below this loss")
    patience: int = check(200, min=1, help="steps of A winning before a rollback")
    damping: float = check(0.5, gt=0, max=1, help="lambda and A's lr multiply by this per "
                                                  "rollback")


@dataclass
class SegTrainConfig:
    phase1_epochs: int = check(50, min=0)
    phase2_epochs: int = check(50, min=0)
    iters_per_epoch: int = check(1000, min=1)
    batch_size: int = check(2, min=1)
    optimizer: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=1e-4))
    scheduler: SchedulerConfig = field(default_factory=lambda: SchedulerConfig(
        name="linear", end_factor=0.1))
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    init_from: str = check("", help="start G from these weights or checkpoint (e.g. a phase-1 "
                                    "run, with phase1_epochs: 0)")
    val_every_epochs: int = check(1, min=0)

    def validate(self):
        if self.phase1_epochs + self.phase2_epochs == 0:
            raise ConfigError("phase2_epochs: phase1_epochs + phase2_epochs must be > 0")


@dataclass
class SegConfig:
    task: str = check("seg", choices=["seg"])
    model: SegModelConfig = field(default_factory=SegModelConfig)
    data: SegDataConfig = field(default_factory=SegDataConfig)
    train: SegTrainConfig = field(default_factory=SegTrainConfig)
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(out_dir="runs/seg"))


# ---- generators --------------------------------------------------------------------------------
class TorchvisionSegAdapter(nn.Module):
    """Any torchvision segmentation model (dict output) as a plain logits module."""

    def __init__(self, name: str, num_classes: int, **options):
        super().__init__()
        import torchvision.models.segmentation as tvseg

        fn = getattr(tvseg, name, None)
        if fn is None or not callable(fn):
            raise ConfigError(f"model.name: torchvision has no segmentation model {name!r}")
        import inspect

        # torchvision's builders swallow unknown keywords: accept only their named options
        known = [k for k, v in inspect.signature(fn).parameters.items()
                 if v.kind is v.KEYWORD_ONLY and k not in ("weights", "weights_backbone",
                                                           "num_classes", "progress")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"model.options: torchvision {name} has no option {unknown[0]!r} "
                              f"(options: {', '.join(known) or 'none'})")
        self.net = fn(weights=None, weights_backbone=None, num_classes=num_classes, **options)
        self.num_classes = num_classes
        self.family = "resnet" if "resnet" in name else "vgg"

    def forward(self, x):
        return self.net(x)["out"]


def build_generator(cfg: SegModelConfig, num_classes: int) -> nn.Module:
    if cfg.name.startswith("torchvision:"):
        return TorchvisionSegAdapter(cfg.name.split(":", 1)[1], num_classes, **cfg.options)
    return build_seg_model(cfg.name, num_classes, pretrained=cfg.pretrained or None,
                           **cfg.options)


# ---- data ------------------------------------------------------------------------------------
def dataset_kwargs(cfg: SegDataConfig) -> dict:
    kw = dict(cfg.options)
    if cfg.dataset == "synthetic" and "size" in kw:
        kw["size"] = tuple(kw["size"])
    return kw


def check_crop(cfg: SegDataConfig, dataset) -> None:
    """Refuse a training crop larger than the (first) training image even at the largest
    scale: every crop would then be padded with ignore pixels."""
    if not len(dataset):
        return
    h, w = _raw_mask(dataset, 0).shape[-2:]
    f = cfg.scale_range[1] * cfg.resize
    ch, cw = (max(8, round(c)) for c in cfg.crop_size)
    if ch > round(h * f) or cw > round(w * f):
        raise ConfigError(f"data.crop_size: {ch}x{cw} is larger than the training images even "
                          f"at the largest scale ({h}x{w} x {f:g} = {round(h * f)}x"
                          f"{round(w * f)}); every crop would be padded with ignore pixels")


class SegStepBatches(torch.utils.data.Dataset):
    """Item ``step`` is that step's batch: images drawn epoch by epoch in a seeded permutation,
    augmentation seeded by (seed, step, slot), so every batch is a pure function of the step.
    Only the samples ``slots`` (default: all) of the global batch are built (torchrun shards)."""

    def __init__(self, dataset, transform, batch_size: int, seed: int, total_steps: int,
                 slots: range | None = None):
        self.dataset, self.transform = dataset, transform
        self.batch_size, self.seed, self.total_steps = batch_size, seed, total_steps
        self.slots = range(batch_size) if slots is None else slots
        self.per_epoch = max(1, len(dataset) // batch_size)

    def __len__(self):
        return self.total_steps

    def __getitem__(self, step: int):
        epoch, k = divmod(int(step), self.per_epoch)
        perm = torch.randperm(len(self.dataset), generator=step_generator(self.seed, -1 - epoch))
        images, masks = [], []
        for slot in self.slots:
            idx = int(perm[(k * self.batch_size + slot) % len(perm)])
            image, mask = self.dataset[idx]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed * 1_000_003 + int(step) * 64 + slot)
                image, mask = self.transform(image, mask)
            images.append(torch.as_tensor(image))
            masks.append(torch.as_tensor(mask).long())
        return torch.stack(images), torch.stack(masks)


# ---- the task --------------------------------------------------------------------------------
class SegTask:
    def __init__(self, cfg: SegConfig):
        self.cfg = cfg
        self.precision = setup_engine(cfg.engine, batch_size=cfg.train.batch_size)
        d, t = cfg.data, cfg.train
        kw = dataset_kwargs(d)
        self.train_set = build_seg_dataset(d.dataset, d.root, d.train_split, **kw)
        self.val_set = build_seg_dataset(d.dataset, d.root, d.val_split, **kw)
        self.num_classes = len(self.train_set.classes)
        if d.check:
            problems = check_dataset(self.train_set) + check_dataset(self.val_set)
            if problems:
                raise DensekitError(f"data set has {len(problems)} problem(s), e.g. "
                                    f"{problems[0]}; run 'densekit data check' for the list")
        check_crop(d, self.train_set)
        g = build_generator(cfg.model, self.num_classes)
        if t.init_from:
            load_generator_weights(g, t.init_from)
        self.G = self.precision.prepare(g)
        if cfg.engine.compile:
            self.G.compile()  # in place: state_dict keys unchanged
        # train_step runs G_net / D_net (DDP under torchrun); self.G / self.D are the networks
        self.G_net = distributed.wrap(self.G, cfg.engine.sync_bn)
        self.p1 = t.phase1_epochs * t.iters_per_epoch
        self.p2 = t.phase2_epochs * t.iters_per_epoch
        self.total_steps = self.p1 + self.p2
        self.modules = {"G": self.G}
        opt1 = build_optimizer(t.optimizer, self.G.parameters())
        self.optimizers = {"G1": opt1}
        self.schedulers = {"G1": build_scheduler(t.scheduler, opt1, max(1, self.p1),
                                                 t.iters_per_epoch)}
        a = t.adversarial
        if self.p2:
            family = getattr(self.G, "family", "vgg")
            disc = build_discriminator(family, self.num_classes, **a.d_options)
            if a.d_pretrained_from_g and hasattr(disc, "load_image_branch_from") and \
                    not t.init_from and cfg.model.pretrained:
                disc.load_image_branch_from(g)
            self.D = self.precision.prepare(disc)
            self.D_net = distributed.wrap(self.D, cfg.engine.sync_bn)
            self.modules["D"] = self.D
            opt_g2 = build_optimizer(a.g_optimizer, self.G.parameters())
            opt_d = build_optimizer(a.d_optimizer, self.D.parameters())
            self.optimizers.update({"G2": opt_g2, "D": opt_d})
            for name, opt in (("G2", opt_g2), ("D", opt_d)):
                self.schedulers[name] = _offset_scheduler(a.scheduler, opt, self.p1, self.p2,
                                                          t.iters_per_epoch)
        weights = None
        if d.class_weights == "median_frequency":
            weights = median_frequency_weights(self.train_set, self.num_classes)
        elif d.class_weights == "enet":
            weights = enet_weights(self.train_set, self.num_classes)
        self.class_weights = None if weights is None else weights.to(self.precision.device)
        crop = [max(8, round(c)) for c in d.crop_size]
        lo, hi = d.scale_range
        tf = train_transforms(tuple(crop), (lo * d.resize, hi * d.resize))
        source = InMemory(self.train_set) if d.cache else self.train_set
        self.data = SegStepBatches(source, tf, t.batch_size, cfg.engine.seed,
                                   self.total_steps, distributed.shard_slots(t.batch_size))
        self.collapses = 0
        self.phase1_miou: float | None = None
        self.d_low_steps = 0
        self.step = 0

    # -- engine interface --
    def batches(self, start_step: int):
        return batch_stream(self.data, start_step, self.total_steps, self.cfg.data.workers)

    @property
    def lam(self) -> float:
        a = self.cfg.train.adversarial
        return a.lam * a.damping ** self.collapses

    def train_step(self, batch, step: int) -> dict[str, float]:
        self.step = step
        images, masks = (self.precision.input(t) for t in batch)
        masks = masks.to(self.precision.device)
        self.G.train()
        if step < self.p1:
            return self._phase1_step(images, masks)
        if self.phase1_miou is None and self.cfg.train.adversarial.guard:
            # phase 2 started from a phase-1 run (init_from): its mIoU is the guard's reference
            self.phase1_miou = self._evaluate()["miou"]
        return self._phase2_step(images, masks)

    def _ce_normalizer(self, masks):
        """None on one process. Under torchrun: the global batch's CE divisor / processes, so
        that DDP's gradient average is the gradient of the global batch's CE even when the
        shards hold different numbers of labelled pixels."""
        if distributed.size() == 1:
            return None
        local = ce_normalizer(masks, self.num_classes, IGNORE_INDEX, self.class_weights)
        return distributed.all_sum(local) / distributed.size()

    def _phase1_step(self, images, masks):
        opt = self.optimizers["G1"]
        with self.precision.autocast():
            logits = self.G_net(images)
        ce = cross_entropy(logits, masks, IGNORE_INDEX, self.class_weights,
                           self._ce_normalizer(masks))
        opt.zero_grad(set_to_none=True)
        self.precision.backward_step(ce, opt, self.G.parameters())
        return {"ce": ce.item()}

    def _phase2_step(self, images, masks):
        a = self.cfg.train.adversarial
        opt_g, opt_d = self.optimizers["G2"], self.optimizers["D"]
        self.D.train()
        with self.precision.autocast():
            logits = self.G_net(images)
        # A's label-branch inputs in the engine's memory format (channels_last) too
        probs = self.precision.input(logits.float().softmax(1))
        real = self.precision.input(embed_ground_truth(probs.detach(), masks, eps=a.eps,
                                                       ignore_index=IGNORE_INDEX))
        # 1) A with G frozen (G's output detached): A's gradients are all-reduced by D_net.
        # Real and fake share the images: one image-branch pass, label branch + fusion on both
        # maps as one batch (the resnet image branch's BatchNorm running stats update once)
        with self.precision.autocast():
            d_real, d_fake = self.D_net(images, real, probs.detach())
        d_loss = discriminator_loss(d_real.float(), d_fake.float())
        opt_d.zero_grad(set_to_none=True)
        self.precision.backward_step(d_loss, opt_d, self.D.parameters())
        # 2) G with A frozen: the bare A (no DDP), its parameters need no gradient all-reduce;
        # the gradient reaches G through probs, and G_net all-reduces G's gradients
        self.D.requires_grad_(False)
        with self.precision.autocast():
            d_fake_g = self.D(images, probs)
        total, ce, adv = generator_loss(logits.float(), masks, d_fake_g.float(), lam=self.lam,
                                        mode=a.loss, ignore_index=IGNORE_INDEX,
                                        class_weights=self.class_weights,
                                        normalizer=self._ce_normalizer(masks))
        opt_g.zero_grad(set_to_none=True)
        self.precision.backward_step(total, opt_g, self.G.parameters())
        self.D.requires_grad_(True)  # keeps a frozen image branch frozen (freeze_image_branch)
        acc_real, acc_fake = discriminator_accuracy(d_real.detach(), d_fake.detach())
        d = float(distributed.all_sum(d_loss.detach())) / distributed.size()  # same everywhere
        if a.guard:
            self.d_low_steps = self.d_low_steps + 1 if d < a.d_loss_floor else 0
            if self.d_low_steps >= a.patience:
                self.d_low_steps = 0
                raise Rollback(f"adversarial network winning outright (D loss < "
                               f"{a.d_loss_floor} for {a.patience} steps) at step {self.step}")
        return {"ce": ce.item(), "adv": adv.item(), "g_total": total.item(), "d_loss": d,
                "d_acc_real": float(acc_real), "d_acc_fake": float(acc_fake), "lambda": self.lam}

    @torch.no_grad()
    def _evaluate(self) -> dict:
        d = self.cfg.data
        return evaluate_dataset(self.G, self.val_set, num_classes=self.num_classes,
                                device=self.precision.device, autocast=self.precision.autocast,
                                channels_last=self.precision.channels_last,
                                limit=d.val_limit or None, resize=d.resize,
                                shard=(distributed.rank(), distributed.size()))

    def validate(self) -> dict[str, float]:
        res = self._evaluate()
        out = {"miou": res["miou"], "pixel_acc": res["pixel_acc"]}
        step = self.step + 1
        a = self.cfg.train.adversarial
        if step <= self.p1:
            self.phase1_miou = res["miou"]
        elif a.guard and self.phase1_miou is not None and \
                res["miou"] < self.phase1_miou - a.miou_margin:
            raise Rollback(f"val mIoU {res['miou']:.4f} fell below the phase-1 value "
                           f"{self.phase1_miou:.4f} - {a.miou_margin} at step {step}")
        return out

    def after_rollback(self, reason: str) -> str:
        if self.step < self.p1 or not self.p2:
            return "phase 1: replaying with the same settings"
        self.collapses += 1
        self._apply_damping()
        a = self.cfg.train.adversarial
        return f"lambda -> {self.lam:.3g}, D lr x{a.damping ** self.collapses:.3g}"

    def _apply_damping(self):
        """A's lr = configured lr * damping^collapses (lambda follows via ``self.lam``)."""
        sched = self.schedulers.get("D")
        if sched is None:
            return
        a = self.cfg.train.adversarial
        base = a.d_optimizer.lr * a.damping ** self.collapses
        sched.base_lrs = [base] * len(sched.base_lrs)
        factor = sched.lr_lambdas[0](sched.last_epoch)
        for group in self.optimizers["D"].param_groups:
            group["lr"] = base * factor

    def signature(self) -> dict:
        m, d = self.cfg.model, self.cfg.data
        return {"task": "seg", "model": m.name, "options": dict(sorted(m.options.items())),
                "dataset": d.dataset, "num_classes": self.num_classes,
                "phase1_steps": self.p1, "phase2_steps": self.p2,
                "batch_size": self.cfg.train.batch_size, "seed": self.cfg.engine.seed}

    def extra_state(self) -> dict:
        return {"precision": self.precision.state_dict(), "collapses": self.collapses,
                "phase1_miou": self.phase1_miou, "d_low_steps": self.d_low_steps,
                "classes": list(self.train_set.classes),
                "palette": [list(c) for c in self.train_set.palette]}

    def load_extra_state(self, state: dict) -> None:
        self.precision.load_state_dict(state.get("precision"))
        # damping survives a rollback (the checkpoint predates it) and a restart
        self.collapses = max(self.collapses, int(state.get("collapses", 0)))
        if state.get("phase1_miou") is not None:
            self.phase1_miou = state["phase1_miou"]
        self.d_low_steps = int(state.get("d_low_steps", 0))
        self._apply_damping()

    def export(self, path: Path) -> None:
        save_seg_weights(path, self.G, self.cfg, self.train_set)


def _offset_scheduler(cfg: SchedulerConfig, opt, start: int, length: int, ipe: int):
    """A per-step schedule that begins at step ``start`` (the phase switch)."""
    inner = build_scheduler(cfg, opt, length, ipe)
    fn = inner.lr_lambdas[0]
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: fn(max(0, s - start)))


# ---- weights ---------------------------------------------------------------------------------
SEG_WEIGHTS_FORMAT = "densekit-seg-weights-1"
# data set -> its packaged weights file in densekit/weights/ (written by scripts/ship_seg_weights.py)
SHIPPED_SEG_WEIGHTS = {"camvid": "camvid_swiftnet_r18.pt"}


def shipped_seg_weights(dataset: str = "camvid") -> Path | None:
    """The segmentation weights shipped in the package for ``dataset``, if installed."""
    name = SHIPPED_SEG_WEIGHTS.get(dataset)
    if name is None:
        return None
    path = Path(str(resources.files("densekit") / "weights" / name))
    return path if path.is_file() else None


def save_seg_weights(path: Path, model: nn.Module, cfg: SegConfig, dataset) -> None:
    write_seg_weights(path, {"model": cfg.model.name, "options": dict(cfg.model.options),
                             "classes": list(dataset.classes),
                             "palette": [list(c) for c in dataset.palette],
                             "resize": cfg.data.resize, "state_dict": model.state_dict(),
                             "config": to_dict(cfg)})


def write_seg_weights(path: Path, state: dict, *, half: bool = False) -> None:
    """Write ``state`` (read_seg_weights' fields; ``config`` and ``meta`` when present) as a
    weights file, atomically. ``half``: floating-point tensors stored as float16 (half the
    size; :func:`read_seg_weights` gives them back as float32)."""
    tensors = {}
    for k, v in state["state_dict"].items():
        v = v.detach().cpu().contiguous()
        if half and v.is_floating_point():
            v = v.half()
            if not torch.isfinite(v).all():
                raise DensekitError(f"{path}: {k} does not fit in float16 (values up to "
                                    f"{state['state_dict'][k].abs().max().item():.3g})")
        tensors[k] = v
    out = {"format": SEG_WEIGHTS_FORMAT, "model": state["model"],
           "options": dict(state["options"]), "classes": list(state["classes"]),
           "palette": [list(c) for c in state["palette"]], "resize": state.get("resize", 1.0),
           "state_dict": tensors}
    for key in ("config", "meta"):
        if state.get(key):  # plain JSON values: the file must load with weights_only=True
            out[key] = json.loads(json.dumps(state[key]))
    atomic_torch_save(out, path)


def read_seg_weights(path: str | Path) -> dict:
    """A weights file or training checkpoint as {model, options, classes, palette, resize,
    state_dict (float tensors as float32), config, meta ({} when absent), dataset (the data set
    it was trained on, or None)}."""
    from densekit.engine.checkpoint import load_checkpoint

    path = Path(path)
    state = load_checkpoint(path)
    if state.get("format") == "densekit-checkpoint-1":
        cfg = state["config"]
        if cfg.get("task") != "seg":
            raise DensekitError(f"{path}: not a segmentation checkpoint")
        task = state["task"]
        state = {"model": cfg["model"]["name"], "options": cfg["model"]["options"],
                 "classes": task["classes"], "palette": task["palette"],
                 "resize": cfg["data"]["resize"], "state_dict": state["modules"]["G"],
                 "config": cfg}
    elif state.get("format") != SEG_WEIGHTS_FORMAT:
        raise DensekitError(f"{path}: not a densekit segmentation weights file")
    state["state_dict"] = {k: v.float() if v.is_floating_point() else v
                           for k, v in state["state_dict"].items()}
    state["meta"] = dict(state.get("meta") or {})
    state["dataset"] = state["meta"].get("dataset") or \
        (state.get("config") or {}).get("data", {}).get("dataset")
    return state


def load_generator_weights(model: nn.Module, path: str | Path) -> None:
    state = read_seg_weights(path)
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as e:
        raise DensekitError(f"{path}: weights do not fit the generator "
                            f"({str(e).splitlines()[0][:120]})") from None


def load_seg_model(path: str | Path | None = None, option: str = "--weights"
                   ) -> tuple[nn.Module, dict]:
    """The generator of a weights file or checkpoint (None: the shipped CamVid weights) in
    eval mode, and read_seg_weights' dict plus ``path``. ``option`` names the setting in the
    error when nothing is shipped."""
    if path is None:
        path = shipped_seg_weights("camvid")
        if path is None:
            raise DensekitError(f"{option}: no shipped CamVid segmentation weights in this "
                                f"installation (densekit/weights/{SHIPPED_SEG_WEIGHTS['camvid']})"
                                "; pass a weights file from 'densekit seg train'")
    state = read_seg_weights(path)
    model = build_generator(SegModelConfig(name=state["model"], options=state["options"]),
                            len(state["classes"]))
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as e:
        raise DensekitError(f"{path}: weights do not fit {state['model']} "
                            f"({str(e).splitlines()[0][:120]})") from None
    state["path"] = Path(path)
    return model.eval(), state


# ---- entry point -----------------------------------------------------------------------------
def train(config: str | None, overrides: list[str], resume: str | None = None) -> dict:
    from densekit.tasks.sr import format_out_dir

    cfg = load_config(SegConfig, config, overrides)
    cfg.engine.out_dir = format_out_dir(cfg.engine.out_dir, model=cfg.model.name.replace(
        "torchvision:", ""), dataset=cfg.data.dataset, seed=cfg.engine.seed)
    task = SegTask(cfg)
    t = cfg.train
    cmd = "densekit seg train" + (f" --config {shlex.quote(config)}" if config else "") + "".join(
        f" --set {shlex.quote(o)}" for o in overrides)
    trainer = Trainer(task, cfg.engine, total_steps=task.total_steps,
                      iters_per_epoch=t.iters_per_epoch,
                      val_every=t.val_every_epochs * t.iters_per_epoch,
                      batch_size=t.batch_size, config_dict=to_dict(cfg), command=cmd,
                      extra_val_steps={task.p1} if task.p1 and task.p2 else set())
    try:
        return trainer.fit(resume)
    finally:
        distributed.shutdown()
