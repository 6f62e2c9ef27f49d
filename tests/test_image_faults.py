"""Bad image input and failing writes for `sr upscale` and `seg predict`: a generated fuzz suite
(every case works correctly or ends in one line naming the file, never a traceback or a partial
output file), EXIF orientation, decompression bombs, multi-frame files, and a full disk while
writing outputs."""

import errno
import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densekit.data.image_io import read_image
from densekit.tasks.sr import load_sr_model
from densekit.tasks.seg_predict import predict_files
from densekit.tasks.sr_upscale import upscale_files

META = {"classes": ["a", "b", "c"], "palette": [[0, 0, 0], [255, 0, 0], [0, 0, 255]]}


def seg_model():
    torch.manual_seed(0)
    return torch.nn.Conv2d(3, 3, 1).eval()  # any image -> logits at input size will do


# ---- generated inputs ------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height 8-bit RGB, with a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def huge_bmp(width: int, height: int) -> bytes:
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 54) + header + b"\x00" * 16


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def base_images() -> dict[str, tuple[bytes, tuple[int, int]]]:
    """name.ext -> (file bytes, (width, height) as a user sees it)."""
    rng = np.random.default_rng(0)
    w, h = 13, 9
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    gray = rgb.convert("L")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    rgba = rgb.copy()
    rgba.putalpha(gray)
    pal_t = rgb.convert("P")
    pal_t.info["transparency"] = 0
    g16 = Image.fromarray((rng.integers(0, 65536, (h, w))).astype(np.uint16))
    i32 = Image.fromarray(rng.integers(-10, 70000, (h, w)).astype(np.int32), "I")
    f32 = np.array(rng.random((h, w)), np.float32)
    f32[0, :3] = [np.nan, np.inf, -np.inf]
    return {
        "rgb.png": (encode(rgb, "PNG"), (w, h)),
        "gray.png": (encode(gray, "PNG"), (w, h)),
        "palette.png": (encode(rgb.convert("P"), "PNG"), (w, h)),
        "palette_transparent.png": (encode(pal_t, "PNG", transparency=0), (w, h)),
        "rgba.png": (encode(rgba, "PNG"), (w, h)),
        "la.png": (encode(rgba.convert("LA"), "PNG"), (w, h)),
        "bilevel.png": (encode(gray.convert("1"), "PNG"), (w, h)),
        "deep16.png": (encode(g16, "PNG"), (w, h)),
        "int32.tif": (encode(i32, "TIFF"), (w, h)),
        "float_nan.tif": (encode(Image.fromarray(f32, "F"), "TIFF"), (w, h)),
        "photo.jpg": (encode(rgb, "JPEG", quality=90), (w, h)),
        "cmyk.jpg": (encode(rgb.convert("CMYK"), "JPEG"), (w, h)),
        "gray.jpg": (encode(gray, "JPEG"), (w, h)),
        "rotated.jpg": (encode(rgb, "JPEG", exif=exif.tobytes()), (h, w)),
        "rotated.png": (encode(rgb, "PNG", exif=exif.tobytes()), (h, w)),
        "image.bmp": (encode(rgb, "BMP"), (w, h)),
        "image.tif": (encode(rgb, "TIFF", compression="tiff_lzw"), (w, h)),
        "cmyk.tif": (encode(rgb.convert("CMYK"), "TIFF"), (w, h)),
        "image.webp": (encode(rgb, "WEBP", lossless=True), (w, h)),
        "image.ppm": (encode(rgb, "PPM"), (w, h)),
        "image.pgm": (encode(gray, "PPM"), (w, h)),
        "png_named.jpg": (encode(rgb, "PNG"), (w, h)),  # wrong extensions
        "jpeg_named.png": (encode(rgb, "JPEG"), (w, h)),
        "gif_named.png": (encode(rgb.convert("P"), "GIF"), (w, h)),
        "one_pixel.png": (encode(Image.new("RGB", (1, 1), (200, 30, 60)), "PNG"), (1, 1)),
        "one_column.jpg": (encode(rgb.crop((0, 0, 1, h)), "JPEG"), (1, h)),
        "camera.mpo.jpg": (encode(rgb, "MPO", save_all=True, append_images=[gray.convert("RGB")]),
                           (w, h)),  # a camera's multi-picture JPEG: its first picture is the image
    }


def multi_frame_images() -> dict[str, bytes]:
    """name.ext -> bytes of a file of two frames, which is refused, not cut to its first."""
    a, b = Image.new("RGB", (13, 9), (200, 30, 60)), Image.new("RGB", (13, 9), (20, 90, 160))
    return {name: encode(a, fmt, save_all=True, append_images=[b]) for name, fmt in
            [("animated.gif", "GIF"), ("animated.webp", "WEBP"), ("animated.png", "PNG"),
             ("pages.tif", "TIFF")]}


def fuzz_cases() -> list[tuple[str, bytes, tuple[int, int] | None]]:
    """(file name, bytes, expected size or None when the file may be refused)."""
    rng = np.random.default_rng(1234)
    cases = []
    for name, (data, size) in base_images().items():
        stem, ext = name.rsplit(".", 1)
        cases.append((name, data, size))
        for k in range(6):  # truncated at spread-out offsets
            cut = int(len(data) * (k + 0.5) / 6) if k else rng.integers(1, 16)
            cases.append((f"{stem}_cut{cut}.{ext}", data[:cut], None))
        for k in range(6):  # a few random bytes overwritten
            b = bytearray(data)
            for pos in rng.integers(0, len(b), size=1 + k):
                b[pos] = rng.integers(0, 256)
            cases.append((f"{stem}_flip{k}.{ext}", bytes(b), None))
    cases += [
        ("empty.png", b"", None),
        ("text.png", b"this is not an image\n", None),
        ("bomb.png", huge_png(100_000, 100_000), None),
        ("bomb_wide.png", huge_png(2_000_000_000, 1), None),
        ("bomb.bmp", huge_bmp(60_000, 60_000), None),
        ("zero_width.png", huge_png(0, 10), None),
    ]
    cases += [(name, data, None) for name, data in multi_frame_images().items()]
    return cases


CASES = fuzz_cases()
BOMBS = {"bomb.png", "bomb_wide.png", "bomb.bmp"}
MULTI_FRAME = set(multi_frame_images())


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    for name, data, _ in CASES:
        (d / name).write_bytes(data)
    return d


def check_outcome(res, src: Path, outputs: list[Path], size, out: Path) -> str:
    """Either every output exists with the expected size, or one error line names the file and
    no output exists. No temporary file is ever left. Returns "ok" or "refused"."""
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    if res["failed"]:
        (msg,) = res["failed"]
        assert msg.startswith(f"{src}: ") and "\n" not in msg, msg
        assert not any(p.exists() for p, _ in outputs), msg
        return "refused"
    for p, factor in outputs:
        with Image.open(p) as im:
            im.load()
            if size is not None:
                assert im.size == (size[0] * factor, size[1] * factor), p
    return "ok"


def test_fuzzed_images_through_sr_upscale_and_seg_predict(fuzz_dir, tmp_path):
    upscaler, segmenter = load_sr_model("bicubic", 2), seg_model()
    outcomes = {"ok": 0, "refused": 0}
    for name, _, size in CASES:
        src = fuzz_dir / name
        stem = src.stem
        out = tmp_path / "sr" / name
        res = upscale_files(upscaler, [str(src)], out, tile=8, progress=False,
                            report=lambda m: None)
        got = [check_outcome(res, src, [(out / f"{stem}_x2.png", 2)], size, out)]
        out = tmp_path / "seg" / name
        res = predict_files(segmenter, META, [str(src)], out, progress=False,
                            report=lambda m: None)
        got.append(check_outcome(res, src, [(out / f"{stem}_label.png", 1),
                                            (out / f"{stem}_overlay.png", 1)], size, out))
        if size is not None:  # intact files of every kind work
            assert got == ["ok", "ok"], (name, res["failed"])
        if name in BOMBS or name in MULTI_FRAME or name in ("empty.png", "text.png"):
            assert got == ["refused", "refused"], name
        for g in got:
            outcomes[g] += 1
    n = len(CASES)
    print(f"\nimage fuzz: {n} files x 2 commands = {2 * n} cases, {outcomes}")
    assert outcomes["ok"] + outcomes["refused"] == 2 * n
    assert outcomes["ok"] >= 2 * len(base_images())


def test_every_intact_kind_reads_with_its_size(fuzz_dir):
    for name, (_, (w, h)) in base_images().items():
        img, _ = read_image(fuzz_dir / name)
        assert img.shape[1:] == (h, w), name
        assert torch.isfinite(img).all() and 0 <= img.min() and img.max() <= 1, name


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_decompression_bombs_are_refused_before_decoding(fuzz_dir, name):
    from densekit.errors import ImageError

    with pytest.raises(ImageError, match=rf"{name}: .*(larger than the limit|too large)"):
        read_image(fuzz_dir / name)


@pytest.mark.parametrize("name", sorted(MULTI_FRAME))
def test_multi_frame_files_are_refused_naming_their_frames(fuzz_dir, name):
    from densekit.data.image_io import image_size
    from densekit.errors import ImageError

    for read in (read_image, image_size):
        with pytest.raises(ImageError, match=rf"{name}: 2 frames \(an animation or a multi-page"):
            read(fuzz_dir / name)


def test_exif_orientation_is_honoured(tmp_path):
    arr = np.zeros((4, 6, 3), np.uint8)
    arr[0, 0] = (255, 0, 0)  # stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise: top-left -> top-right
    Image.fromarray(arr).save(tmp_path / "r.png", exif=exif.tobytes())
    img, _ = read_image(tmp_path / "r.png")
    assert img.shape == (3, 6, 4)
    assert img[:, 0, 3].tolist() == [1.0, 0.0, 0.0] and img[0].sum() == 1.0


@pytest.mark.parametrize("command", ["sr", "seg"])
def test_cli_bad_files_are_one_line_errors_without_traceback(fuzz_dir, tmp_path, command):
    bad = ["rgb_flip3.png", "bomb.png", "empty.png", "photo_cut1.jpg", "text.png", "animated.webp"]
    good = tmp_path / "good.png"
    Image.new("RGB", (40, 24), (90, 140, 30)).save(good)
    out = tmp_path / "out"
    files = [str(good)] + [str(fuzz_dir / n) for n in bad]
    if command == "sr":
        args = ["sr", "upscale", *files, "--scale", "2", "--model", "bicubic"]
        written = {"good_x2.png": (80, 48)}
    else:
        from densekit.tasks.seg import SEG_WEIGHTS_FORMAT, SegModelConfig, build_generator

        g = build_generator(SegModelConfig(name="torchvision:lraspp_mobilenet_v3_large"), 3)
        weights = tmp_path / "w.pt"
        torch.save({"format": SEG_WEIGHTS_FORMAT, "model": "torchvision:lraspp_mobilenet_v3_large",
                    "options": {}, "classes": META["classes"], "palette": META["palette"],
                    "resize": 1.0, "state_dict": g.state_dict()}, weights)
        args = ["seg", "predict", *files, "--weights", str(weights)]
        written = {"good_label.png": (40, 24), "good_overlay.png": (40, 24)}
    proc = subprocess.run([sys.executable, "-m", "densekit", *args, "-o", str(out), "-q",
                           "--precision", "fp32"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == len(bad), proc.stderr
    for line, name in zip(lines, bad):
        assert line.startswith(f"densekit: error: {fuzz_dir / name}: "), line
    assert {p.name: Image.open(p).size for p in out.iterdir()} == written


def test_full_disk_while_writing_outputs(fuzz_dir, tmp_path, capsys):
    """ENOSPC on the second output file: one line naming it, no partial file, the batch goes
    on and ends with exit status 1; seg predict writes an image's label and overlay or none."""
    from densekit.cli.main import main

    real_save = Image.Image.save
    calls = []

    def save(self, fp, *args, **kw):
        calls.append(fp)
        if len(calls) == 2:
            fp.write(b"\x89PNG partial")  # the writer's open temporary file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(self, fp, *args, **kw)

    files = [str(fuzz_dir / n) for n in ("rgb.png", "gray.png", "rgba.png")]
    out = tmp_path / "sr"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Image.Image, "save", save)
        code = main(["sr", "upscale", *files, "--scale", "2", "--model", "bicubic", "-o",
                     str(out), "-q"])
    assert code == 1
    err = capsys.readouterr().err
    assert err == f"densekit: error: {out / 'gray_x2.png'}: cannot write (No space left on " \
                  "device)\n"
    assert sorted(p.name for p in out.iterdir()) == ["rgb_x2.png", "rgba_x2.png"]

    calls.clear()
    out = tmp_path / "seg"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Image.Image, "save", save)
        res = predict_files(seg_model(), META, files, out, progress=False,
                            report=lambda m: None)
    assert res["failed"] == [f"{out / 'rgb_overlay.png'}: cannot write (No space left on "
                             "device)"]
    assert sorted(p.name for p in out.iterdir()) == [
        "gray_label.png", "gray_overlay.png", "rgba_label.png", "rgba_overlay.png"]


def test_seg_predict_with_the_shipped_model_on_a_mixed_folder(tmp_path, monkeypatch, capsys,
                                                              camvid_weights):
    """`seg predict DIR FILE` without --weights (the shipped model; a tiny stand-in here) on a
    folder of good and bad files: every good image gets its label and overlay at its size, each
    bad one a line on stderr naming it, files that are no image by name are left alone."""
    from densekit.cli.main import main
    from densekit.tasks import seg

    monkeypatch.setattr(seg.weights, "shipped_seg_weights", lambda dataset="camvid": camvid_weights)
    images = base_images()
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    good = ["rgb.png", "gray.png", "rgba.png", "deep16.png", "one_pixel.png", "one_column.jpg",
            "rotated.jpg", "cmyk.jpg"]
    for name in good:
        (folder / name).write_bytes(images[name][0])
    data = images["rgb.png"][0]
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    (folder / "text.png").write_text("not an image\n")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("skipped: not an image file name\n")
    (folder / "sub" / "inner.png").write_bytes(data)  # subfolders are searched and kept
    out = tmp_path / "out"
    code = main(["seg", "predict", str(folder), str(folder / "notes.txt"), "-o", str(out), "-q",
                 "--precision", "fp32"])
    assert code == 1
    std = capsys.readouterr()
    assert std.out == ""
    assert std.err.splitlines() == [
        f"densekit: error: {folder / 'cut.png'}: cannot decode image (image file is truncated)",
        f"densekit: error: {folder / 'empty.jpg'}: empty file",
        f"densekit: error: {folder / 'text.png'}: not an image or unsupported format",
        f"densekit: error: {folder / 'notes.txt'}: not an image or unsupported format"]
    sizes = {**{name: images[name][1] for name in good}, "sub/inner.png": images["rgb.png"][1]}
    want = {}
    for name, size in sizes.items():
        stem = name.rsplit(".", 1)[0]
        want[f"{stem}_label.png"] = want[f"{stem}_overlay.png"] = size
    assert {p.relative_to(out).as_posix(): Image.open(p).size
            for p in out.rglob("*") if p.is_file()} == want
