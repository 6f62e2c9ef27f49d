"""``densekit demo``: offline showcase on natural images bundled with scikit-image.

Super-resolution: each image is degraded with the evaluation protocol (modcrop, MATLAB bicubic
downscale, uint8) at x2 and x4 and restored with Bicubic and the shipped HDCN weights; the PSNR/
SSIM table (Y channel, shave = scale) is printed and side-by-side comparisons with zoomed crops
are written to the output folder.

CamVid: the shipped segmentation model (``densekit/weights/camvid_swiftnet_r18.pt``) on three
real street scenes of the CamVid val split embedded in the package (``densekit/demo_data/camvid``,
see its SOURCE.txt; the images as high-quality JPEGs, so the numbers can differ from ``seg eval``
on the original PNGs by a little): per-scene and overall mIoU (one confusion matrix over the
three scenes, the evaluation protocol) and a picture per scene, image | prediction | ground truth.

Segmentation: SS-GAN on the synthetic scenes (``densekit.data.seg.SyntheticScenes``; a stand-in
that runs offline in minutes, NOT a benchmark): phase 1 trains a light FCN-8s (width 1/4) alone,
phase 2 continues it adversarially from that checkpoint, both with ``densekit seg train``; the
validation mIoU after each phase is printed and a picture per scene shows image | ground truth |
phase 1 | SS-GAN.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from densekit.data.image_io import to_pil
from densekit.engine.precision import Precision, resolve_device, resolve_precision
from densekit.errors import DensekitError
from densekit.io import atomic_write

DEMO_IMAGES = ("astronaut", "chelsea", "coffee", "camera")


def demo_images() -> dict[str, torch.Tensor]:
    """scikit-image's bundled photos as (C, H, W) float tensors at uint8 levels."""
    try:
        from skimage import data as skdata
    except ImportError:
        raise DensekitError("the demo needs scikit-image: pip install 'densekit[demo]'") from None
    out = {}
    for name in DEMO_IMAGES:
        arr = getattr(skdata, name)()
        arr = arr[..., None] if arr.ndim == 2 else arr[..., :3]
        out[name] = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).double() / 255
    return out


def _zoom_panel(img: torch.Tensor, box, label: str, zoom: int = 3) -> Image.Image:
    pil = to_pil(img).convert("RGB")
    y0, x0, size = box
    crop = pil.crop((x0, y0, x0 + size, y0 + size)).resize((size * zoom, size * zoom),
                                                             Image.NEAREST)
    w = max(pil.width, crop.width)
    panel = Image.new("RGB", (w, pil.height + crop.height + 24), "white")
    panel.paste(pil, (0, 24))
    panel.paste(crop, (0, pil.height + 24))
    draw = ImageDraw.Draw(panel)
    draw.text((4, 4), label, fill="black")
    draw.rectangle((x0, y0 + 24, x0 + size, y0 + 24 + size), outline="red", width=2)
    return panel


def side_by_side(panels: list[Image.Image]) -> Image.Image:
    w = sum(p.width for p in panels) + 8 * (len(panels) - 1)
    h = max(p.height for p in panels)
    out = Image.new("RGB", (w, h), "white")
    x = 0
    for p in panels:
        out.paste(p, (x, 0))
        x += p.width + 8
    return out


def run_sr_demo(out_dir: Path, scales=(2, 4)) -> list[dict]:
    from densekit.data.sr import make_lr
    from densekit.metrics.sr import modcrop
    from densekit.tasks.sr import load_sr_model
    from densekit.tasks.sr_eval import evaluate_image

    device = resolve_device("auto")
    prec = Precision(device, resolve_precision("auto", device))
    images = demo_images()
    rows = []
    print(f"SR demo: {len(images)} scikit-image photos, x{' and x'.join(map(str, scales))}, "
          f"{device.type} {prec.mode}")
    for s in scales:
        models = {"bicubic": load_sr_model("bicubic", s), "hdcn": load_sr_model("hdcn", s)}
        models = {k: prec.prepare(m) for k, m in models.items()}
        for name, img in images.items():
            hr = modcrop(img, s)
            lr = make_lr(hr, s, quantize=True)  # the LR image as it would be stored (uint8)
            for mname, model in models.items():
                r = evaluate_image(model, hr, s, device=device, autocast=prec.autocast)
                rows.append({"image": name, "scale": s, "model": mname, **r})
            _write_comparison(out_dir / f"{name}_x{s}.png", hr, lr, models, s, device, prec)
    return rows


def _write_comparison(path: Path, hr, lr, models, s, device, prec) -> None:
    from densekit.tasks.sr_upscale import upscale_image

    h, w = hr.shape[-2:]
    size = min(96, h // 3, w // 3)
    box = (h // 2 - size // 2, w // 2 - size // 2, size)
    panels = []
    for mname, model in models.items():
        out, _ = upscale_image(model, lr.float(), autocast=prec.autocast, device=device)
        panels.append(_zoom_panel(out, box, f"{mname} x{s}"))
    panels.append(_zoom_panel(hr.float(), box, "original (HR)"))
    img = side_by_side(panels)
    atomic_write(path, lambda f: img.save(f, format="PNG"))


def print_sr_table(rows: list[dict]) -> None:
    print(f"\n{'image':<10} {'scale':>5} {'Bicubic PSNR/SSIM':>20} {'HDCN PSNR/SSIM':>20} "
          f"{'gain':>7}")
    keyed = {(r["image"], r["scale"], r["model"]): r for r in rows}
    for (img, s, m), r in keyed.items():
        if m != "bicubic":
            continue
        h = keyed[(img, s, "hdcn")]
        print(f"{img:<10} {'x' + str(s):>5} {r['psnr']:>11.2f}/{r['ssim']:.4f} "
              f"{h['psnr']:>11.2f}/{h['ssim']:.4f} {h['psnr'] - r['psnr']:>+6.2f}")
    for s in sorted({r["scale"] for r in rows}):
        b = [r["psnr"] for r in rows if r["scale"] == s and r["model"] == "bicubic"]
        h = [r["psnr"] for r in rows if r["scale"] == s and r["model"] == "hdcn"]
        print(f"{'mean':<10} {'x' + str(s):>5} {np.mean(b):>11.2f}        "
              f"{np.mean(h):>11.2f}        {np.mean(h) - np.mean(b):>+6.2f}")


# ---- CamVid: the shipped model on real street scenes ------------------------------------------
def camvid_demo_root() -> Path:
    """The embedded CamVid scenes, in the SegNet layout (val/ and valannot/)."""
    return Path(str(resources.files("densekit") / "demo_data" / "camvid"))


def run_camvid_demo(out_dir: Path) -> dict:
    """The shipped CamVid model on the embedded val scenes; returns {"images": {name: mIoU},
    "miou": mIoU of one confusion matrix over all of them, "pixel_acc"} and writes one picture
    per scene (image | prediction | ground truth, with a colour legend)."""
    from densekit.data.seg import CamVid
    from densekit.metrics.seg import ConfusionMatrix
    from densekit.tasks.seg import load_seg_model
    from densekit.tasks.seg_eval import normalize, predict_logits

    model, meta = load_seg_model(None, option="densekit demo --part camvid")
    device = resolve_device("auto")
    prec = Precision(device, resolve_precision("auto", device))
    model = prec.prepare(model)
    data = CamVid(camvid_demo_root(), "val")
    if list(meta["classes"]) != data.classes:
        raise DensekitError(f"{meta['path']}: trained for classes {meta['classes']}, not "
                            "CamVid's")
    print(f"\nCamVid demo: the shipped {meta['model']} on {len(data)} street scenes of the "
          f"CamVid val split, {device.type} {prec.mode}")
    out_dir.mkdir(parents=True, exist_ok=True)
    total = ConfusionMatrix(len(data.classes), ignore_index=data.ignore_index)
    per_image = {}
    for i, (img_path, _) in enumerate(data.files):
        image, mask = data[i]
        x = prec.input(normalize(torch.as_tensor(image)[None]))
        probs = predict_logits(model, x, num_classes=len(data.classes),
                               resize=meta.get("resize", 1.0), autocast=prec.autocast)
        pred = probs.argmax(1)[0].cpu()
        cm = ConfusionMatrix(len(data.classes), ignore_index=data.ignore_index)
        cm.update(pred[None], torch.as_tensor(mask)[None])
        total.merge(cm)
        r = cm.compute()
        per_image[img_path.stem] = r["miou"]
        print(f"{img_path.stem:<14} mIoU {100 * r['miou']:5.1f}%  pixel accuracy "
              f"{100 * r['pixel_acc']:5.1f}%")
        _write_camvid_figure(out_dir / f"{img_path.stem}.png", torch.as_tensor(image),
                             pred.numpy(), np.asarray(mask), data, r["miou"])
    res = total.compute()
    print(f"{'all ' + str(len(data)):<14} mIoU {100 * res['miou']:5.1f}%  pixel accuracy "
          f"{100 * res['pixel_acc']:5.1f}%  (one confusion matrix over the scenes)")
    return {"images": per_image, "miou": res["miou"], "pixel_acc": res["pixel_acc"]}


def _write_camvid_figure(path: Path, image: torch.Tensor, pred: np.ndarray, mask: np.ndarray,
                         data, miou: float) -> None:
    palette = np.asarray(data.palette, np.uint8)
    truth = palette[mask.clip(0, len(palette) - 1)]
    truth[mask == data.ignore_index] = 0  # unlabelled: black
    panels = []
    for label, arr in (("image", image.permute(1, 2, 0).numpy()),
                       (f"prediction (mIoU {100 * miou:.1f}%)", palette[pred]),
                       ("ground truth (black: unlabelled)", truth)):
        panel = Image.new("RGB", (arr.shape[1], arr.shape[0] + 20), "white")
        panel.paste(Image.fromarray(np.ascontiguousarray(arr)), (0, 20))
        ImageDraw.Draw(panel).text((4, 4), label, fill="black")
        panels.append(panel)
    strip = side_by_side(panels)
    legend = Image.new("RGB", (strip.width, 22), "white")
    draw = ImageDraw.Draw(legend)
    x = 4
    for name, colour in zip(data.classes, data.palette):
        draw.rectangle((x, 5, x + 12, 17), fill=tuple(colour))
        draw.text((x + 16, 5), name, fill="black")
        x += 22 + int(draw.textlength(name))
    img = Image.new("RGB", (strip.width, strip.height + legend.height), "white")
    img.paste(strip, (0, 0))
    img.paste(legend, (0, strip.height))
    atomic_write(path, lambda f: img.save(f, format="PNG"))


# ---- segmentation ------------------------------------------------------------------------------
# The demo's SS-GAN schedule on the synthetic scenes (``densekit seg train`` overrides).
SEG_DEMO_DATA = ["data.dataset=synthetic",
                 "data.options={num_images: 48, size: [64, 64], num_classes: 5}",
                 "data.crop_size=[64, 64]", "data.scale_range=[0.75, 1.25]", "data.workers=0"]
SEG_DEMO_TRAIN = ["model.name=fcn8s_vgg16", "model.options={width: 0.25}",
                  "train.iters_per_epoch=50", "train.batch_size=2", "train.val_every_epochs=3",
                  "train.optimizer.lr=1.0e-3", "engine.progress=false",
                  "engine.tensorboard=false", "engine.keep_ckpts=1"]
SEG_DEMO_PHASES = {"phase1": ["train.phase1_epochs=6", "train.phase2_epochs=0"],
                   "ssgan": ["train.phase1_epochs=0", "train.phase2_epochs=3",
                             "train.adversarial.g_optimizer.lr=1.0e-4"]}


def run_seg_demo(out_dir: Path, *, phases: dict | None = None, scenes: int = 4) -> dict:
    """Phase 1, then SS-GAN phase 2 from its weights; returns {"phase1": mIoU, "ssgan": mIoU}
    on the synthetic validation scenes and writes one comparison picture per scene."""
    import tempfile

    from densekit.tasks.seg import load_seg_model, train

    phases = SEG_DEMO_PHASES if phases is None else phases
    print(f"\nSS-GAN demo: synthetic scenes (a stand-in, not a benchmark), "
          f"light FCN-8s, phase 1 then phase 2")
    out_dir.mkdir(parents=True, exist_ok=True)
    miou, models = {}, {}
    with tempfile.TemporaryDirectory(prefix="densekit-demo-") as tmp:
        weights = None
        for name, sets in phases.items():
            run = Path(tmp) / name
            extra = [f"train.init_from={weights}"] if weights else []
            t0 = time.perf_counter()
            res = train(None, SEG_DEMO_DATA + SEG_DEMO_TRAIN + sets + extra +
                        [f"engine.out_dir={run}"])
            weights = run / "weights.pt"
            miou[name] = res["miou"]
            models[name], meta = load_seg_model(weights)
            print(f"{name}: val mIoU {100 * res['miou']:.1f}%, pixel accuracy "
                  f"{100 * res['pixel_acc']:.1f}% ({time.perf_counter() - t0:.0f} s)")
    _write_seg_comparisons(out_dir, models, meta, scenes)
    gain = 100 * (miou["ssgan"] - miou["phase1"])
    print(f"mIoU after phase 1 (G alone): {100 * miou['phase1']:.1f}%, after phase 2 (SS-GAN): "
          f"{100 * miou['ssgan']:.1f}% ({gain:+.1f} points; one seed on a toy set: "
          f"not evidence either way)")
    return miou


def _write_seg_comparisons(out_dir: Path, models: dict, meta: dict, scenes: int) -> None:
    from densekit.data.seg import build_seg_dataset
    from densekit.config import load_config
    from densekit.tasks.seg import SegConfig, dataset_kwargs
    from densekit.tasks.seg_eval import normalize, predict_logits

    cfg = load_config(SegConfig, None, SEG_DEMO_DATA)
    val = build_seg_dataset("synthetic", None, cfg.data.val_split, **dataset_kwargs(cfg.data))
    palette = np.asarray(meta["palette"], np.uint8)
    for i in range(min(scenes, len(val))):
        image, mask = val[i]
        rgb = torch.as_tensor(image)
        panels = [("image", rgb.permute(1, 2, 0).numpy()),
                  ("ground truth", palette[np.asarray(mask).clip(0, len(palette) - 1)])]
        for name, model in models.items():
            with torch.no_grad():
                probs = predict_logits(model.eval(), normalize(rgb[None]),
                                       num_classes=len(meta["classes"]))
            panels.append((name, palette[probs.argmax(1)[0].numpy()]))
        pils = []
        for label, arr in panels:
            big = Image.fromarray(np.ascontiguousarray(arr)).resize(
                (arr.shape[1] * 3, arr.shape[0] * 3), Image.NEAREST)
            panel = Image.new("RGB", (big.width, big.height + 20), "white")
            panel.paste(big, (0, 20))
            ImageDraw.Draw(panel).text((4, 4), label, fill="black")
            pils.append(panel)
        img = side_by_side(pils)
        atomic_write(out_dir / f"scene{i}.png", lambda f, img=img: img.save(f, format="PNG"))


def run_demo(output: str | Path = "demo_out",
             parts: tuple[str, ...] = ("sr", "camvid", "seg")) -> None:
    from densekit.tasks.seg.weights import shipped_seg_weights

    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if "sr" in parts:
        rows = run_sr_demo(out_dir / "sr")
        print_sr_table(rows)
        print(f"\ncomparison images (Bicubic | HDCN | original, zoomed crops): {out_dir / 'sr'}")
    if "camvid" in parts:
        if len(parts) > 1 and shipped_seg_weights("camvid") is None:
            print("\nCamVid demo skipped: this installation has no shipped CamVid weights")
        else:
            run_camvid_demo(out_dir / "camvid")
            print(f"CamVid pictures (image | prediction | ground truth): {out_dir / 'camvid'}")
    if "seg" in parts:
        run_seg_demo(out_dir / "seg")
        print(f"segmentation pictures (image | ground truth | phase 1 | SS-GAN): "
              f"{out_dir / 'seg'}")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
