"""SR metrics, colour conversion, MATLAB bicubic and the SR evaluation protocol.

The key protocol check (``test_bicubic_matches_published``) runs MATLAB-exact Bicubic on Set5 and
Set14 from ``../shared/data/sr`` and compares with the published Bicubic table of
``docs/protocols.md``; it is skipped when the data are not there (fails under
``DENSEKIT_REQUIRE_DATA``, see tests/helpers.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densekit.data.sr import ground_truth_y, make_lr
from densekit.errors import DensekitError
from densekit.metrics.published import PUBLISHED_SR
from densekit.metrics.sr import gaussian_window, modcrop, psnr, ssim
from densekit.models.sr.bicubic import Bicubic
from densekit.ops.color import (
    rgb2ycbcr,
    rgb_to_y,
    rgb_to_ycbcr,
    to_model_channels,
    ycbcr2rgb,
    ycbcr_to_rgb,
)
from densekit.ops.imresize import imresize, resize_matrix, round_uint8
from densekit.tasks.sr_eval import evaluate_folder, measure_y, protocol_lr, super_resolve

from helpers import one_thread, require_module, shared_data

skmetrics = require_module("skimage.metrics")

# Published Bicubic PSNR / SSIM on Y (docs/protocols.md; the VDSR paper's table).
PUBLISHED_BICUBIC = {(dataset, scale): PUBLISHED_SR[("bicubic", scale)][dataset]
                     for dataset in ("Set5", "Set14") for scale in (2, 3, 4)}
PSNR_TOL = 0.05  # protocols.md: more than ~0.05 dB off means the protocol is wrong somewhere
SSIM_TOL = 0.0015  # the published Set14 x4 SSIM (0.7027) is 0.0008 above ours (see sr_eval)


def _levels(shape, seed=0) -> torch.Tensor:
    """A random float64 image at uint8 levels in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g).to(torch.float64) / 255


def _natural(shape, seed=0) -> torch.Tensor:
    """A smooth image plus noise at uint8 levels (more realistic statistics than pure noise)."""
    g = torch.Generator().manual_seed(seed)
    h, w = shape[-2:]
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=torch.float64),
                            torch.linspace(0, 1, w, dtype=torch.float64), indexing="ij")
    base = 0.5 + 0.3 * torch.sin(6 * xx + 3 * yy) * torch.cos(4 * yy)
    noise = 0.05 * torch.randn(shape, generator=g, dtype=torch.float64)
    return round_uint8(base.expand(shape) + noise)


# ----------------------------------------------------------------------------------- PSNR ----

@pytest.mark.parametrize("shave", [0, 2, 4])
@pytest.mark.parametrize("shape", [(40, 52), (1, 40, 52)])
def test_psnr_matches_skimage(shave, shape):
    a, b = _natural(shape, 1), _natural(shape, 2)
    ours = psnr(a, b, shave=shave)
    s = (slice(shave, shape[-2] - shave), slice(shave, shape[-1] - shave))
    a255 = (a * 255).numpy().reshape(shape[-2:])[s]
    b255 = (b * 255).numpy().reshape(shape[-2:])[s]
    ref = skmetrics.peak_signal_noise_ratio(b255, a255, data_range=255)
    assert abs(ours - ref) < 1e-6


def test_psnr_known_values():
    t = torch.full((20, 30), 100 / 255, dtype=torch.float64)
    # a constant difference of one level: MSE = 1 -> PSNR = 20 log10(255)
    assert psnr(t + 1 / 255, t) == pytest.approx(20 * math.log10(255), abs=1e-9)
    assert psnr(t - 3 / 255, t) == pytest.approx(10 * math.log10(255**2 / 9), abs=1e-9)
    # half the pixels off by 2 levels: MSE = 2
    p = t.clone()
    p[:, :15] += 2 / 255
    assert psnr(p, t) == pytest.approx(10 * math.log10(255**2 / 2), abs=1e-9)
    assert psnr(t, t) == math.inf
    # float32 inputs are measured in float64: same value
    assert psnr((t + 1 / 255).float(), t.float()) == pytest.approx(20 * math.log10(255), abs=1e-4)


def test_psnr_shave_ignores_border():
    t = _levels((30, 30))
    p = t.clone()
    p[:3] = 0.0
    p[:, -3:] = 1.0
    assert psnr(p, t, shave=3) == math.inf
    assert psnr(p, t, shave=2) < 40
    assert psnr(p, t, shave=3) == psnr(p[3:-3, 3:-3], t[3:-3, 3:-3]) == math.inf


def test_metric_input_errors():
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(torch.zeros(10, 10), torch.zeros(10, 11))
    with pytest.raises(ValueError, match="too small"):
        psnr(torch.zeros(6, 6), torch.zeros(6, 6), shave=3)
    with pytest.raises(ValueError, match="smaller than"):
        ssim(torch.zeros(20, 20), torch.zeros(20, 20), shave=5)


# ----------------------------------------------------------------------------------- SSIM ----

@pytest.mark.parametrize("shave", [0, 3])
@pytest.mark.parametrize("kind", ["natural", "noise"])
@pytest.mark.parametrize("shape", [(48, 61), (1, 48, 61)])
def test_ssim_matches_skimage(kind, shave, shape):
    make = _natural if kind == "natural" else _levels
    a, b = make(shape, 3), make(shape, 4)
    if kind == "natural":
        b = round_uint8(0.7 * a + 0.3 * b)  # correlated, SSIM well inside (0, 1)
    ours = ssim(a, b, shave=shave)
    s = (slice(shave, shape[-2] - shave), slice(shave, shape[-1] - shave))
    a255 = (a * 255).numpy().reshape(shape[-2:])[s]
    b255 = (b * 255).numpy().reshape(shape[-2:])[s]
    ref = skmetrics.structural_similarity(a255, b255, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=255)
    # Same formula; both 'valid' (skimage filters with reflection, then crops the 5-pixel
    # border the 11x11 window reaches into). Agreement is at float rounding level.
    assert abs(ours - ref) < 1e-8


def test_ssim_known_values():
    a = _natural((40, 40), 5)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, a, shave=4) == pytest.approx(1.0, abs=1e-12)
    # two constant images: variances vanish, SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1)
    m1, m2 = 100.0, 120.0
    c1 = (0.01 * 255) ** 2
    x = torch.full((30, 30), m1 / 255, dtype=torch.float64)
    y = torch.full((30, 30), m2 / 255, dtype=torch.float64)
    assert ssim(x, y) == pytest.approx((2 * m1 * m2 + c1) / (m1**2 + m2**2 + c1), abs=1e-12)
    # symmetric and below 1 for different images
    b = _natural((40, 40), 6)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-12)
    assert ssim(a, b) < 1


def test_ssim_direct_2d_formula():
    """A direct (non-separable) transcription of ssim_index.m agrees with the implementation."""
    a, b = _natural((25, 27), 7) * 255, _natural((25, 27), 8) * 255
    win = gaussian_window(11, 1.5).numpy()
    assert win.sum() == pytest.approx(1.0)
    A, B = a.numpy(), b.numpy()
    H, W = A.shape[0] - 10, A.shape[1] - 10

    def filt(img):
        out = np.empty((H, W))
        for i in range(H):
            for j in range(W):
                out[i, j] = (win * img[i:i + 11, j:j + 11]).sum()
        return out

    mu1, mu2 = filt(A), filt(B)
    s1, s2, s12 = filt(A * A) - mu1**2, filt(B * B) - mu2**2, filt(A * B) - mu1 * mu2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    assert ssim(a / 255, b / 255) == pytest.approx(m.mean(), abs=1e-12)


# ---------------------------------------------------------------------------------- colour ----

def test_ycbcr_known_values():
    white = torch.ones(3, 2, 2, dtype=torch.float64)
    black = torch.zeros(3, 2, 2, dtype=torch.float64)
    assert torch.allclose(rgb2ycbcr(white)[:, 0, 0] * 255,
                          torch.tensor([235.0, 128.0, 128.0], dtype=torch.float64), atol=1e-9)
    assert torch.allclose(rgb2ycbcr(black)[:, 0, 0] * 255,
                          torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64), atol=1e-9)
    red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).view(3, 1, 1)
    assert torch.allclose(rgb2ycbcr(red)[:, 0, 0] * 255,
                          torch.tensor([81.481, 90.203, 240.0], dtype=torch.float64), atol=1e-9)
    assert rgb_to_y(white).shape == (1, 2, 2)
    assert torch.allclose(rgb_to_y(white) * 255, torch.full((1, 2, 2), 235.0, dtype=torch.float64))
    assert torch.allclose(rgb_to_y(black) * 255, torch.full((1, 2, 2), 16.0, dtype=torch.float64))
    # the uint8 case of MATLAB: R=G=B=128 -> Y = 16 + 219 * 128 / 255 = 125.93 -> 126
    gray = torch.full((3, 1, 1), 128 / 255, dtype=torch.float64)
    assert round_uint8(rgb_to_y(gray)).item() * 255 == pytest.approx(126.0)


def test_ycbcr_round_trip_and_shapes():
    x = _levels((2, 3, 9, 7), seed=11)
    ycc = rgb2ycbcr(x)
    assert ycc.shape == x.shape
    assert torch.allclose(ycbcr2rgb(ycc), x, atol=1e-12)
    assert torch.allclose(rgb_to_y(x), ycc[:, :1], atol=1e-15)
    assert rgb_to_y(x).shape == (2, 1, 9, 7)
    assert ycc[:, 0].min() >= 16 / 255 - 1e-12 and ycc[:, 0].max() <= 235 / 255 + 1e-12
    # float32 stays float32; aliases are the same functions
    assert rgb2ycbcr(x.float()).dtype == torch.float32
    assert rgb_to_ycbcr is rgb2ycbcr and ycbcr_to_rgb is ycbcr2rgb
    # out-of-gamut YCbCr is clipped like MATLAB's ycbcr2rgb
    assert ycbcr2rgb(torch.zeros(3, 2, 2, dtype=torch.float64)).min() >= 0
    with pytest.raises(ValueError):
        rgb2ycbcr(torch.zeros(1, 4, 4))


def test_to_model_channels():
    rgb = _levels((3, 5, 6), 12)
    gray = _levels((1, 5, 6), 13)
    assert torch.equal(to_model_channels(rgb, 1), rgb_to_y(rgb))
    assert to_model_channels(gray, 1) is gray  # "grayscale images are used as they are"
    assert to_model_channels(rgb, 3) is rgb
    g3 = to_model_channels(gray, 3)
    assert g3.shape == (3, 5, 6) and all(torch.equal(g3[i], gray[0]) for i in range(3))
    assert to_model_channels(gray[None], 3).shape == (1, 3, 5, 6)
    assert to_model_channels(rgb[None], 1).shape == (1, 1, 5, 6)
    with pytest.raises(ValueError):
        to_model_channels(rgb, 2)
    with pytest.raises(ValueError):
        to_model_channels(torch.zeros(2, 5, 6), 1)


# -------------------------------------------------------------------------------- imresize ----

def _matlab_imresize_loop(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB imresize(img, scale, 'bicubic') for a 2-D double image, transcribed with loops."""

    def cubic(x):
        ax = abs(x)
        if ax <= 1:
            return 1.5 * ax**3 - 2.5 * ax**2 + 1
        if ax <= 2:
            return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
        return 0.0

    def resize_dim(a: np.ndarray, out_len: int) -> np.ndarray:  # along axis 0
        in_len = a.shape[0]
        width = 4.0 / scale if scale < 1 else 4.0
        out = np.zeros((out_len,) + a.shape[1:])
        for x in range(1, out_len + 1):
            u = x / scale + 0.5 * (1 - 1 / scale)
            left = math.floor(u - width / 2)
            taps = math.ceil(width) + 2
            ws, idx = [], []
            for k in range(taps):
                j = left + k
                d = u - j
                ws.append(scale * cubic(scale * d) if scale < 1 else cubic(d))
                # symmetric padding: aux = [1:n, n:-1:1]; aux(mod(j - 1, 2n) + 1)
                m = (j - 1) % (2 * in_len)
                idx.append(m + 1 if m < in_len else 2 * in_len - m)
            total = sum(ws)
            for wgt, j in zip(ws, idx):
                out[x - 1] += wgt / total * a[j - 1]
        return out

    h, w = img.shape
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    rows = resize_dim(img, oh)  # equal scales: first dimension first
    return resize_dim(rows.T, ow).T


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 0.6, 2, 3])
def test_imresize_matches_direct_matlab_loop(scale):
    img = _levels((13, 11), seed=21)
    ours = imresize(img, scale)
    ref = _matlab_imresize_loop(img.numpy(), scale)
    assert ours.shape == ref.shape
    assert np.abs(ours.numpy() - ref).max() < 1e-12


@pytest.mark.parametrize("in_len,out_len,scale", [(12, 6, 0.5), (12, 4, 1 / 3), (12, 3, 0.25),
                                                  (6, 12, 2.0), (4, 12, 3.0), (5, 20, 4.0),
                                                  (7, 7, 1.0)])
def test_resize_matrix_rows_sum_to_one(in_len, out_len, scale):
    m = resize_matrix(in_len, out_len, scale)
    assert m.shape == (out_len, in_len)
    assert torch.allclose(m.sum(1), torch.ones(out_len, dtype=torch.float64), atol=1e-12)


def test_imresize_sizes_and_constant():
    c = torch.full((3, 24, 36), 0.37, dtype=torch.float64)
    for s in (2, 3, 4):
        lr = make_lr(c, s)
        assert lr.shape == (3, 24 // s, 36 // s)
        up = imresize(lr, s, size=(24, 36))
        assert up.shape == (3, 24, 36)
        assert torch.allclose(lr, c[..., : 24 // s, : 36 // s], atol=1e-12)
        assert torch.allclose(up, c, atol=1e-12)
    assert imresize(torch.zeros(1, 10, 7, dtype=torch.float64), 0.5).shape == (1, 5, 4)
    assert imresize(torch.zeros(1, 10, 7, dtype=torch.float64), 1.5).shape == (1, 15, 11)
    assert imresize(torch.zeros(10, 7, dtype=torch.float64), size=(4, 9)).shape == (4, 9)


def test_imresize_x2_linear_ramp_is_linear_inside():
    h, w = 10, 16
    ramp = (torch.arange(w, dtype=torch.float64) * 0.03 + 0.1).expand(h, w)
    up = imresize(ramp, 2)
    assert up.shape == (2 * h, 2 * w)
    # output pixel x (1-based) sits at input u = x/2 + 1/4: value 0.1 + 0.03 (u - 1)
    x = torch.arange(1, 2 * w + 1, dtype=torch.float64)
    expected = 0.1 + 0.03 * (x / 2 + 0.25 - 1)
    inner = slice(4, 2 * w - 4)  # away from the mirrored borders
    assert torch.allclose(up[:, inner], expected[inner].expand(2 * h, -1), atol=1e-12)
    d2 = up[:, inner].diff(n=2, dim=1)
    assert d2.abs().max() < 1e-12


def test_imresize_quantize_gives_uint8_levels():
    img = _natural((3, 30, 30), 22)
    lr = make_lr(img, 3, quantize=True)
    assert torch.allclose(lr * 255, torch.round(lr * 255), atol=1e-9)
    assert (lr - make_lr(img, 3)).abs().max() <= 1 / 255 + 1e-12


# --------------------------------------------------------------------------------- modcrop ----

def test_modcrop():
    img = torch.arange(3 * 13 * 10, dtype=torch.float64).reshape(3, 13, 10)
    out = modcrop(img, 4)
    assert out.shape == (3, 12, 8)
    assert torch.equal(out, img[:, :12, :8])  # top-left crop
    assert modcrop(img, 1) is not None and modcrop(img, 1).shape == img.shape
    assert modcrop(img[0], 3).shape == (12, 9)
    assert modcrop(img[None], 5).shape == (1, 3, 10, 10)
    with pytest.raises(ValueError):
        modcrop(img, 0)


# ------------------------------------------------------------------------- sr_eval helpers ----

def test_make_lr_requires_modcrop():
    with pytest.raises(ValueError, match="modcrop"):
        make_lr(torch.zeros(1, 13, 12, dtype=torch.float64), 2)


def test_super_resolve_outputs():
    hr = modcrop(_natural((3, 40, 44), 30), 2)
    gt = ground_truth_y(hr)
    assert torch.allclose(gt * 255, torch.round(gt * 255), atol=1e-9)  # uint8 levels
    for ch in (1, 3):
        model = Bicubic(2, ch)
        lr = protocol_lr(hr, 2, ch)
        assert lr.shape == (ch, 20, 22)
        pred = super_resolve(model, lr)
        assert pred.shape == (1, 40, 44) and pred.dtype == torch.float64
        assert torch.allclose(pred * 255, torch.round(pred * 255), atol=1e-9)
        pred2, ref = super_resolve(model, lr, hr)
        assert torch.equal(pred, pred2) and torch.equal(ref, gt)
        assert 20 < psnr(pred, ref, shave=2) < 60
    # the Y model gets the LR of the rounded HR Y (protocol), an RGB LR is converted to Y
    assert torch.equal(protocol_lr(hr, 2, 1), make_lr(gt, 2))
    assert super_resolve(Bicubic(2, 1), make_lr(hr, 2)).shape == (1, 40, 44)
    with pytest.raises(ValueError, match="modcrop"):
        super_resolve(Bicubic(2, 1), protocol_lr(hr, 2, 1), hr[:, :-1])


def test_measure_y_gray_and_rgb():
    rgb = _levels((3, 6, 6), 31)
    assert torch.equal(measure_y(rgb, gray=False), round_uint8(rgb_to_y(rgb)))
    g = _levels((1, 6, 6), 32)
    assert torch.equal(measure_y(g.expand(3, -1, -1), gray=True), g)
    assert measure_y(g, gray=True) is g


def test_super_resolve_autocast_forms():
    hr = modcrop(_natural((3, 32, 32), 33), 2)
    lr = protocol_lr(hr, 2, 1)
    base = super_resolve(Bicubic(2, 1), lr)
    ctx = super_resolve(Bicubic(2, 1), lr, autocast=torch.autocast("cpu", dtype=torch.bfloat16))
    fac = super_resolve(Bicubic(2, 1), lr,
                        autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    assert ctx.shape == fac.shape == base.shape
    assert psnr(ctx, base) > 30  # bfloat16 is coarse but sane


def _write_png(path: Path, img: torch.Tensor) -> None:
    arr = np.round(img.numpy() * 255).astype(np.uint8)
    Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)).save(path)


def test_evaluate_folder_synthetic(tmp_path):
    _write_png(tmp_path / "a.png", _natural((3, 41, 50), 40))
    _write_png(tmp_path / "b.png", _natural((1, 36, 39), 41))  # grayscale, not a multiple of 3
    for ch in (1, 3):
        r = evaluate_folder(Bicubic(3, ch), tmp_path, 3)
        assert set(r) >= {"dataset", "model", "scale", "psnr", "ssim", "images", "seconds",
                          "per_image"}
        assert r["dataset"] == tmp_path.name and r["model"] == "Bicubic"
        assert r["scale"] == 3 and r["images"] == 2
        assert [p["image"] for p in r["per_image"]] == ["a.png", "b.png"]
        assert r["psnr"] == pytest.approx(sum(p["psnr"] for p in r["per_image"]) / 2)
        assert r["ssim"] == pytest.approx(sum(p["ssim"] for p in r["per_image"]) / 2)
        assert 0 < r["ssim"] < 1 and 15 < r["psnr"] < 60
    # the gray image is measured as it is: an RGB model on replicated gray = the Y model
    r1 = evaluate_folder(Bicubic(3, 1), tmp_path, 3)["per_image"][1]
    r3 = evaluate_folder(Bicubic(3, 3), tmp_path, 3)["per_image"][1]
    assert r1["psnr"] == pytest.approx(r3["psnr"], abs=1e-9)
    with pytest.raises(DensekitError, match="x3"):
        evaluate_folder(Bicubic(3, 1), tmp_path, 2)


def test_evaluate_folder_too_small_image(tmp_path):
    _write_png(tmp_path / "tiny.png", _natural((3, 12, 12), 42))
    with pytest.raises(DensekitError, match="tiny.png"):
        evaluate_folder(Bicubic(2, 1), tmp_path, 2)


# ------------------------------------------------------------- the protocol on Set5 / Set14 ----

# Many small float64 ops: one thread is as fast, and immune to an oversubscribed CPU (on a busy
# 2-core machine two threads ran the Set5/Set14 evaluation 3-6x slower).

@pytest.fixture(scope="module")
def bicubic_results():
    sets = {ds: shared_data("sr", ds) for ds in ("Set5", "Set14")}
    with one_thread():
        return {(ds, s): evaluate_folder(Bicubic(s, 1), sets[ds], s)
                for ds in ("Set5", "Set14") for s in (2, 3, 4)}


@pytest.mark.parametrize("dataset,scale", sorted(PUBLISHED_BICUBIC))
def test_bicubic_matches_published(bicubic_results, dataset, scale):
    r = bicubic_results[(dataset, scale)]
    pub_psnr, pub_ssim = PUBLISHED_BICUBIC[(dataset, scale)]
    assert r["images"] == {"Set5": 5, "Set14": 14}[dataset]
    assert abs(r["psnr"] - pub_psnr) < PSNR_TOL, (r["psnr"], pub_psnr)
    assert abs(r["ssim"] - pub_ssim) < SSIM_TOL, (r["ssim"], pub_ssim)


def test_bicubic_set5_reproduces_published_digits(bicubic_results):
    """The chosen protocol reproduces every printed Set5 digit (what selected it)."""
    for s in (2, 3, 4):
        r = bicubic_results[("Set5", s)]
        pub_psnr, pub_ssim = PUBLISHED_BICUBIC[("Set5", s)]
        assert round(r["psnr"], 2) == pub_psnr
        assert round(r["ssim"], 4) == pub_ssim


def test_bicubic_rgb_model_on_set5():
    set5 = shared_data("sr", "Set5")
    for s in (2, 3, 4):
        with one_thread():
            r = evaluate_folder(Bicubic(s, 3), set5, s)
        pub_psnr, pub_ssim = PUBLISHED_BICUBIC[("Set5", s)]
        assert abs(r["psnr"] - pub_psnr) < PSNR_TOL
        assert abs(r["ssim"] - pub_ssim) < SSIM_TOL


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_hdcn_weights_beat_bicubic_on_set5(bicubic_results, scale):
    """Every scale has shipped HDCN weights, loaded by default, at least 1 dB over Bicubic."""
    from densekit.tasks.sr import load_sr_model, shipped_weights

    assert shipped_weights("hdcn", scale) is not None, f"no shipped HDCN x{scale} weights"
    model = load_sr_model("hdcn", scale)
    with one_thread():
        r = evaluate_folder(model, shared_data("sr", "Set5"), scale)
    assert r["images"] == 5
    assert r["psnr"] > bicubic_results[("Set5", scale)]["psnr"] + 1.0



@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_hdcn_beats_published_srcnn(scale):
    """The shipped x2/x3/x4 weights beat the published SRCNN on Set5 and Set14 (PSNR and SSIM),
    single pass, fp32, the protocol of `densekit sr eval`."""
    from densekit.tasks.sr import load_sr_model

    model = load_sr_model("hdcn", scale)
    for name in ("Set5", "Set14"):
        r = evaluate_folder(model, shared_data("sr", name), scale)
        pub_psnr, pub_ssim = PUBLISHED_SR[("srcnn", scale)][name]
        assert r["psnr"] > pub_psnr and r["ssim"] > pub_ssim, (name, r["psnr"], r["ssim"])
