"""The configuration of a segmentation run (``configs/seg/*.yaml``) and what it builds: the
generator and the data set options."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from densekit.config import check, check_range
from densekit.data.seg import build_seg_dataset, pooled, split_groups
from densekit.engine.optim import OptimConfig, SchedulerConfig
from densekit.engine.trainer import EngineConfig
from densekit.errors import ConfigError
from densekit.models.seg import SEG_MODELS, TorchvisionSegAdapter, build_seg_model


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
class PhotometricConfig:
    """Photometric augmentation of the training images (``data.photometric``; off by default):
    light, colour, blur and noise differ between drives, cameras and times of day."""

    prob: float = check(0.0, min=0, max=1, help="share of samples with colour jitter and gamma")
    brightness: float = check(0.3, min=0, max=1, help="factor drawn from [1 - x, 1 + x]")
    contrast: float = check(0.3, min=0, max=1, help="factor drawn from [1 - x, 1 + x]")
    saturation: float = check(0.3, min=0, max=1, help="factor drawn from [1 - x, 1 + x]")
    hue: float = check(0.03, min=0, max=0.5, help="shift drawn from [-x, x]")
    gamma: list[float] = field(default_factory=lambda: [0.7, 1.5])
    blur_prob: float = check(0.0, min=0, max=1, help="share of samples blurred")
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 1.5])
    noise_prob: float = check(0.0, min=0, max=1, help="share of samples with Gaussian noise")
    noise_sigma: list[float] = field(default_factory=lambda: [1.0, 8.0])

    def validate(self):
        check_range("gamma", self.gamma, 0.05, 20)
        check_range("blur_sigma", self.blur_sigma, 0.01, 10)
        check_range("noise_sigma", self.noise_sigma, 0, 255)


@dataclass
class SegDataConfig:
    dataset: str = check("camvid", choices=["voc", "cityscapes", "camvid", "folder",
                                            "synthetic"])
    root: str = "../shared/data/camvid"
    train_split: str = check("train", help="the split to train on; 'train+val' joins splits")
    val_split: str = "val"
    options: dict = field(default_factory=dict, metadata={"help": "data set arguments"})
    crop_size: list[int] = field(default_factory=lambda: [360, 480])
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    resize: float = check(1.0, gt=0, max=1, help="train and infer at this fraction of the "
                                                 "resolution (0.5 = half), score at full size")
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)
    class_weights: str = check("none", choices=["none", "median_frequency", "enet"],
                               help="enet: 1 / ln(1.10 + class share of labelled pixels)")
    workers: int = check(1, min=0)
    val_limit: int = check(0, min=0, help="validate on the first N images only (0 = all)")
    val_groups: list[str] = check(default_factory=list,
                                  help="validate on held-out groups of files: glob patterns on "
                                       "the image file name (e.g. ['0006R0_*']); the images of "
                                       "train_split and val_split that a pattern matches are the "
                                       "validation set, the others the training set ([] = the "
                                       "val_split as it is)")
    cache: bool = check(False, help="keep the decoded training images in memory (CamVid train: "
                                    "~250 MB per loader worker)")
    check: bool = check(True, help="check every image/label pair before training starts")

    def validate(self):
        if len(self.crop_size) != 2 or min(self.crop_size) < 8:
            raise ConfigError(f"crop_size: expected [height, width] >= 8, got {self.crop_size}")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ConfigError(f"scale_range: expected [low, high] with 0 < low <= high, got "
                              f"{self.scale_range}")
        for i, pattern in enumerate(self.val_groups):
            if not pattern.strip():
                raise ConfigError(f"val_groups[{i}]: empty pattern")
            if pattern in self.val_groups[:i]:
                raise ConfigError(f"val_groups: {pattern!r} given twice")
        if self.val_groups and self.dataset == "synthetic":
            raise ConfigError("val_groups: not supported for the synthetic data set (generated "
                              "scenes, no files to group)")


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


def build_generator(cfg: SegModelConfig, num_classes: int) -> nn.Module:
    """The generator ``cfg`` names: a densekit segmentation model or ``torchvision:<name>``."""
    if cfg.name.startswith("torchvision:"):
        return TorchvisionSegAdapter(cfg.name.split(":", 1)[1], num_classes, **cfg.options)
    return build_seg_model(cfg.name, num_classes, pretrained=cfg.pretrained or None,
                           **cfg.options)


def dataset_kwargs(cfg: SegDataConfig) -> dict:
    """The keyword arguments of ``build_seg_dataset`` that ``cfg.options`` gives."""
    kw = dict(cfg.options)
    if cfg.dataset == "synthetic" and "size" in kw:
        kw["size"] = tuple(kw["size"])
    return kw


def _build_split(cfg: SegDataConfig, root, split: str | None):
    """The data set of ``split``; splits joined by ``+`` (``train+val``) are one data set of
    their files, each file once."""
    kw = dataset_kwargs(cfg)
    parts = split.split("+") if split and "+" in split else [split]
    if len(parts) > 1 and not all(parts):
        raise ConfigError(f"data split {split!r}: an empty name between '+' signs")
    sets = [build_seg_dataset(cfg.dataset, root, p, **kw) for p in parts]
    return sets[0] if len(sets) == 1 else pooled(sets)


def build_splits(cfg: SegDataConfig, root: str | None = None):
    """``(train_set, val_set, val_sizes)``: the data sets of ``cfg.train_split`` and
    ``cfg.val_split`` (under ``root``, default ``cfg.root``; ``train+val`` joins two splits), or
    with ``cfg.val_groups`` the images of both (each file once) divided by the groups: those a
    pattern matches validate, the others train. ``val_sizes`` is ``{pattern: images}`` ({}
    without groups)."""
    root = cfg.root if root is None else root
    train = _build_split(cfg, root, cfg.train_split)
    val = _build_split(cfg, root, cfg.val_split)
    if not cfg.val_groups:
        return train, val, {}
    return split_groups(pooled([train, val]), cfg.val_groups)


def split_dataset(cfg: SegDataConfig, split: str, root: str | None = None):
    """The data set of ``split`` as a run of ``cfg`` saw it: with ``cfg.val_groups``,
    ``cfg.val_split`` is the held-out groups and ``cfg.train_split`` the rest
    (:func:`build_splits`); any other split is its folder as it is."""
    if cfg.val_groups and split in (cfg.train_split, cfg.val_split):
        train, val, _ = build_splits(cfg, root)
        return val if split == cfg.val_split else train
    return _build_split(cfg, cfg.root if root is None else root, split)
