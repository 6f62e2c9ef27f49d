"""Helpers shared by the tests: the data beside the repository, tiny data sets, weights and
configs, command-line arguments and what a training run writes.

Data that a test needs but that is not part of the repository (``../shared/data``, the shipped
weights, the test extras) is asked for with :func:`require`: the test is skipped when it is
missing, or fails when ``DENSEKIT_REQUIRE_DATA`` is set (CI sets it, see ``.ci/run``), so a CI
machine without the data cannot pass by skipping the protocol checks.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import struct
import time
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parents[1]
REQUIRE_DATA = "DENSEKIT_REQUIRE_DATA"


# ---- data that is not in the repository ---------------------------------------------------------
def require(present: bool, what: str) -> None:
    """Skip the calling test because ``what`` is missing, or fail it when $DENSEKIT_REQUIRE_DATA
    is set (to anything but 0)."""
    if present:
        return
    if os.environ.get(REQUIRE_DATA, "0") not in ("", "0"):
        pytest.fail(f"{what} is missing ({REQUIRE_DATA} is set)", pytrace=False)
    pytest.skip(f"{what} is missing (set {REQUIRE_DATA}=1 to fail instead)",
                allow_module_level=True)


def shared_root() -> Path:
    """``../shared/data`` beside the repository, or ``$DENSEKIT_SHARED/data`` (or
    ``$DENSEKIT_SHARED`` itself when it has no ``data`` folder) when that variable is set."""
    env = os.environ.get("DENSEKIT_SHARED")
    if not env:
        return REPO.parent / "shared" / "data"
    return Path(env) / "data" if (Path(env) / "data").is_dir() else Path(env)


def shared_data(*parts: str) -> Path:
    """The folder ``PARTS`` of the shared data (:func:`shared_root`), e.g.
    ``shared_data("sr", "Set5")``; :func:`require` when it is not there."""
    path = shared_root().joinpath(*parts)
    require(path.is_dir(), str(path))
    return path


def require_module(name: str, extra: str = "test"):
    """``pytest.importorskip(name)``, or a plain import (failing) under $DENSEKIT_REQUIRE_DATA:
    the test extras (``pip install -e '.[test]'``) and the ``extra`` that provides ``name``
    are part of what CI needs."""
    try:
        return importlib.import_module(name)
    except ImportError:
        require(False, f"the module {name} (pip install -e '.[{extra}]')")


# ---- threads ------------------------------------------------------------------------------------
@contextlib.contextmanager
def one_thread():
    """torch on one thread inside (fast and steady on a small, busy CI machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


# ---- images and data sets ---------------------------------------------------------------------
def rgb(h, w, seed=0):
    """A random uint8 RGB image."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save_rgb(path, arr, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)


def save_gray_png(path, label):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label.astype(np.uint8), mode="L").save(path)


def smooth_image(rng, h, w, channels=3):
    """A smooth, textured natural-ish uint8 image (so SR has something to learn)."""
    small = rng.random((h // 8 + 2, w // 8 + 2, channels))
    img = Image.fromarray((small * 255).astype(np.uint8).squeeze())
    img = img.resize((w, h), Image.BICUBIC)
    arr = np.asarray(img).astype(np.float64)
    arr += rng.normal(0, 6, arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def png_header_bomb(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels in its header (a decompression bomb
    as far as any reader can tell before decoding) with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def camvid_label(h, w, seed):
    """A CamVid label: values 0..11 (11 = Unlabelled) in 4x4 blocks."""
    lab = np.random.default_rng(seed).integers(0, 12, (-(-h // 4), -(-w // 4))).astype(np.uint8)
    return np.kron(lab, np.ones((4, 4), np.uint8))[:h, :w]


def camvid_folder(root: Path, n: int = 3, size=(24, 32), *, val: int | None = None,
                  name=lambda i: f"s{i}.png") -> Path:
    """A CamVid data set in the SegNet layout (SPLIT/ images, SPLITannot/ labels): ``n`` train
    and ``val`` (default ``n``) val scenes; scene i is ``rgb(h, w, i)`` labelled
    ``camvid_label(h, w, i)``, in the file ``name(i)``."""
    h, w = size
    for split, count in (("train", n), ("val", n if val is None else val)):
        for i in range(count):
            save_rgb(root / split / name(i), rgb(h, w, i))
            save_gray_png(root / f"{split}annot" / name(i), camvid_label(h, w, i))
    return root


# ---- weights ----------------------------------------------------------------------------------
def random_sr_model(name, scale, **opts):
    """An SR model (1 channel) with non-trivial random weights (the paper init gives ~0
    outputs), in eval mode."""
    from densekit.models.sr import build_sr_model

    torch.manual_seed(0)
    m = build_sr_model(name, scale, 1, **opts)
    for p in m.parameters():
        torch.nn.init.normal_(p, 0, 0.05)
    return m.eval()


def sr_weights(path: Path, name: str = "hdcn", scale: int = 2, model=None, **options):
    """An SR weights file as ``densekit sr train`` writes it, of ``model`` (default: a freshly
    built ``name`` with ``options``, seed 0); returns the model in eval mode."""
    from densekit.models.sr import build_sr_model
    from densekit.tasks.sr import SRModelConfig, save_weights

    if model is None:
        torch.manual_seed(0)
        model = build_sr_model(name, scale, **options)
    save_weights(path, model, SRModelConfig(name=name, scale=scale, options=options))
    return model.eval()


def tiny_seg_weights(path: Path, dataset: str = "camvid", classes=None, seed: int = 0,
                     model: str = "swiftnet_r18", options=None) -> Path:
    """A seg weights file as ``densekit seg train`` writes it, of an untrained generator
    (default: swiftnet_r18 of width 8, the shipped architecture) trained 'on' ``dataset``
    (CamVid's classes by default)."""
    from types import SimpleNamespace

    from densekit.data.seg import CAMVID_CLASSES, CAMVID_PALETTE, voc_colormap
    from densekit.tasks.seg import SegConfig, build_generator, save_seg_weights

    cfg = SegConfig()
    cfg.model.name, cfg.data.dataset = model, dataset
    cfg.model.options = {"width": 8} if options is None else options
    classes = list(CAMVID_CLASSES if classes is None else classes)
    palette = CAMVID_PALETTE if classes == CAMVID_CLASSES else voc_colormap(len(classes))
    torch.manual_seed(seed)
    model = build_generator(cfg.model, len(classes)).eval()
    save_seg_weights(path, model, cfg, SimpleNamespace(classes=classes, palette=palette))
    return path


# ---- tiny training runs -----------------------------------------------------------------------
def _sets(defaults: dict, extra: dict) -> list[str]:
    return [f"{k}={v}" for k, v in {**defaults, **extra}.items()]


def tiny_sr_config(folder, out_dir, **extra) -> list[str]:
    """Overrides for a seconds-long SR training run on ``folder`` (6 steps)."""
    return _sets({
        "model.name": "hdcn", "model.scale": 2,
        "model.options": "{features: 8, init: kaiming}",
        "data.train": f"[{folder}]", "data.val": f"[{folder}]", "data.patch_size": 24,
        "data.workers": 0, "train.epochs": 3, "train.iters_per_epoch": 2,
        "train.batch_size": 4, "train.val_every_epochs": 0, "train.scheduler.step_epochs": 1,
        "engine.out_dir": str(out_dir), "engine.ckpt_every": 2, "engine.keep_ckpts": 10,
        "engine.progress": False, "engine.tensorboard": False, "engine.precision": "fp32",
        "engine.log_every": 1,
    }, extra)


def tiny_seg_config(out_dir, **extra) -> list[str]:
    """Overrides for a seconds-long two-phase SS-GAN run on synthetic scenes (2 + 2 epochs of 2
    steps, LR-ASPP generator)."""
    return _sets({
        "model.name": "torchvision:lraspp_mobilenet_v3_large", "data.dataset": "synthetic",
        "data.options": "{num_images: 8, size: [32, 32], num_classes: 3}",
        "data.crop_size": "[32, 32]", "data.workers": 0, "data.val_limit": 2,
        "train.phase1_epochs": 2, "train.phase2_epochs": 2, "train.iters_per_epoch": 2,
        "engine.out_dir": str(out_dir), "engine.ckpt_every": 2, "engine.keep_ckpts": 4,
        "engine.progress": False, "engine.tensorboard": False, "engine.precision": "fp32",
        "engine.log_every": 1,
    }, extra)


def set_args(sets: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [x for s in sets for x in ("--set", s)]


def metrics_rows(out_dir: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl."""
    return [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]


def wait_for_metrics(proc, out_dir: Path, timeout: float = 120) -> None:
    """Wait until the run of ``proc`` (a Popen with stdout) has logged a step."""
    metrics = out_dir / "metrics.jsonl"
    deadline = time.time() + timeout
    while not metrics.exists() or not metrics.read_text():
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()
        time.sleep(0.2)


def load_state(path: Path, key: str = "state_dict") -> dict:
    """``key`` of a weights file or checkpoint (default: a weights.pt's state dict)."""
    return torch.load(path, map_location="cpu", weights_only=True)[key]


def assert_same_state(a: dict, b: dict, rtol: float = 0.0, atol: float = 0.0) -> None:
    """Same keys and tensors (bit-equal by default); nested dicts compared key by key."""
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=atol,
                                   msg=lambda m, k=k: f"{k}: {m}")


# ---- what ran ---------------------------------------------------------------------------------
class ConvCall(NamedTuple):
    kind: str  # Conv2d or ConvTranspose2d
    training: bool  # gradients enabled
    input_channels_last: bool
    weight_channels_last: bool
    dtype: torch.dtype  # of the output: bfloat16 when autocast ran it in bf16


@contextlib.contextmanager
def conv_calls():
    """Every 2-D (transposed) convolution that runs inside, as a list of :class:`ConvCall`."""
    seen: list[ConvCall] = []
    cl = torch.channels_last

    def hook(module, args, output):
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            seen.append(ConvCall(type(module).__name__, torch.is_grad_enabled(),
                                 args[0].is_contiguous(memory_format=cl),
                                 module.weight.is_contiguous(memory_format=cl), output.dtype))

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()
