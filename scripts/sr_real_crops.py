"""Side-by-side crops of a real JPEG photo upscaled by bicubic, the clean HDCN weights and the
real-photo HDCN weights (docs/images/real_photo_xS.png), each made by `densekit sr upscale`.

    .venv/bin/python scripts/sr_real_crops.py [--scale 2] [--quality 70] [--out FILE]

The photo is scikit-image's rocket.jpg (a camera JPEG, 640x427), saved again as a JPEG of
``--quality`` as a web page would serve it; that file is what the three commands upscale.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
ZOOM = 2


def upscale(src: Path, out: Path, scale: int, *extra: str) -> tuple[Image.Image, str]:
    args = ["sr", "upscale", str(src), "--scale", str(scale), "-o", str(out), "--quiet", *extra]
    res = subprocess.run([sys.executable, "-m", "densekit", *args], cwd=ROOT,
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"densekit {shlex.join(args)} failed:\n{res.stderr}")
    return Image.open(out / f"{src.stem}_x{scale}.png").convert("RGB"), "densekit " + \
        shlex.join(args)


def main() -> None:
    from skimage import data

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--quality", type=int, default=70)
    p.add_argument("--box", type=int, nargs=3, default=[120, 280, 80], metavar=("Y", "X", "SIZE"),
                   help="the crop in input pixels: top, left, side")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    out = args.out or ROOT / "docs" / "images" / f"real_photo_x{args.scale}.png"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "rocket.jpg"
        Image.fromarray(data.rocket()).save(src, quality=args.quality)
        s = args.scale
        panels = [("bicubic", upscale(src, Path(tmp) / "b", s, "--model", "bicubic")),
                  (f"HDCN hdcn_x{s}", upscale(src, Path(tmp) / "c", s, "--weights", f"hdcn_x{s}")),
                  (f"HDCN-real hdcn_real_x{s} (chosen for this JPEG)",
                   upscale(src, Path(tmp) / "r", s))]
        y, x, size = args.box
        side = size * s * ZOOM
        sheet = Image.new("RGB", (3 * side + 2 * 8, side + 22), "white")
        draw = ImageDraw.Draw(sheet)
        for i, (label, (img, command)) in enumerate(panels):
            crop = img.crop((x * s, y * s, (x + size) * s, (y + size) * s))
            sheet.paste(crop.resize((side, side), Image.NEAREST), (i * (side + 8), 22))
            draw.text((i * (side + 8) + 4, 4), label, fill="black")
            print(command)
        sheet.save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
