"""The SS-GAN training task for the engine (:class:`SegTask`) and ``densekit seg train``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from densekit.config import command_line, load_config
from densekit.data.seg import (IGNORE_INDEX, InMemory, SegStepBatches, check_dataset,
                               enet_weights, median_frequency_weights, sample_mask,
                               train_transforms)
from densekit.data.stream import batch_stream
from densekit.engine import distributed
from densekit.engine.optim import SchedulerConfig, build_optimizer, build_scheduler
from densekit.engine.trainer import Rollback, format_out_dir, setup_engine, train_task
from densekit.errors import ConfigError, DensekitError
from densekit.models.seg import (build_discriminator, discriminator_accuracy, discriminator_loss,
                                 embed_ground_truth, generator_loss)
from densekit.models.seg.ssgan import ce_normalizer, cross_entropy
from densekit.tasks.seg.config import SegConfig, SegDataConfig, build_generator, build_splits
from densekit.tasks.seg.weights import load_generator_weights, save_seg_weights
from densekit.tasks.seg_eval import evaluate_dataset


def check_crop(cfg: SegDataConfig, dataset) -> None:
    """Refuse a training crop larger than the (first) training image even at the largest
    scale: every crop would then be padded with ignore pixels."""
    if not len(dataset):
        return
    h, w = sample_mask(dataset, 0).shape[-2:]
    f = cfg.scale_range[1] * cfg.resize
    ch, cw = (max(8, round(c)) for c in cfg.crop_size)
    if ch > round(h * f) or cw > round(w * f):
        raise ConfigError(f"data.crop_size: {ch}x{cw} is larger than the training images even "
                          f"at the largest scale ({h}x{w} x {f:g} = {round(h * f)}x"
                          f"{round(w * f)}); every crop would be padded with ignore pixels")


class SegTask:
    def __init__(self, cfg: SegConfig):
        self.cfg = cfg
        self.precision = setup_engine(cfg.engine, batch_size=cfg.train.batch_size)
        d, t = cfg.data, cfg.train
        # with data.val_groups: the held-out groups of both splits validate, the rest trains
        self.train_set, self.val_set, _ = build_splits(d)
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
        tf = train_transforms(tuple(crop), (lo * d.resize, hi * d.resize),
                              photometric=dataclasses.asdict(d.photometric))
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


def train(config: str | None, overrides: list[str], resume: str | None = None) -> dict:
    cfg = load_config(SegConfig, config, overrides)
    cfg.engine.out_dir = format_out_dir(cfg.engine.out_dir, model=cfg.model.name.replace(
        "torchvision:", ""), dataset=cfg.data.dataset, seed=cfg.engine.seed)
    task = SegTask(cfg)
    return train_task(task, cfg, command_line("densekit seg train", config, overrides), resume,
                      extra_val_steps={task.p1} if task.p1 and task.p2 else None)
