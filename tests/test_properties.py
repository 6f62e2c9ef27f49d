"""Property tests (hypothesis): SR metrics, mIoU, the SS-GAN ground-truth embedding, tiling and
streaming of upscaling (the output naming of batch runs: test_batch.py).

The mIoU relabelling example of test_seg_models lives here, generalised."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from densekit.metrics.seg import ConfusionMatrix
from densekit.metrics.sr import psnr, ssim
from densekit.models.seg.ssgan import embed_ground_truth
from densekit.tasks.sr_upscale import tiled_forward

from helpers import random_sr_model

FEW = settings(max_examples=40, deadline=None, derandomize=True, database=None)  # deterministic


def rand(seed: int, *shape, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def image_pair(seed, h, w, noise):
    """An image in [0, 1] at 8-bit levels and a noisy copy of it."""
    a = torch.round(rand(seed, 1, h, w) * 255) / 255
    b = (a + noise * (rand(seed + 1, 1, h, w) - 0.5)).clamp(0, 1)
    return a, b


sizes = st.integers(11, 40)


# ---- PSNR / SSIM -------------------------------------------------------------------------------
@FEW
@given(seed=st.integers(0, 2**31), h=sizes, w=sizes, noise=st.floats(0.0, 2.0))
def test_psnr_ssim_symmetric_and_bounded(seed, h, w, noise):
    a, b = image_pair(seed, h, w, noise)
    assert psnr(a, b) == psnr(b, a)
    assert psnr(a, a) == math.inf  # our definition: identical images have infinite PSNR
    if not torch.equal(a, b):
        assert 0 <= psnr(a, b) < math.inf
    s = ssim(a, b)
    assert s == pytest.approx(ssim(b, a), abs=1e-12)
    assert -1 <= s <= 1 + 1e-12
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)


# ---- mIoU --------------------------------------------------------------------------------------
@FEW
@given(seed=st.integers(0, 2**31), c=st.integers(2, 8), n=st.integers(1, 300),
       p_ignore=st.floats(0, 0.5))
def test_miou_invariant_to_relabelling_and_one_when_perfect(seed, c, n, p_ignore):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (n,), generator=g)
    target[torch.rand(n, generator=g) < p_ignore] = 255
    pred = torch.randint(0, c, (n,), generator=g)
    perm = torch.randperm(c, generator=g)

    def relabel(x):
        return torch.where(x == 255, x, perm[x.clamp_max(c - 1)])

    a, b = ConfusionMatrix(c), ConfusionMatrix(c)
    a.update(pred, target)
    b.update(relabel(pred), relabel(target))
    ra, rb = a.compute(), b.compute()
    if math.isnan(ra["miou"]):  # every pixel ignored
        assert math.isnan(rb["miou"])
    else:
        assert rb["miou"] == pytest.approx(ra["miou"], abs=1e-12)
        assert rb["pixel_acc"] == ra["pixel_acc"]
        assert [rb["iou"][int(k)] for k in perm] == pytest.approx(ra["iou"], nan_ok=True)
    perfect = ConfusionMatrix(c)
    perfect.update(torch.where(target == 255, pred, target), target)  # ignore: anything goes
    if (target != 255).any():
        assert perfect.compute()["miou"] == 1.0


# ---- SS-GAN ground-truth embedding (eq. 1-2) ----------------------------------------------------
@FEW
@given(seed=st.integers(0, 2**31), c=st.integers(2, 6), hw=st.integers(1, 6),
       sharp=st.floats(0.0, 60.0), eps=st.floats(0.01, 1.0), p_ignore=st.floats(0, 0.5))
def test_embedding_rows_sum_to_one_and_lift_only_the_true_class(seed, c, hw, sharp, eps,
                                                                 p_ignore):
    g = torch.Generator().manual_seed(seed)
    u = (torch.randn(2, c, hw, hw, generator=g) * sharp).softmax(1)  # sharp: near one-hot
    t = torch.randint(0, c, (2, hw, hw), generator=g)
    t[torch.rand(2, hw, hw, generator=g) < p_ignore] = 255
    v = embed_ground_truth(u, t, eps=eps)
    assert v.shape == u.shape and v.dtype == u.dtype
    torch.testing.assert_close(v.sum(1), torch.ones(2, hw, hw), rtol=0, atol=1e-5)
    assert (v >= 0).all()
    valid = t != 255
    tl = t.clamp_max(c - 1).unsqueeze(1)
    u_l, v_l = u.gather(1, tl)[:, 0], v.gather(1, tl)[:, 0]
    assert (v_l[valid] >= torch.tensor(eps, dtype=torch.float32)).all()  # true class >= eps
    keep = (~valid) | (u_l >= eps)  # ignore pixels and confident pixels: v = u exactly
    assert torch.equal(v.permute(0, 2, 3, 1)[keep], u.permute(0, 2, 3, 1)[keep])
    lifted = valid & (u_l < eps)
    assert (v_l[lifted] == torch.tensor(eps, dtype=torch.float32)).all()


# ---- tiled == untiled SR inference ----------------------------------------------------------------
MODELS = {}


def model(name, scale):
    if (name, scale) not in MODELS:
        opts = {"features": 8} if name == "hdcn" else {}
        MODELS[name, scale] = random_sr_model(name, scale, **opts)
    return MODELS[name, scale]


@settings(FEW, max_examples=25)
@given(name=st.sampled_from(["hdcn", "srcnn", "bicubic"]), scale=st.sampled_from([2, 3, 4]),
       h=st.integers(1, 32), w=st.integers(1, 32), tile=st.integers(4, 20),
       seed=st.integers(0, 2**31))
def test_tiled_equals_untiled_for_any_size_and_tile(name, scale, h, w, tile, seed):
    m = model(name, scale)
    x = rand(seed, 1, 1, h, w)
    full = tiled_forward(m, x, 0)
    tiled = tiled_forward(m, x, tile)
    assert tiled.shape == full.shape == (1, 1, h * scale, w * scale)
    torch.testing.assert_close(tiled, full, rtol=0, atol=1e-5)


class Repeat(torch.nn.Module):
    """Pixel repetition as an SR model: exact in any tiling, so only the streamed steps vary."""

    def __init__(self, scale: int, channels: int):
        super().__init__()
        self.scale, self.channels, self.context, self.align = scale, channels, 0, 1

    def forward(self, x):
        return x.repeat_interleave(self.scale, -2).repeat_interleave(self.scale, -1)


@settings(FEW, max_examples=30)
@given(scale=st.sampled_from([2, 3, 4]), channels=st.sampled_from([1, 3]),
       colour=st.booleans(), alpha=st.booleans(), bits=st.sampled_from([8, 16]),
       h=st.integers(1, 24), w=st.integers(1, 24), tile=st.integers(0, 12),
       band=st.integers(1, 400), seed=st.integers(0, 2**31))
def test_streamed_upscaling_equals_the_whole_image_bit_for_bit(scale, channels, colour, alpha,
                                                               bits, h, w, tile, band, seed):
    """Chroma and alpha (bicubic), colour conversion and rounding done band by band (any band
    size, any tiling) give the whole-image result exactly, as floats and as the 8/16-bit image."""
    import numpy as np

    from densekit.data.image_io import ImageInfo, TensorRows, to_pil
    from densekit.tasks import sr_upscale

    img = rand(seed, 3 if colour else 1, h, w)
    info = ImageInfo(gray=not colour, alpha=rand(seed + 1, 1, h, w) if alpha else None,
                     bits=bits)
    m = Repeat(scale, channels)
    ref, ref_info = sr_upscale.upscale_image(m, img, info, tile=0)
    old = sr_upscale.BAND_PIXELS
    sr_upscale.BAND_PIXELS = band
    try:
        out, out_info = sr_upscale.upscale_image(m, img, info, tile=tile)
        pil = sr_upscale.upscale_to_pil(m, TensorRows(img, info), tile=tile)
    finally:
        sr_upscale.BAND_PIXELS = old
    assert torch.equal(out, ref)
    assert (out_info.alpha is None and ref_info.alpha is None) or torch.equal(out_info.alpha,
                                                                              ref_info.alpha)
    assert np.array_equal(np.asarray(pil), np.asarray(to_pil(ref, ref_info)))
