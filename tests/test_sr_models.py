"""SR networks (HDCN, SRCNN, VDSR, REDNet, Bicubic): interface, sizes, tiling metadata,
precision, trainability, option validation, and the complexity helpers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from densekit.errors import ConfigError
from densekit.models.complexity import count_flops, count_params, flops_per_pixel
from densekit.models.sr import SR_MODELS, build_sr_model
from densekit.models.sr.hdcn import HDCN, DeconvUpsampler
from densekit.ops.imresize import imresize

SCALES = (2, 3, 4)
NETS = ("hdcn", "srcnn", "vdsr", "rednet")


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """He-normal weights and non-zero biases so that every input pixel in the receptive field
    visibly moves the output (the paper init N(0, 0.001) makes outputs ~0 and tests vacuous)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else (
                    m.weight.shape[0] * m.weight[0, 0].numel())
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(2 / fan_in))
                if m.bias is not None:
                    m.bias.copy_((torch.rand(m.bias.shape, generator=gen) - 0.5) * 0.2)
    return model.eval()


def _first_weight(model: nn.Module) -> torch.Tensor:
    return next(p for p in model.parameters() if p.dim() == 4)


# ---- shapes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ("bicubic",) + NETS)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("channels", (1, 3))
def test_output_shapes(name, scale, channels):
    model = build_sr_model(name, scale, channels).eval()
    assert (model.scale, model.channels) == (scale, channels)
    assert isinstance(model.context, int) and model.context >= 1
    assert isinstance(model.align, int) and model.align >= 1
    with torch.no_grad():
        for h, w in ((7, 9), (12, 10), (3, 3), (3, 4)):
            y = model(torch.rand(2, channels, h, w))
            assert y.shape == (2, channels, scale * h, scale * w)
            assert y.dtype == torch.float32
            assert torch.isfinite(y).all()


def test_registry_names():
    assert set(SR_MODELS) == {"bicubic", "hdcn", "srcnn", "vdsr", "rednet"}


# ---- parameter counts -------------------------------------------------------------------------
def test_param_counts():
    assert count_params(build_sr_model("srcnn", 2)) == 57_281
    # 20 layers: 1->64, 18 x 64->64, 64->1, with biases
    assert count_params(build_sr_model("vdsr", 2)) == 640 + 18 * 36_928 + 577 == 665_921
    # 15 conv (1->64, 14 x 64->64) + 15 deconv (14 x 64->64, 64->1)
    assert count_params(build_sr_model("rednet", 3)) == 640 + 28 * 36_928 + 577 == 1_035_201
    assert count_params(build_sr_model("bicubic", 2)) == 0
    # HDCN x2 default: deconv 1->1 k3 (10) + extract (640 + 36,928) + enc-dec (2 x 36,928)
    # + 4 dilated + fuse (5 x 36,928) + 1x1 tail (65)
    assert count_params(build_sr_model("hdcn", 2)) == 10 + 640 + 8 * 36_928 + 65 == 296_139
    assert count_params(build_sr_model("hdcn", 4)) == 296_139 + 10  # two cascaded deconvs
    assert count_params(build_sr_model("hdcn", 3)) == 296_139 - 10 + 26  # one k5 deconv
    # the channel count changes only the first and last layers
    assert count_params(build_sr_model("srcnn", 2, 3)) == 57_281 + 2 * 81 * 64 + 2 * 25 * 32 + 2


def test_count_params_trainable_only():
    model = build_sr_model("hdcn", 2)
    model.upsample.requires_grad_(False)
    assert count_params(model, trainable_only=True) == count_params(model) - 10


# ---- HDCN switches ------------------------------------------------------------------------------
HDCN_VARIANTS = [
    {},
    {"encdec": False},
    {"encdec_depth": 2},
    {"encdec_depth": 3},
    {"encdec": False, "encdec_depth": 2},
    {"dilation": False},
    {"encdec": False, "dilation": False},
    {"skips": "none"},
    {"skips": "local"},
    {"skips": "long"},
    {"init": "kaiming"},
    {"upsampler": "bicubic"},
    {"upsampler": "pixelshuffle"},
    {"upsampler": "deconv_centered"},
    {"residual": True},
    {"up_channels": 16},
    {"upsampler": "pixelshuffle", "up_channels": 8},
    {"features": 16},
]


@pytest.mark.parametrize("options", HDCN_VARIANTS, ids=lambda o: ",".join(
    f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("scale", SCALES)
def test_hdcn_switches_build_and_run(options, scale):
    model = build_sr_model("hdcn", scale, **options).eval()
    with torch.no_grad():
        for h, w in ((3, 3), (7, 9), (12, 10)):
            y = model(torch.rand(1, 1, h, w))
            assert y.shape == (1, 1, scale * h, scale * w)
            assert torch.isfinite(y).all()


def test_hdcn_switches_change_structure():
    default = build_sr_model("hdcn", 2)
    assert isinstance(default.upsample.layers[0], nn.ConvTranspose2d)
    assert [m.dilation for m in default.dilated if isinstance(m, nn.Conv2d)] == [
        (1, 1), (1, 1), (2, 2), (4, 4)]
    assert [m.dilation for m in build_sr_model("hdcn", 2, dilation=False).dilated
            if isinstance(m, nn.Conv2d)] == [(1, 1)] * 4
    enc = default.denoise
    assert [c.stride for c in enc.down] == [(2, 2)] and [c.padding for c in enc.down] == [(0, 0)]
    assert all(isinstance(d, nn.ConvTranspose2d) and d.stride == (2, 2) for d in enc.up)
    deep = build_sr_model("hdcn", 2, encdec_depth=2).denoise
    assert len(deep.down) == len(deep.up) == 2
    plain = build_sr_model("hdcn", 2, encdec=False, encdec_depth=2).denoise
    convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(c.stride == (1, 1) for c in convs)
    assert len(build_sr_model("hdcn", 4).upsample.layers) == 2
    x3 = build_sr_model("hdcn", 3).upsample.layers
    assert len(x3) == 1 and x3[0].kernel_size == (5, 5) and x3[0].stride == (3, 3)
    assert count_params(build_sr_model("hdcn", 2, upsampler="bicubic")) == 296_139 - 10


@pytest.mark.parametrize("scale", [2, 4])
def test_centered_deconv_is_bilinear_geometry_and_the_paper_deconv_is_not(scale):
    """With the bilinear kernel the k4 x2 upsampler is bilinear interpolation (away from the
    zero padded border) and commutes with flips; no symmetric k3 kernel makes the paper's commute."""
    up = DeconvUpsampler(1, 1, scale, centered=True)
    k1 = torch.tensor([0.25, 0.75, 0.75, 0.25])
    paper = DeconvUpsampler(1, 1, scale)
    k3 = torch.tensor([0.5, 1.0, 0.5])
    with torch.no_grad():
        for layer in up.layers:
            layer.weight.copy_(torch.outer(k1, k1)[None, None])
            layer.bias.zero_()
        for layer in paper.layers:
            layer.weight.copy_(torch.outer(k3, k3)[None, None])
            layer.bias.zero_()
        x = torch.rand(1, 1, 11, 9, dtype=torch.float64)
        up, paper = up.double(), paper.double()
        y = up(x)
        if scale == 2:  # (x4 is two bilinear x2 in cascade, not bilinear x4)
            want = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            torch.testing.assert_close(y[..., 1:-1, 1:-1], want[..., 1:-1, 1:-1])
        torch.testing.assert_close(up(x.flip(-1)).flip(-1), y)
        assert (paper(x.flip(-1)).flip(-1) - paper(x)).abs().max() > 0.1


def test_hdcn_skips_are_wired():
    """Zeroing a branch's weights exposes which skips are active."""
    x = torch.rand(1, 1, 8, 8)
    outs = {}
    for skips in ("none", "local", "long", "both"):
        model = _randomize(build_sr_model("hdcn", 2, skips=skips))
        with torch.no_grad():
            for p in list(model.fuse.parameters()):
                p.zero_()  # reconstruction output = 0 -> only the long skip carries signal
            outs[skips] = model(x)
    # without the long skip the tail sees zeros: a constant image (its bias)
    assert outs["none"].std() == 0 and outs["local"].std() == 0
    assert outs["long"].std() > 0 and outs["both"].std() > 0


def test_hdcn_local_skip():
    """With the enc-dec block zeroed and no long skip, the input reaches the output only
    through the local skip."""
    x1, x2 = torch.rand(2, 1, 1, 8, 8)
    for skips, reaches in (("none", False), ("local", True)):
        model = _randomize(build_sr_model("hdcn", 2, skips=skips))
        with torch.no_grad():
            for p in model.denoise.parameters():
                p.zero_()
            assert torch.equal(model(x1), model(x2)) is not reaches


@pytest.mark.parametrize("init", ("paper", "kaiming"))
def test_hdcn_init(init):
    torch.manual_seed(0)
    model = build_sr_model("hdcn", 2, init=init)
    w = model.fuse.weight  # 64 x 64 x 3 x 3 = 36,864 samples
    expected = 0.001 if init == "paper" else math.sqrt(2 / (64 * 9))
    assert abs(w.std().item() - expected) < 0.03 * expected
    assert abs(w.mean().item()) < 0.05 * expected
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            assert torch.all(m.bias == 0)
            if init == "paper":
                assert abs(m.weight.std().item() - 0.001) < 0.5e-3


# ---- tiling metadata ----------------------------------------------------------------------------
TILE_CASES = [(n, s, {}) for n in ("bicubic",) + NETS for s in SCALES] + [
    ("hdcn", s, o) for s in SCALES for o in (
        {"encdec_depth": 2}, {"encdec": False}, {"upsampler": "bicubic"},
        {"upsampler": "pixelshuffle"}, {"upsampler": "deconv_centered"}, {"dilation": False},
        {"residual": True})]


def _tile_setup(model, win=3):
    ctx = model.context
    a = ctx + 5  # window origin (rows and columns), 5 pixels of slack beyond the context
    h, w = 2 * ctx + 10, 2 * ctx + 11  # one odd side
    return ctx, a, win, h, w


def _perturb_outside(x, top, left, bottom, right, seed):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(x.shape[-2:], dtype=torch.bool)
    mask[max(top, 0):bottom, max(left, 0):right] = False
    y = x.clone()
    y[..., mask] = torch.rand(y[..., mask].shape, generator=gen)
    return y


@pytest.mark.parametrize("name,scale,options", TILE_CASES, ids=lambda v: str(v))
def test_context_and_align_are_sufficient(name, scale, options):
    torch.manual_seed(1)
    model = _randomize(build_sr_model(name, scale, **options))
    ctx, a, win, h, w = _tile_setup(model)
    s = model.scale
    x = torch.rand(1, 1, h, w)
    hr = (..., slice(s * a, s * (a + win)), slice(s * a, s * (a + win)))
    with torch.no_grad():
        full = model(x)
        # 1) pixels farther than `context` from the LR window do not touch its HR window
        far = _perturb_outside(x, a - ctx, a - ctx, a + win + ctx, a + win + ctx, seed=2)
        assert (model(far)[hr] - full[hr]).abs().max() <= 1e-6
        # ... while `context` is not absurd: pixels beyond context-3 do reach it
        near = _perturb_outside(x, a - ctx + 3, a - ctx + 3, a + win + ctx - 3,
                                a + win + ctx - 3, seed=2)
        assert (model(near)[hr] - full[hr]).abs().max() > 1e-8
        # 2) an input crop at an aligned origin with `context` margin reproduces the window
        o = (a - ctx) // model.align * model.align
        crop = x[..., o:a + win + ctx, o:a + win + ctx]
        out = model(crop)
        part = out[..., s * (a - o):s * (a - o + win), s * (a - o):s * (a - o + win)]
        torch.testing.assert_close(part, full[hr], atol=1e-5, rtol=1e-5)


def test_misaligned_tile_differs():
    """align matters: HDCN x3 with one enc-dec pair has align 2 (the stride-2 grid must match
    in HR space); an odd LR origin gives a different result, an even one the same."""
    torch.manual_seed(3)
    model = _randomize(build_sr_model("hdcn", 3))
    assert model.align == 2
    assert build_sr_model("hdcn", 3, encdec_depth=2).align == 4
    assert build_sr_model("hdcn", 2, encdec_depth=2).align == 2
    assert build_sr_model("hdcn", 4, encdec_depth=2).align == 1
    assert build_sr_model("hdcn", 3, encdec=False).align == 1
    ctx, a, win, h, w = _tile_setup(model)
    x = torch.rand(1, 1, h, w)
    hr = (..., slice(3 * a, 3 * (a + win)), slice(3 * a, 3 * (a + win)))
    with torch.no_grad():
        full = model(x)[hr]
        errs = {}
        for o in (2, 3):  # both leave >= context margin before the window (a - ctx = 5)
            out = model(x[..., o:, o:])
            part = out[..., 3 * (a - o):3 * (a - o + win), 3 * (a - o):3 * (a - o + win)]
            errs[o] = (part - full).abs().max().item()
    assert errs[2] < 1e-5
    assert errs[3] > 1e-4


# ---- precision / memory format ------------------------------------------------------------------
def test_hdcn_channels_last_bf16_autocast_close_to_fp32():
    torch.manual_seed(0)
    model = build_sr_model("hdcn", 2, init="kaiming").eval()
    x = torch.rand(2, 1, 12, 10)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        xcl = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(model(xcl), ref, atol=1e-5, rtol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(xcl)
    assert y.dtype == torch.float32 and y.shape == ref.shape
    rel = (y - ref).abs().max() / ref.abs().max()
    assert rel < 0.05, rel


def test_hdcn_fp32_features_switch():
    """fp32_features=False: the same float32 network without autocast; under bf16 autocast F1
    (the second extraction conv's output) and the skip sums are bf16 instead of float32, the
    upsampling, the first conv and the output stay float32."""
    torch.manual_seed(0)
    model = build_sr_model("hdcn", 2, init="kaiming").eval()
    fast = build_sr_model("hdcn", 2, fp32_features=False).eval()
    fast.load_state_dict(model.state_dict())
    assert model.fp32_features and not fast.fp32_features
    assert fast.config["fp32_features"] is False
    x = torch.rand(1, 1, 12, 10)
    dtypes = {}

    def hook(name):
        return lambda mod, inp, out: dtypes.setdefault(name, []).append(out.dtype)

    for net in (model, fast):
        for name, mod in (("up", net.upsample), ("conv1", net.extract[0]),
                          ("conv2", net.extract[2]), ("tail", net.tail)):
            mod.register_forward_hook(hook(name))
    with torch.no_grad():
        assert torch.equal(model(x), fast(x))
        dtypes.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ref, y = model(x), fast(x)
    assert dtypes == {"up": [torch.float32] * 2, "conv1": [torch.float32] * 2,
                      "conv2": [torch.float32, torch.bfloat16], "tail": [torch.float32] * 2}
    assert y.dtype == torch.float32 and not torch.equal(y, ref)
    assert (y - ref).abs().max() / ref.abs().max() < 0.05
    with pytest.raises(ConfigError, match="fp32_features must be true or false"):
        build_sr_model("hdcn", 2, fp32_features="no")


@pytest.mark.parametrize("name", NETS)
def test_all_nets_channels_last_bf16(name):
    model = _randomize(build_sr_model(name, 3)).to(memory_format=torch.channels_last)
    x = torch.rand(1, 1, 7, 9).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(x)
    assert y.dtype == torch.float32 and y.shape == (1, 1, 21, 27)
    assert ((y - ref).abs().max() / ref.abs().max()) < 0.05


def test_bicubic_model_is_float32_exact_under_bf16_autocast():
    """Bicubic as a model (sr eval --model bicubic, the demo's baseline) ignores autocast: its
    matmuls ran in bf16 before, 0.03 dB off the protocol on a 512x512 photo."""
    x = torch.rand(1, 1, 37, 41)
    model = build_sr_model("bicubic", 3)
    ref = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.dtype == torch.float32 and torch.equal(y, ref)


def test_residual_models_keep_bicubic_precise_under_autocast():
    """With the learned part zeroed, VDSR/REDNet and HDCN with ``residual=True`` under bf16
    autocast return the float32 bicubic image exactly (upsampling and the residual add run in
    float32); HDCN without it (the paper) returns zeros."""
    x = torch.rand(1, 1, 7, 9)
    bic = build_sr_model("bicubic", 2)(x)
    plain = build_sr_model("hdcn", 2)
    with torch.no_grad():
        for p in plain.parameters():
            p.zero_()
        assert torch.equal(plain(x), torch.zeros_like(bic))
    for name, options in (("vdsr", {}), ("rednet", {}), ("hdcn", {"residual": True})):
        model = build_sr_model(name, 2, **options)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = model(x)
        assert y.dtype == torch.float32
        assert torch.equal(y, bic)


# ---- training -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NETS)
def test_gradients_reach_first_layer(name):
    torch.manual_seed(0)
    options = {"init": "kaiming"} if name == "hdcn" else {}
    model = build_sr_model(name, 2, **options)
    x, target = torch.rand(2, 1, 6, 7), torch.rand(2, 1, 12, 14)
    nn.functional.mse_loss(model(x), target).backward()
    grad = _first_weight(model).grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_rednet_starts_near_bicubic_with_true_fan_in():
    """He init with the transposed convs' real fan-in (in_channels x 9, not torch's default
    reading of the weight's second dimension) and a small output layer: the untrained network
    is bicubic plus a residual far below the image range (it was RMS 8-19 before)."""
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_sr_model("rednet", 2)
        x = torch.rand(2, 1, 24, 24)
        with torch.no_grad():
            residual = model(x) - build_sr_model("bicubic", 2)(x)
        assert residual.pow(2).mean().sqrt() < 0.1


def test_hdcn_adam_steps_reduce_loss():
    torch.manual_seed(0)
    model = build_sr_model("hdcn", 2, init="kaiming")
    hr = torch.rand(4, 1, 16, 16)
    lr = imresize(hr, 0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.9999), eps=1e-8)
    losses = []
    for _ in range(3):
        loss = nn.functional.mse_loss(model(lr), hr)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        losses.append(nn.functional.mse_loss(model(lr), hr).item())
    assert losses[-1] < losses[0] * 0.9, losses


# ---- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("call,match", [
    (lambda: build_sr_model("edsr", 2), "unknown SR model 'edsr'"),
    (lambda: build_sr_model("hdcn", 5), "unsupported scale 5 for hdcn"),
    (lambda: build_sr_model("vdsr", 8), "unsupported scale 8 for vdsr"),
    (lambda: build_sr_model("hdcn", 2.0), "unsupported scale"),
    (lambda: build_sr_model("hdcn", True), "unsupported scale"),
    (lambda: build_sr_model("srcnn", "2"), "unsupported scale"),
    (lambda: build_sr_model("hdcn", 2, channels=0), "channels"),
    (lambda: build_sr_model("hdcn", 2, foo=1), "model.hdcn: unknown option 'foo'"),
    (lambda: build_sr_model("srcnn", 2, features=32), "model.srcnn: unknown option 'features'"),
    (lambda: build_sr_model("bicubic", 2, init="paper"), "model.bicubic: unknown option"),
    (lambda: build_sr_model("hdcn", 2, skips="all"), "skips"),
    (lambda: build_sr_model("hdcn", 2, upsampler="nearest"), "upsampler"),
    (lambda: build_sr_model("hdcn", 2, init="xavier"), "init"),
    (lambda: build_sr_model("hdcn", 2, encdec_depth=0), "encdec_depth"),
    (lambda: build_sr_model("hdcn", 2, encdec_depth=1.5), "encdec_depth"),
    (lambda: build_sr_model("hdcn", 2, features=0), "features"),
    (lambda: build_sr_model("hdcn", 2, features=True), "features"),
    (lambda: build_sr_model("hdcn", 2, encdec="yes"), "encdec"),
    (lambda: build_sr_model("hdcn", 2, dilation=1), "dilation"),
    (lambda: build_sr_model("hdcn", 2, residual="yes"), "residual"),
    (lambda: build_sr_model("hdcn", 2, up_channels=0), "up_channels"),
    (lambda: build_sr_model("hdcn", 2, upsampler="bicubic", up_channels=4), "up_channels"),
    (lambda: HDCN(3, skips="global"), "skips"),
])
def test_bad_options_raise_config_error(call, match):
    with pytest.raises(ConfigError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_hdcn_unknown_option_lists_known():
    with pytest.raises(ConfigError) as info:
        build_sr_model("hdcn", 2, depth=3)
    assert "encdec_depth" in str(info.value) and "upsampler" in str(info.value)


# ---- complexity ---------------------------------------------------------------------------------
def test_flops_per_pixel_baselines():
    vdsr = flops_per_pixel(build_sr_model("vdsr", 2), (16, 16))
    assert abs(vdsr - 1.33e6) / 1.33e6 < 0.05
    # 2 * multiply-adds per HR pixel: 9*9*64 + 5*5*64*32 + 5*5*32 = 57,184 (+ the bicubic)
    srcnn = flops_per_pixel(build_sr_model("srcnn", 2), (16, 16))
    assert abs(srcnn - 2 * 57_184) / (2 * 57_184) < 0.02
    red = flops_per_pixel(build_sr_model("rednet", 2), (16, 16))
    assert abs(red - 2 * (576 + 28 * 36_864 + 576)) / red < 0.02  # deconvs are counted
    hdcn = flops_per_pixel(build_sr_model("hdcn", 2), (16, 16))
    assert srcnn < hdcn < vdsr < red
    bic = flops_per_pixel(build_sr_model("bicubic", 2), (16, 16))
    assert 0 < bic < 1000  # imresize's matmuls are counted
    # per-pixel cost of pre-upsampling nets barely depends on the scale or size
    assert abs(flops_per_pixel(build_sr_model("vdsr", 4), (8, 8)) - vdsr) / vdsr < 0.01


def test_flops_per_pixel_monotone_in_hdcn_options():
    base = flops_per_pixel(build_sr_model("hdcn", 2), (16, 16))
    assert flops_per_pixel(build_sr_model("hdcn", 2, features=32), (16, 16)) < base / 3
    assert flops_per_pixel(build_sr_model("hdcn", 2, encdec_depth=2), (16, 16)) > base
    # plain stride-1 block costs 4x the stride-2 enc-dec pair (which runs at 1/4 resolution)
    plain = flops_per_pixel(build_sr_model("hdcn", 2, encdec=False), (16, 16))
    assert plain > base
    # enc-dec pair is counted: conv + deconv at quarter resolution ~ 2 * 2 * 36,864 / 4
    extra = plain - base
    assert abs(extra - (2 * 2 * 36_864 * (1 - 1 / 4))) / extra < 0.15


def test_flops_counts_transposed_conv_and_matmul():
    deconv = nn.ConvTranspose2d(4, 8, 3, stride=2, padding=1, output_padding=1)
    total, shape = count_flops(deconv, (5, 5), channels=4)
    assert shape == (1, 8, 10, 10)
    assert total == 2 * 4 * 8 * 9 * 25  # every input pixel x every kernel tap
    assert flops_per_pixel(deconv, (5, 5), channels=4) == total / 100

    class MatMul(nn.Module):
        def forward(self, x):
            return x @ x.transpose(-1, -2)

    total, _ = count_flops(MatMul(), (6, 4), channels=2)
    assert total == 2 * 2 * 6 * 6 * 4


def test_flops_restores_training_mode():
    model = build_sr_model("srcnn", 2).train()
    flops_per_pixel(model, (8, 8))
    assert model.training
