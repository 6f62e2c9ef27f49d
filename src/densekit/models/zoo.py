"""The model zoo: the weights shipped in the package, each as a :class:`Weights` record.

The records are read from ``densekit/weights/zoo.json``, which ``scripts/zoo_manifest.py`` writes
from the weights files themselves and from the project's own evaluation commands (the metrics
carry the command that measured them). Like torchvision's weights enums, a record carries
everything a user needs besides the tensors: the file and its SHA-256, the scale (SR) or the
classes, palette and input normalisation (segmentation), parameters, FLOPs per output pixel,
metrics with the data set they were measured on, and the training command.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from densekit.errors import DensekitError

__all__ = ["Weights", "list_weights", "get_weights", "default_weights", "MANIFEST",
           "REAL_PHOTO_MAX_QUALITY", "real_photo_rule"]

MANIFEST = "zoo.json"
# ``sr upscale`` and ``densekit.upscale`` give a JPEG whose estimated quality is at most this (per
# scale) the real-photo weights (degradation "real") by default: the highest measured quality at
# which they score at least the clean weights on Set5 and Set14; above it the clean weights score
# higher (docs/results/results-sr.md, real-photo weights)
REAL_PHOTO_MAX_QUALITY = {2: 90, 4: 70}


def real_photo_rule() -> str:
    """:data:`REAL_PHOTO_MAX_QUALITY` in words: "90 at x2, 70 at x4"."""
    return ", ".join(f"{q} at x{s}" for s, q in sorted(REAL_PHOTO_MAX_QUALITY.items()))


@dataclass(frozen=True)
class Weights:
    """One shipped weights file and its metadata."""

    name: str  # e.g. "hdcn_x2", "camvid_swiftnet_r18"
    task: str  # "sr" or "seg"
    model: str  # the builder's name, e.g. "hdcn"
    file: str  # file name in densekit/weights/
    sha256: str
    params: int
    flops_per_pixel: float  # forward FLOPs per output pixel
    metrics: dict = field(default_factory=dict)  # {data set: {metric: value}}
    eval_command: str = ""  # the command that measured ``metrics``
    train_command: str = ""
    scale: int | None = None  # SR
    channels: int | None = None  # SR: 1 (Y of YCbCr) or 3
    dataset: str | None = None  # seg: the data set it was trained on
    classes: tuple[str, ...] = ()  # seg
    palette: tuple[tuple[int, int, int], ...] = ()  # seg
    normalization: dict = field(default_factory=dict)  # seg: mean, std of the RGB / 255 input
    # SR: the LR images it was trained on: "bicubic" (the protocol's clean downscale) or
    # "real" (also blurred, noised and JPEG-compressed: data.degrade, for photos)
    degradation: str = "bicubic"

    @property
    def path(self) -> Path:
        """The weights file in the installed package."""
        return Path(str(resources.files("densekit") / "weights" / self.file))

    def verify(self) -> Path:
        """The file's path after checking that it exists and matches its SHA-256."""
        path = self.path
        if not path.is_file():
            raise DensekitError(f"weights {self.name}: {path} is missing from this installation")
        if file_sha256(path) != self.sha256:
            raise DensekitError(f"weights {self.name}: {path} does not match its SHA-256 "
                                "(damaged or replaced file)")
        return path


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_from_dict(entry: dict) -> Weights:
    entry = dict(entry)
    entry["classes"] = tuple(entry.get("classes") or ())
    entry["palette"] = tuple(tuple(c) for c in entry.get("palette") or ())
    return Weights(**entry)


@lru_cache(maxsize=1)
def _manifest() -> dict[str, Weights]:
    ref = resources.files("densekit") / "weights" / MANIFEST
    try:
        entries = json.loads(ref.read_text())
    except FileNotFoundError:
        return {}
    return {e["name"]: weights_from_dict(e) for e in entries}


def list_weights(task: str | None = None, model: str | None = None) -> list[Weights]:
    """The shipped weights, optionally only those of one task ("sr", "seg") or model."""
    return [w for w in _manifest().values()
            if (task is None or w.task == task) and (model is None or w.model == model)]


def get_weights(name: str) -> Weights:
    """The record called ``name`` (see :func:`list_weights`)."""
    try:
        return _manifest()[name]
    except KeyError:
        known = ", ".join(_manifest()) or "none"
        raise DensekitError(f"weights: unknown name {name!r} (shipped: {known})") from None


def default_weights(model: str, *, scale: int | None = None,
                    degradation: str = "bicubic") -> Weights | None:
    """The shipped weights of ``model`` (SR: at ``scale``, trained for ``degradation``:
    "bicubic", the default, or "real", for photos), or None when nothing ships."""
    for w in list_weights(model=model):
        if w.task == "seg" or (w.scale == scale and w.degradation == degradation):
            return w
    return None


def headline(w: Weights) -> str:
    """The weights' metrics in a few words, e.g. "Set5 37.22 / 0.9573, Set14 32.81 / 0.9104"
    (PSNR dB / SSIM) or "mIoU 68.58%, pixel accuracy 92.36%"."""
    if w.task == "sr":
        return ", ".join(f"{d} {m['psnr']:.2f} / {m['ssim']:.4f}" for d, m in w.metrics.items())
    return ", ".join(f"mIoU {100 * m['miou']:.2f}%, pixel accuracy {100 * m['pixel_acc']:.2f}%"
                     for m in w.metrics.values())


def markdown_table(records: list[Weights] | None = None) -> str:
    """The model zoo as a Markdown table, each row with the commands that measured and trained
    it."""
    records = list_weights() if records is None else records
    lines = ["| weights | model | params | GFLOPs / output Mpx | result | measured by | trained by |",
             "|---|---|---:|---:|---|---|---|"]
    for w in records:
        what = f"x{w.scale}" if w.task == "sr" else f"{w.dataset}, {len(w.classes)} classes"
        lines.append(f"| `{w.name}` | {w.model} {what} | {w.params:,} | "
                     f"{w.flops_per_pixel * 1e6 / 1e9:,.1f} | {headline(w)} | "
                     f"`{w.eval_command}` | `{w.train_command}` |")
    return "\n".join(lines) + "\n"
