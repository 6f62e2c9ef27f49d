"""The two engine settings that ``densekit bench`` compares, and the SR and segmentation tasks'
training steps built from configs and timed on them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from densekit.bench.timing import counted_flops, sync
from densekit.engine.precision import resolve_precision


def paths(device: torch.device) -> dict[str, dict]:
    """The two engine settings compared: a typical reference script and densekit's default."""
    auto = resolve_precision("auto", device)
    return {"plain": {"precision": "fp32", "channels_last": False},
            "default": {"precision": auto, "channels_last": True}}


def _engine_sets(path: dict, device: torch.device) -> list[str]:
    return [f"engine.precision={path['precision']}",
            f"engine.channels_last={str(path['channels_last']).lower()}",
            f"engine.device={device}", "engine.tensorboard=false", "engine.progress=false"]


def sr_folder(root: Path, side: int) -> Path:
    """A few smooth random images to crop SR training patches from."""
    from PIL import Image

    folder = root / "sr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        small = rng.random((side // 8 + 2, side // 8 + 2, 3))
        img = Image.fromarray((small * 255).astype(np.uint8)).resize((side, side),
                                                                     Image.BICUBIC)
        img.save(folder / f"im{i}.png")
    return folder


def sr_task(name: str, path: dict, sz: dict, folder: Path, device, compile: bool = False):
    from densekit.config import load_config
    from densekit.tasks.sr import SRConfig, SRTask

    sets = [f"model.name={name}", "model.scale=2", f"data.train=[{folder}]",
            f"data.val=[{folder}]", f"data.patch_size={sz['sr_patch']}", "data.workers=0",
            f"train.batch_size={sz['sr_batch']}", "train.epochs=1", "train.iters_per_epoch=100",
            f"engine.compile={str(compile).lower()}"] + _engine_sets(path, device)
    return SRTask(load_config(SRConfig, None, sets))


def seg_task(name: str, path: dict, sz: dict, device, phase2: bool = False):
    from densekit.config import load_config
    from densekit.tasks.seg import SegConfig, SegTask

    n, h, w = sz["seg"]
    ih, iw = sz["seg_image"]
    runs = sz["seg_warmup"] + max(sz["seg_runs"], sz["plain_runs"])
    sets = [f"model.name={name}", "data.dataset=synthetic",
            f"data.options={{num_images: 4, size: [{ih}, {iw}], num_classes: 11}}",
            f"data.crop_size=[{h}, {w}]", "data.check=false", "data.workers=0",
            f"train.batch_size={n}", f"train.iters_per_epoch={runs}", "train.phase1_epochs=1",
            f"train.phase2_epochs={int(phase2)}"] + _engine_sets(path, device)
    return SegTask(load_config(SegConfig, None, sets))


def step_times(task, steps: range) -> list[float]:
    """Wall times of ``task.train_step`` on each step's batch (the batch is made first)."""
    out = []
    for step in steps:
        batch = task.data[step]
        t0 = time.perf_counter()
        task.train_step(batch, step)
        sync(task.precision.device)
        out.append(time.perf_counter() - t0)
    return out


def interleaved_step_times(task, starts: list[int], runs: int, warmup: int = 1
                           ) -> list[list[float]]:
    """Wall times of ``task.train_step``, one list per entry of ``starts`` (e.g. the first step
    of SS-GAN phase 1 and of phase 2): round r runs step ``start + r`` of every start, in
    reversed order every other round (neither kind always follows the other); the first
    ``warmup`` rounds are not timed. Interleaving exposes the compared steps to the same
    machine state, so their ratio holds where their absolute times drift."""
    out = [[] for _ in starts]
    for r in range(warmup + runs):
        order = list(enumerate(starts))
        for j, start in order[::-1] if r % 2 else order:
            (t,) = step_times(task, range(start + r, start + r + 1))
            if r >= warmup:
                out[j].append(t)
    return out


def step_flops(task, step: int) -> int:
    batch = task.data[step]  # outside the counter: the SR pipeline's resize uses matmuls
    return counted_flops(lambda: task.train_step(batch, step))


def batch_seconds(data, steps: range) -> float:
    t0 = time.perf_counter()
    for step in steps:
        data[step]
    return (time.perf_counter() - t0) / len(steps)
