"""``densekit seg predict``: label PNGs with the data set's palette and colour overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from densekit.data.image_io import process_images, read_image
from densekit.io import atomic_write
from densekit.tasks.seg_eval import normalize, predict_logits


def label_png(labels: np.ndarray, palette: list) -> Image.Image:
    im = Image.fromarray(labels.astype(np.uint8), "P")
    flat = [c for rgb in palette for c in rgb]
    im.putpalette(flat + [0] * (768 - len(flat)))
    return im


def overlay(rgb: np.ndarray, labels: np.ndarray, palette: list, alpha: float = 0.5) -> Image.Image:
    colours = np.asarray(palette, dtype=np.float32)[labels]
    return Image.fromarray((rgb * (1 - alpha) + colours * alpha).round().astype(np.uint8), "RGB")


def rgb_uint8(img: torch.Tensor) -> torch.Tensor:
    """A (1 or 3, H, W) [0, 1] image as (3, H, W) uint8, the input of :func:`segment_image`."""
    rgb = img.expand(3, -1, -1) if img.shape[0] == 1 else img
    return torch.round(rgb * 255).to(torch.uint8)


@torch.no_grad()
def segment_image(model, meta: dict, rgb8: torch.Tensor, *, device="cpu", autocast=None,
                  **inference) -> np.ndarray:
    """The (H, W) label map of one (3, H, W) uint8 RGB image (``inference``: the options of
    :func:`predict_logits`)."""
    probs = predict_logits(model, normalize(rgb8[None]).to(device),
                           num_classes=len(meta["classes"]), resize=meta.get("resize", 1.0),
                           autocast=autocast, **inference)
    return probs.argmax(1)[0].cpu().numpy()


def output_names(rel: Path) -> list[Path]:
    """The outputs of an input at ``rel`` (its path relative to its INPUT folder), relative to
    the output folder: ``sub/NAME.EXT`` -> ``sub/NAME_label.png``, ``sub/NAME_overlay.png``."""
    return [rel.parent / f"{rel.stem}_{suffix}.png" for suffix in ("label", "overlay")]


def predict_files(model, meta: dict, inputs: list[str], out_dir: str | Path, *, device="cpu",
                  autocast=None, progress: bool = True, report=print,
                  skip_existing: bool = False, report_file: str | Path | None = None,
                  **inference) -> dict:
    """Label PNG + overlay for every input (files, and folders with their subfolders) into
    ``out_dir`` (:func:`output_names`); a bad file is reported and skipped. Returns the outcome
    of :func:`~densekit.data.image_io.process_images`."""
    model = model.to(device).eval()

    def handle(src: Path, dsts: list[Path]) -> None:
        img, _ = read_image(src)
        rgb8 = rgb_uint8(img)
        labels = segment_image(model, meta, rgb8, device=device, autocast=autocast, **inference)
        lab = label_png(labels, meta["palette"])
        ovl = overlay(rgb8.permute(1, 2, 0).numpy().astype(np.float32), labels, meta["palette"])
        written = []
        try:  # both files or neither: a label without its overlay is a partial output
            for im, dst in zip((lab, ovl), dsts):
                atomic_write(dst, lambda f, im=im: im.save(f, format="PNG"))
                written.append(dst)
        except BaseException:
            for dst in written:
                dst.unlink(missing_ok=True)
            raise

    return process_images(inputs, out_dir, handle, outputs=output_names, verb="segment",
                          progress=progress, report=report, skip_existing=skip_existing,
                          report_file=report_file)
