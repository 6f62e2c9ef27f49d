"""Segmentation weights files: writing, reading (training checkpoints too), the weights shipped in
the package, and loading a generator ready for inference."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from densekit.config import to_dict
from densekit.engine.checkpoint import atomic_torch_save, load_checkpoint
from densekit.errors import DensekitError
from densekit.tasks.seg.config import SegConfig, SegModelConfig, build_generator

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
    atomic_torch_save(out, path, what="weights file")


def read_seg_weights(path: str | Path) -> dict:
    """A weights file or training checkpoint as {model, options, classes, palette, resize,
    state_dict (float tensors as float32), config, meta ({} when absent), dataset (the data set
    it was trained on, or None)}."""
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
