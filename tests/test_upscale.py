"""Upscaling users' images: tiling equality, image kinds, bad input, atomic outputs."""

import numpy as np
import pytest
import torch
from PIL import Image

from densekit.cli.main import main
from densekit.data.image_io import read_image
from densekit.tasks.sr import load_sr_model
from densekit.tasks.sr_upscale import tiled_forward, upscale_files, upscale_image

from helpers import random_sr_model, smooth_image, sr_weights


@pytest.mark.parametrize("name, scale, opts", [
    ("hdcn", 2, {"features": 8}), ("hdcn", 3, {"features": 8}), ("hdcn", 4, {"features": 8}),
    ("hdcn", 3, {"features": 8, "encdec_depth": 2}), ("srcnn", 3, {}), ("bicubic", 2, {}),
])
@pytest.mark.parametrize("size, tile", [((37, 29), 8), ((40, 52), 16), ((23, 61), 10)])
def test_tiled_equals_untiled(name, scale, opts, size, tile):
    model = random_sr_model(name, scale, **opts)
    x = torch.rand(1, 1, *size)
    full = tiled_forward(model, x, 0)
    tiled = tiled_forward(model, x, tile)
    assert tiled.shape == full.shape == (1, 1, size[0] * scale, size[1] * scale)
    torch.testing.assert_close(tiled, full, rtol=0, atol=1e-5)


def test_self_ensemble_is_equivariant_and_tiles_exactly():
    """The 8-way mean commutes with flips/rotations of the input (a single HDCN pass does not),
    equals the hand-made mean of the 8 passes, and tiling does not change it."""
    from densekit.models.sr.common import dihedral_ensemble

    model = random_sr_model("hdcn", 2, features=8)
    x = torch.rand(1, 1, 23, 30)
    ens = tiled_forward(model, x, 0, self_ensemble=True)
    flipped = tiled_forward(model, x.flip(-1), 0, self_ensemble=True).flip(-1)
    rotated = torch.rot90(tiled_forward(model, torch.rot90(x, 1, (-2, -1)), 0,
                                        self_ensemble=True), -1, (-2, -1))
    torch.testing.assert_close(flipped, ens, rtol=0, atol=1e-5)
    torch.testing.assert_close(rotated, ens, rtol=0, atol=1e-5)
    plain = tiled_forward(model, x, 0)
    assert (tiled_forward(model, x.flip(-1), 0).flip(-1) - plain).abs().max() > 1e-3
    with torch.no_grad():
        manual = sum(torch.rot90(model(torch.rot90(x, k, (-2, -1)).flip(-1)).flip(-1), -k, (-2, -1))
                     + torch.rot90(model(torch.rot90(x, k, (-2, -1))), -k, (-2, -1))
                     for k in range(4)) / 8
        torch.testing.assert_close(dihedral_ensemble(model, x), manual, rtol=0, atol=1e-6)
    torch.testing.assert_close(tiled_forward(model, x, 8, self_ensemble=True), ens,
                               rtol=0, atol=1e-5)


@pytest.fixture
def weights_x2(tmp_path):
    path = tmp_path / "w.pt"
    sr_weights(path, "hdcn", 2, random_sr_model("hdcn", 2, features=8), features=8)
    return path


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "in"
    d.mkdir()
    rgb = smooth_image(rng, 30, 41)
    Image.fromarray(rgb).save(d / "rgb.png")
    Image.fromarray(rgb).save(d / "photo.jpg", quality=90)
    Image.fromarray(smooth_image(rng, 25, 20, 1)).save(d / "gray.png")
    rgba = np.concatenate([rgb, np.full((30, 41, 1), 128, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(d / "alpha.png")
    g16 = (smooth_image(rng, 22, 26, 1).astype(np.uint16) * 257)
    Image.fromarray(g16).save(d / "deep.png")
    Image.fromarray(rgb).convert("P").save(d / "palette.png")
    return d


def test_upscale_every_kind_of_image(inputs, tmp_path, weights_x2):
    model = load_sr_model("hdcn", 2, weights_x2)
    out = tmp_path / "out"
    res = upscale_files(model, [str(inputs)], out, tile=12, progress=False)
    assert res["failed"] == []
    assert len(res["written"]) == 6
    modes = {p.name: Image.open(p).mode for p in out.iterdir()}
    assert modes == {"rgb_x2.png": "RGB", "photo_x2.png": "RGB", "gray_x2.png": "L",
                     "alpha_x2.png": "RGBA", "deep_x2.png": "I;16", "palette_x2.png": "RGB"}
    assert Image.open(out / "rgb_x2.png").size == (82, 60)
    alpha = np.asarray(Image.open(out / "alpha_x2.png"))[..., 3]
    assert alpha.min() == alpha.max() == 128  # constant alpha stays constant
    deep, _ = read_image(out / "deep_x2.png")
    assert deep.shape == (1, 44, 52)


def test_upscale_cli_self_ensemble(inputs, tmp_path):
    """`upscale --self-ensemble` writes the 8-way ensemble (a 16-bit image, so the comparison is
    not drowned in 8-bit rounding), which differs from the plain prediction."""
    src = str(inputs / "deep.png")
    for name, extra in (("plain", []), ("ens", ["--self-ensemble"])):  # the shipped weights
        assert main(["sr", "upscale", src, "--scale", "2", "-q", "--precision", "fp32",
                     "-o", str(tmp_path / name), *extra]) == 0
    plain, _ = read_image(tmp_path / "plain" / "deep_x2.png")
    ens, _ = read_image(tmp_path / "ens" / "deep_x2.png")
    model = load_sr_model("hdcn", 2)
    img, info = read_image(src)
    want, _ = upscale_image(model, img, info, tile=0, self_ensemble=True)
    want_plain, _ = upscale_image(model, img, info, tile=0)
    assert ens.shape == plain.shape == (1, 44, 52)
    q = 1 / 65535 + 1e-6
    assert (ens - want).abs().max() <= q and (plain - want_plain).abs().max() <= q
    assert (want - want_plain).abs().max() > 20 * q  # a different prediction


def test_bicubic_model_on_an_rgb_image_matches_imresize(inputs, tmp_path):
    from densekit.ops.imresize import imresize

    out = tmp_path / "out"
    upscale_files(load_sr_model("bicubic", 3), [str(inputs / "gray.png")], out, progress=False)
    img, _ = read_image(inputs / "gray.png")
    got, _ = read_image(out / "gray_x3.png")
    want = torch.floor(imresize(img.double(), 3).clamp(0, 1) * 255 + 0.5) / 255
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-6)


def test_bad_inputs_are_reported_and_the_rest_processed(inputs, tmp_path, weights_x2, capsys):
    (inputs / "notes.png").write_text("not an image")
    good = (inputs / "rgb.png").read_bytes()
    (inputs / "cut.png").write_bytes(good[: len(good) // 2])
    (inputs / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    code = main(["sr", "upscale", str(inputs), str(tmp_path / "missing.png"), "--scale", "2",
                 "--weights", str(weights_x2), "-o", str(out), "-q"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("densekit: error: ") for line in err)
    for name in ("notes.png", "cut.png", "empty.png", "missing.png"):
        assert any(name in line for line in err)
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 6 and not any(n.startswith(".") for n in written)
    assert not (out / "notes_x2.png").exists() and not (out / "cut_x2.png").exists()


def test_user_errors_are_one_line(inputs, tmp_path, weights_x2, capsys):
    cases = [
        (["sr", "upscale", str(inputs / "rgb.png"), "--scale", "3", "--weights",
          str(weights_x2), "-o", str(tmp_path / "o")], "unsupported scale x3"),
        (["sr", "upscale", str(inputs / "rgb.png"), "--scale", "2", "--weights",
          str(tmp_path / "nope.pt"), "-o", str(tmp_path / "o")],
         "nope.pt is neither a file nor a shipped weights name"),
        (["sr", "upscale", str(inputs / "rgb.png"), "--scale", "2", "--weights",
          str(inputs / "rgb.png"), "-o", str(tmp_path / "o")], "rgb.png: not a valid checkpoint"),
        (["sr", "upscale", str(inputs / "rgb.png"), "--scale", "2", "--model", "vdsr",
          "--weights", str(weights_x2), "-o", str(tmp_path / "o")], "not vdsr"),
        (["sr", "eval", "--model", "bicubic", "--scale", "2", "--data",
          str(tmp_path / "nodata")], "nodata: not a folder"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_unwritable_output_folder(inputs, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["sr", "upscale", str(inputs / "rgb.png"), "--scale", "2", "--model", "bicubic",
                 "-o", str(blocker / "sub")])
    assert code == 2
    assert "output folder is not writable" in capsys.readouterr().err


def test_bad_scale_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sr", "upscale", "x.png", "--scale", "5", "-o", "out"])
    assert e.value.code == 2
    assert "scale must be 2, 3 or 4" in capsys.readouterr().err


def test_whole_image_tiled_equals_untiled_with_chroma_and_alpha():
    from densekit.data.image_io import ImageInfo
    from densekit.tasks.sr_upscale import upscale_image

    model = random_sr_model("hdcn", 3, features=8)
    img = torch.rand(3, 29, 35)
    info = ImageInfo(gray=False, alpha=torch.rand(1, 29, 35), bits=8)
    a, ia = upscale_image(model, img, info, tile=0)
    b, ib = upscale_image(model, img, info, tile=9)
    assert a.shape == (3, 87, 105) and ia.alpha.shape == (1, 87, 105)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    torch.testing.assert_close(ib.alpha, ia.alpha, rtol=0, atol=1e-5)


def test_outputs_are_ordinary_readable_files(inputs, tmp_path):
    import os
    import stat

    out = tmp_path / "out"
    upscale_files(load_sr_model("bicubic", 2), [str(inputs / "rgb.png")], out, progress=False)
    mode = stat.S_IMODE(os.stat(out / "rgb_x2.png").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_a_bad_file_is_reported_on_its_own_line_above_the_progress_bar(inputs, tmp_path,
                                                                      capsys):
    (inputs / "bad.png").write_bytes(b"not an image")
    assert main(["sr", "upscale", str(inputs), "--model", "bicubic", "--scale", "2", "-o",
                 str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "img/s]" in err  # the progress bar was drawn on stderr, the error line with it
    shown = [line.rsplit("\r", 1)[-1] for line in err.split("\n")]  # what a terminal keeps
    (line,) = [s for s in shown if "bad.png" in s]
    assert line.startswith(f"densekit: error: {inputs / 'bad.png'}: "), repr(err)


# ---- streaming: bands equal the whole image bit for bit -----------------------------------------
class Repeat(torch.nn.Module):
    """An SR "model" whose tiles are exact (pixel repetition), so any difference between two
    ways of running it comes from the rest of the pipeline."""

    def __init__(self, scale: int, channels: int):
        super().__init__()
        self.scale, self.channels, self.context, self.align = scale, channels, 0, 1

    def forward(self, x):
        return x.repeat_interleave(self.scale, -2).repeat_interleave(self.scale, -1) * 0.9 + 0.05


def _kinds(tmp_path) -> dict:
    rng = np.random.default_rng(5)
    rgb = smooth_image(rng, 23, 31)
    gray = smooth_image(rng, 23, 31, 1)
    files = {"rgb.png": Image.fromarray(rgb), "gray.png": Image.fromarray(gray),
             "rgba.png": Image.fromarray(np.concatenate([rgb, gray[:, :, None]], 2), "RGBA"),
             "la.png": Image.fromarray(np.concatenate([gray[:, :, None]] * 2, 2), "LA"),
             "deep.png": Image.fromarray(gray.astype(np.uint16) * 257 + 99),
             "palette.png": Image.fromarray(rgb).convert("P")}
    for name, im in files.items():
        im.save(tmp_path / name)
    return {name: tmp_path / name for name in files}


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_streamed_bands_equal_the_whole_image_bit_for_bit(tmp_path, monkeypatch, scale,
                                                          channels):
    """The chroma (bicubic), alpha (bicubic), colour conversion and rounding done band by band
    give exactly the whole-image result, for every image kind, tile and band size; and the
    streamed 8/16-bit image equals rounding the float result of upscale_image."""
    from densekit.data.image_io import ImageRows, open_image, to_pil
    from densekit.tasks import sr_upscale

    model = Repeat(scale, channels)
    for name, path in _kinds(tmp_path).items():
        img, info = read_image(path)
        monkeypatch.setattr(sr_upscale, "BAND_PIXELS", 10**9)  # one band: the whole image
        whole, winfo = upscale_image(model, img, info, tile=0)
        want = to_pil(whole, winfo)
        for tile, band in ((0, 1), (7, 1), (7, 50 * scale * scale), (10, 10**9)):
            monkeypatch.setattr(sr_upscale, "BAND_PIXELS", band)
            got = sr_upscale.upscale_to_pil(model, ImageRows(open_image(path), path), tile=tile)
            assert got.mode == want.mode and got.size == want.size, name
            assert np.array_equal(np.asarray(got), np.asarray(want)), (name, tile, band)
            out, oinfo = upscale_image(model, img, info, tile=tile)
            assert torch.equal(out, whole), (name, tile, band)
            assert (oinfo.alpha is None) == (info.alpha is None)
            if info.alpha is not None:
                assert torch.equal(oinfo.alpha, winfo.alpha), (name, tile, band)


def test_streamed_hdcn_equals_its_float_result_and_the_tiles_barely_matter(tmp_path, monkeypatch,
                                                                          one_thread):
    from densekit.data.image_io import ImageRows, open_image, to_pil
    from densekit.tasks import sr_upscale

    model = random_sr_model("hdcn", 2, features=8)
    monkeypatch.setattr(sr_upscale, "BAND_PIXELS", 300)
    kinds = _kinds(tmp_path)
    for name in ("rgb.png", "rgba.png", "deep.png"):
        path = kinds[name]
        img, info = read_image(path)
        for tile in (0, 16):
            got = np.asarray(sr_upscale.upscale_to_pil(model, ImageRows(open_image(path), path),
                                                       tile=tile))
            want = np.asarray(to_pil(*upscale_image(model, img, info, tile=tile)))
            assert np.array_equal(got, want), (name, tile)
        untiled = np.asarray(to_pil(*upscale_image(model, img, info, tile=0))).astype(int)
        assert np.abs(got.astype(int) - untiled).max() <= 1, name  # float rounding of the model


def test_rgb_chroma_is_matlab_bicubic(tmp_path):
    """With the bicubic model an RGB image is MATLAB's: Y and CbCr each bicubic-upscaled,
    converted back; against a float64 reference the 8-bit result is off by at most one level."""
    from densekit.ops.color import rgb_to_ycbcr, ycbcr_to_rgb
    from densekit.ops.imresize import imresize

    path = _kinds(tmp_path)["rgb.png"]
    img, info = read_image(path)
    for s in (2, 3, 4):
        out, _ = upscale_image(load_sr_model("bicubic", s), img, info, tile=8)
        ref = ycbcr_to_rgb(imresize(rgb_to_ycbcr(img.double()), s))
        q = torch.floor(out.double() * 255 + 0.5) - torch.floor(ref * 255 + 0.5)
        assert q.abs().max() <= 1 and (q != 0).float().mean() < 1e-3, s


def test_upscale_band_equals_imresize_and_any_split(tmp_path):
    from densekit.ops.imresize import imresize, upscale_band

    g = torch.Generator().manual_seed(0)
    for s in (2, 3, 4):
        for h, w in ((1, 1), (1, 6), (5, 2), (17, 23)):
            x = torch.rand(2, h, w, generator=g).numpy()
            whole = upscale_band(lambda a, b: x[:, a:b], 0, h, h, w, s)
            assert whole.dtype == np.float32 and whole.shape == (2, h * s, w * s)
            torch.testing.assert_close(torch.from_numpy(whole).double(),
                                       imresize(torch.from_numpy(x).double(), s), rtol=0,
                                       atol=3e-7)
            for step in (1, 2, 5):
                parts = [upscale_band(lambda a, b: x[:, a:b], k, min(k + step, h), h, w, s)
                         for k in range(0, h, step)]
                assert np.array_equal(np.concatenate(parts, 1), whole), (s, h, w, step)


def test_peak_memory_is_a_few_bytes_per_output_pixel(tmp_path):
    """`upscale_files` on a 1600 x 1200 JPEG at x2 (7.7 Mpx out, bicubic model) in a fresh
    process: peak RSS growth below 12 bytes per output pixel + 60 MiB (whole-image float planes
    take about 60)."""
    import json
    import os
    import subprocess
    import sys

    code = f"""
import json, torch
from pathlib import Path
torch.set_num_threads(1)
from densekit.bench.upscale import smooth_jpeg, _rss_bytes, _peak_rss_bytes
from densekit.tasks.sr import load_sr_model
from densekit.tasks.sr_upscale import upscale_files
tmp = Path({str(tmp_path)!r})
model = load_sr_model("bicubic", 2)
upscale_files(model, [str(smooth_jpeg(tmp / "w.jpg", 300, 200, 1))], tmp / "w", tile=256,
              progress=False)
src = smooth_jpeg(tmp / "p.jpg", 1600, 1200)
open("/proc/self/clear_refs", "w").write("5")
base = _rss_bytes()
upscale_files(model, [str(src)], tmp / "o", tile=256, progress=False)
print(json.dumps(_peak_rss_bytes() - base))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert proc.returncode == 0, proc.stderr
    growth = json.loads(proc.stdout.splitlines()[-1])
    pixels = 3200 * 2400
    assert growth < 12 * pixels + 60 * 2**20, growth / pixels
    assert Image.open(tmp_path / "o" / "p_x2.png").size == (3200, 2400)
