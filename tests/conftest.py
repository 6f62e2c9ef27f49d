import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def shared_data() -> Path | None:
    """../shared/data beside the repository (or $DENSEKIT_SHARED/data), if present."""
    env = os.environ.get("DENSEKIT_SHARED")
    for cand in ([Path(env) / "data", Path(env)] if env else []) + [
            Path(__file__).resolve().parents[2] / "shared" / "data"]:
        if (cand / "sr").is_dir():
            return cand
    return None


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """torch on one thread for the test (fast and steady on a small, busy CI machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def smooth_image(rng, h, w, channels=3):
    """A smooth, textured natural-ish uint8 image (so SR has something to learn)."""
    small = rng.random((h // 8 + 2, w // 8 + 2, channels))
    img = Image.fromarray((small * 255).astype(np.uint8).squeeze())
    img = img.resize((w, h), Image.BICUBIC)
    arr = np.asarray(img).astype(np.float64)
    arr += rng.normal(0, 6, arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


@pytest.fixture
def sr_folder(tmp_path):
    """A folder of 4 small RGB images and 1 grayscale image."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "hr"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(rng, 60 + 4 * i, 72)).save(folder / f"im{i}.png")
    Image.fromarray(smooth_image(rng, 64, 64, 1)).save(folder / "gray.png")
    return folder


def tiny_sr_config(folder, out_dir, **extra):
    """Overrides for a seconds-long SR training run on ``folder``."""
    sets = {
        "model.name": "hdcn", "model.scale": 2,
        "model.options": "{features: 8, init: kaiming}",
        "data.train": f"[{folder}]", "data.val": f"[{folder}]", "data.patch_size": 24,
        "data.workers": 0, "train.epochs": 3, "train.iters_per_epoch": 2,
        "train.batch_size": 4, "train.val_every_epochs": 0, "train.scheduler.step_epochs": 1,
        "engine.out_dir": str(out_dir), "engine.ckpt_every": 2, "engine.keep_ckpts": 10,
        "engine.progress": False, "engine.tensorboard": False, "engine.precision": "fp32",
        "engine.log_every": 1,
    }
    sets.update(extra)
    return [f"{k}={v}" for k, v in sets.items()]


def tiny_camvid(root: Path) -> Path:
    """A CamVid (SegNet layout) fixture: one 6x8 image per split, all labelled class 3."""
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        Image.new("RGB", (8, 6)).save(root / split / "a.png")
        Image.fromarray(np.full((6, 8), 3, np.uint8)).save(root / f"{split}annot" / "a.png")
    return root


def tiny_seg_weights(path: Path, dataset: str = "camvid", classes=None, seed: int = 0) -> Path:
    """A seg weights file as ``densekit seg train`` writes it: swiftnet_r18 of width 8 (the
    shipped architecture, untrained), trained 'on' ``dataset`` (CamVid's classes by default)."""
    from types import SimpleNamespace

    from densekit.data.seg import CAMVID_CLASSES, CAMVID_PALETTE, voc_colormap
    from densekit.tasks.seg import SegConfig, build_generator, save_seg_weights

    cfg = SegConfig()
    cfg.model.name, cfg.model.options, cfg.data.dataset = "swiftnet_r18", {"width": 8}, dataset
    classes = list(CAMVID_CLASSES if classes is None else classes)
    palette = CAMVID_PALETTE if classes == CAMVID_CLASSES else voc_colormap(len(classes))
    torch.manual_seed(seed)
    model = build_generator(cfg.model, len(classes)).eval()
    save_seg_weights(path, model, cfg, SimpleNamespace(classes=classes, palette=palette))
    return path


@pytest.fixture(scope="session")
def camvid_weights(tmp_path_factory) -> Path:
    """tiny_seg_weights of CamVid, written once per test session."""
    return tiny_seg_weights(tmp_path_factory.mktemp("seg_weights") / "camvid_tiny.pt")
