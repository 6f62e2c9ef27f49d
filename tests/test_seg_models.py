"""Segmentation generators, SS-GAN discriminator and losses, and the confusion-matrix metric.

Tiny tensors only (the machine runs other jobs): images up to 2x3x64x64.
"""

import copy
import math
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models import ResNet18_Weights, ResNet50_Weights, VGG16_Weights
from torch import nn

from densekit.engine.precision import cpu_has_fast_bf16
from densekit.errors import ConfigError, DensekitError
from densekit.metrics.seg import ConfusionMatrix
from densekit.models.complexity import count_params
from densekit.models.seg import (SEG_MODELS, build_discriminator, build_seg_model,
                                 discriminator_accuracy, discriminator_loss, embed_ground_truth,
                                 generator_loss)
from densekit.models.seg.fcn8s import bilinear_kernel

C = 21


# ---- fixtures: models are expensive to build, share them ----------------------------------------
@pytest.fixture(scope="module")
def fcn():
    torch.manual_seed(0)
    return build_seg_model("fcn8s_vgg16", C).eval()


@pytest.fixture(scope="module")
def deeplab():
    torch.manual_seed(0)
    return build_seg_model("deeplab_r50", C).eval()


@pytest.fixture(scope="module")
def swift():
    torch.manual_seed(0)
    return build_seg_model("swiftnet_r18", C).eval()


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "vgg16.pth"
    torch.save(torchvision.models.vgg16().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    return path


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def _with_fake_imagenet(monkeypatch, weights_cls, path, name):
    """build_seg_model(name, pretrained="imagenet") with the enum's download replaced by the
    state_dict file ``path``; the model and the enum members that were asked for."""
    calls = []
    monkeypatch.setattr(weights_cls, "get_state_dict",
                        lambda self, *args, **kwargs: calls.append(self) or _load(path))
    return build_seg_model(name, C, pretrained="imagenet"), calls


# ---- generators ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(33, 47), (64, 64), (7, 1)])
@pytest.mark.parametrize("name", ["fcn8s_vgg16", "deeplab_r50", "swiftnet_r18"])
def test_generator_output_size(name, size, fcn, deeplab, swift):
    model = {"fcn8s_vgg16": fcn, "deeplab_r50": deeplab, "swiftnet_r18": swift}[name]
    assert model.num_classes == C
    assert model.family == {"fcn8s_vgg16": "vgg", "deeplab_r50": "resnet",
                            "swiftnet_r18": "resnet18"}[name]
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, C, *size)
    assert torch.isfinite(out).all()


def test_registry_and_options():
    assert set(SEG_MODELS) == {"fcn8s_vgg16", "deeplab_r50", "swiftnet_r18"}
    with pytest.raises(ConfigError, match="unknown segmentation model"):
        build_seg_model("unet", C)
    with pytest.raises(ConfigError, match="'depth'"):
        build_seg_model("deeplab_r50", C, depth=3)
    with pytest.raises(ConfigError, match="num_classes"):
        build_seg_model("deeplab_r50", 0)
    with pytest.raises(ConfigError, match="output_stride"):
        build_seg_model("deeplab_r50", C, output_stride=4)
    with pytest.raises(ConfigError, match="dropout"):
        build_seg_model("fcn8s_vgg16", C, dropout=1.5)
    with pytest.raises(ConfigError, match="pretrained"):
        build_seg_model("deeplab_r50", C, pretrained=3)


def test_fcn_head_initialisation(fcn):
    assert fcn.fc6.weight.shape == (4096, 512, 7, 7)
    assert fcn.fc7.weight.shape == (4096, 4096, 1, 1)
    for m in (fcn.upscore2, fcn.upscore_pool4):
        assert torch.equal(m.weight, bilinear_kernel(C, 4))
    assert float(fcn.score_fr.weight.detach().abs().sum()) == 0.0
    # the bilinear transposed conv equals bilinear interpolation away from the border
    x = torch.randn(1, 2, 6, 6)
    up = F.conv_transpose2d(x, bilinear_kernel(2, 4), stride=2, padding=1)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-6)


def test_deeplab_structure(deeplab):
    assert deeplab.output_stride == 8 and deeplab.atrous_rates == (12, 24, 36)
    assert deeplab.backbone.layer4[0].conv2.dilation == (2, 2)
    aspp = deeplab.classifier[0]
    assert len(aspp.convs) == 5  # 1x1, three atrous, image pooling
    assert deeplab.classifier[1].kernel_size == (1, 1)
    with torch.no_grad():
        feats = deeplab.backbone(torch.randn(1, 3, 33, 47))
    assert feats.shape[-2:] == (5, 6)  # ceil(33 / 8), ceil(47 / 8): output stride 8


def test_deeplab_trains_with_batch_two(deeplab):
    deeplab.train()
    try:
        out = deeplab(torch.randn(2, 3, 33, 47))
    finally:
        deeplab.eval()
    assert out.shape == (2, C, 33, 47)


def test_fcn_pretrained_file_reshapes_fc_layers(vgg_file):
    model = build_seg_model("fcn8s_vgg16", C, pretrained=str(vgg_file))
    state = _load(vgg_file)
    assert torch.equal(model.features[0].weight, state["features.0.weight"])  # conv1_1
    assert torch.equal(model.features[28].weight, state["features.28.weight"])  # conv5_3
    assert torch.equal(model.fc6.weight, state["classifier.0.weight"].reshape(4096, 512, 7, 7))
    assert torch.equal(model.fc6.bias, state["classifier.0.bias"])
    assert torch.equal(model.fc7.weight, state["classifier.3.weight"].reshape(4096, 4096, 1, 1))
    assert torch.equal(model.fc7.bias, state["classifier.3.bias"])
    # fc6 on a 7x7 pool5 map = torchvision's classifier.0 on the flattened map (centre cell)
    pool5 = torch.randn(1, 512, 7, 7)
    with torch.no_grad():
        conv = model.fc6(F.pad(pool5, (3, 3, 3, 3)))[0, :, 3, 3]
        lin = F.linear(pool5.flatten(1), state["classifier.0.weight"], state["classifier.0.bias"])
    assert torch.allclose(conv, lin[0], atol=1e-4)


def test_fcn_fc6_is_a_same_padded_conv():
    """forward pads pool5 by 3 before fc6 (the fast path for pool5 maps below 7x7): the output is
    the one of fc6 as a padding=3 conv, here for 180x240 input (pool5 6x8)."""
    model = build_seg_model("fcn8s_vgg16", C, width=0.25).eval()
    for m in (model.score_fr, model.score_pool4, model.score_pool3):
        nn.init.normal_(m.weight, std=0.1)  # zero-initialised heads would hide fc6
    x = torch.randn(1, 3, 180, 240)
    with torch.no_grad():
        out = model(x)
        same = nn.Conv2d(model.fc6.in_channels, model.fc6.out_channels, 7, padding=3)
        same.load_state_dict(model.fc6.state_dict())
        model.fc6 = nn.Sequential(_Crop3(), same)
        ref = model(x)
    assert torch.allclose(out, ref, atol=1e-5) and out.abs().max() > 0


def test_fcn_score_layers_run_in_float32_under_bf16_autocast():
    """The 1x1 score layers compute in float32 under autocast (the workaround for oneDNN's heap
    corruption in the bf16 weight gradient of a 4096 -> few-channel 1x1 conv)."""
    model = build_seg_model("fcn8s_vgg16", 11, width=0.25)
    names = ("score_fr", "score_pool4", "score_pool3")
    seen = {}
    for name in names:
        getattr(model, name).register_forward_hook(
            lambda m, i, o, name=name: seen.__setitem__(name, (i[0].dtype, o.dtype)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randn(1, 3, 40, 40)).float().sum().backward()
    assert seen == {n: (torch.float32, torch.float32) for n in names}


FCN_BF16_STEPS = """
import torch, torch.nn.functional as F
from densekit.models.seg import build_seg_model
torch.set_num_threads(2)
torch.manual_seed(0)
m = build_seg_model("fcn8s_vgg16", 11).to(memory_format=torch.channels_last)
x = torch.randn(2, 3, 180, 240).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 11, (2, 180, 240))
for _ in range(3):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(m(x).float(), y)
    loss.backward()
print("ok")
"""


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="needs a CPU with native bf16 (AMX)")
def test_full_width_fcn_trains_in_bf16_with_two_threads():
    """The crash itself: full-width FCN-8s, 11 classes, bf16 + channels_last, 2 threads, three
    backward passes at CamVid half resolution (aborted on the second before the workaround)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", FCN_BF16_STEPS], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-500:]


class _Crop3(nn.Module):
    def forward(self, x):
        return x[..., 3:-3, 3:-3]


def test_fcn_imagenet_enum_without_network(vgg_file, monkeypatch):
    calls = []

    def fake_get_state_dict(self, *args, **kwargs):
        calls.append(self)
        return _load(vgg_file)

    monkeypatch.setattr(VGG16_Weights, "get_state_dict", fake_get_state_dict)
    model = build_seg_model("fcn8s_vgg16", C, pretrained="imagenet")
    assert calls == [VGG16_Weights.IMAGENET1K_V1]
    state = _load(vgg_file)
    assert torch.equal(model.features[0].weight, state["features.0.weight"])
    assert torch.equal(model.fc6.weight, state["classifier.0.weight"].view(4096, 512, 7, 7))


def test_deeplab_pretrained_file_and_enum(resnet_file, monkeypatch):
    state = _load(resnet_file)
    model = build_seg_model("deeplab_r50", C, pretrained=resnet_file)
    assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.backbone.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])
    assert torch.equal(model.backbone.bn1.running_var, state["bn1.running_var"])

    model, calls = _with_fake_imagenet(monkeypatch, ResNet50_Weights, resnet_file, "deeplab_r50")
    assert calls == [ResNet50_Weights.IMAGENET1K_V1]
    assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])


def test_swiftnet_structure_and_options(swift):
    assert [type(m).__name__ for m in swift.backbone] == [
        "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Sequential", "Sequential", "Sequential",
        "Sequential"]
    assert swift.spp.grids == (8, 4, 2, 1) and swift.width == 128
    assert [b.skip[-1].in_channels for b in swift.decoder] == [256, 128, 64]
    assert swift.head[-1].out_channels == C and not swift.head[-1].bias.any()
    # only dense convolutions (the fast kind on bf16 CPUs)
    assert all(m.groups == 1 for m in swift.modules() if isinstance(m, nn.Conv2d))
    # the SPP pools over grids along the shorter side: 1/32 of 360x480 is 12x15 -> 8x10 cells
    x = torch.randn(1, 512, 12, 15)
    seen = []
    hook = lambda m, inp, out: seen.append(tuple(inp[0].shape[-2:]))  # noqa: E731
    handles = [b.register_forward_hook(hook) for b in swift.spp.branches]
    with torch.no_grad():
        assert swift.spp(x).shape == (1, 128, 12, 15)
    for h in handles:
        h.remove()
    assert seen == [(8, 10), (4, 5), (2, 2), (1, 1)]
    narrow = build_seg_model("swiftnet_r18", C, width=32)
    assert narrow.head[-1].in_channels == 32
    for bad in (0, 2, 1.5, "wide", True):
        with pytest.raises(ConfigError, match="width"):
            build_seg_model("swiftnet_r18", C, width=bad)


def test_swiftnet_pretrained_file_and_enum(tmp_path, monkeypatch):
    torch.manual_seed(3)
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    state = _load(path)
    model = build_seg_model("swiftnet_r18", C, pretrained=str(path))
    assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.backbone.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert torch.equal(model.backbone.bn1.running_mean, state["bn1.running_mean"])
    model, calls = _with_fake_imagenet(monkeypatch, ResNet18_Weights, path, "swiftnet_r18")
    assert calls == [ResNet18_Weights.IMAGENET1K_V1]
    assert torch.equal(model.backbone.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "r50.pth")
    with pytest.raises(ConfigError, match="r50.pth.*resnet18"):
        build_seg_model("swiftnet_r18", C, pretrained=str(tmp_path / "r50.pth"))


def test_imagenet_download_failure_is_one_line_config_error(monkeypatch):
    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network\nat all")

    monkeypatch.setattr(ResNet50_Weights, "get_state_dict", offline)
    with pytest.raises(ConfigError, match="IMAGENET1K_V1") as info:
        build_seg_model("deeplab_r50", C, pretrained="imagenet")
    assert "\n" not in str(info.value)


def test_bad_pretrained_files_name_the_file(tmp_path, resnet_file):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    for name in ("fcn8s_vgg16", "deeplab_r50"):
        with pytest.raises(DensekitError, match="garbage.pth"):
            build_seg_model(name, C, pretrained=str(garbage))
    with pytest.raises(ConfigError, match="missing.pth"):
        build_seg_model("deeplab_r50", C, pretrained=tmp_path / "missing.pth")
    not_a_state = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_state)
    with pytest.raises(ConfigError, match="list.pth"):
        build_seg_model("deeplab_r50", C, pretrained=not_a_state)
    # a resnet50 file given to the VGG generator
    with pytest.raises(ConfigError, match="resnet50.pth.*vgg16") as info:
        build_seg_model("fcn8s_vgg16", C, pretrained=resnet_file)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="not ResNet50_Weights"):
        build_seg_model("deeplab_r50", C, pretrained=VGG16_Weights.IMAGENET1K_V1)


# ---- discriminator ------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["vgg", "resnet", "resnet18"])
def test_discriminator_output_grid(family):
    disc = build_discriminator(family, C)
    assert disc.family == family
    for size in [(33, 47), (64, 64), (5, 3)]:
        x = torch.randn(2, 3, *size)
        s = torch.randn(2, C, *size).softmax(1)
        out = disc(x, s)
        assert out.shape == (2, 1, 4, 4)
        assert torch.isfinite(out).all()
    assert build_discriminator(family, C, grid=2, width=8)(x, s).shape == (2, 1, 2, 2)
    with pytest.raises(ValueError):
        disc(x, s[:, :5])
    with pytest.raises(ConfigError, match="'foo'"):
        build_discriminator(family, C, foo=1)
    with pytest.raises(ConfigError, match="family"):
        build_discriminator("alexnet", C)


@pytest.mark.parametrize("family", ["vgg", "resnet", "resnet18"])
def test_discriminator_pair_forward_equals_two_forwards(family):
    """A's update scoring real and fake in one call (one image-branch pass) gives the loss,
    gradients and SGD step of two separate calls; a BatchNorm's running statistics update once
    (equal to the state after the first of the two calls), not twice."""
    torch.manual_seed(0)
    old = build_discriminator(family, C, width=8, label_width=8).double().train()
    new = copy.deepcopy(old)
    x = torch.randn(2, 3, 33, 47, dtype=torch.float64)
    real, fake = (torch.randn(2, C, 33, 47, dtype=torch.float64).softmax(1) for _ in range(2))
    opts = [torch.optim.SGD(d.parameters(), lr=0.1, momentum=0.9) for d in (old, new)]
    d_real = old(x, real)
    after_first = {k: v.clone() for k, v in old.state_dict().items()}
    loss_old = discriminator_loss(d_real, old(x, fake))
    pair = new(x, real, fake)
    loss_new = discriminator_loss(*pair)
    torch.testing.assert_close(pair[0], d_real, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss_new, loss_old, rtol=1e-12, atol=1e-12)
    for loss, opt in zip((loss_old, loss_new), opts):
        loss.backward()
        opt.step()
    params = dict(old.named_parameters())
    for name, p in new.named_parameters():
        torch.testing.assert_close(p.grad, params[name].grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(p, params[name], rtol=1e-12, atol=1e-12)
    buffers = dict(old.named_buffers())
    bn = [k for k, _ in new.named_buffers()]
    assert bool(bn) == family.startswith("resnet")
    for name, b in new.named_buffers():
        assert torch.equal(b, after_first[name]), name  # same batch statistics, one update
        if name.endswith("num_batches_tracked"):
            assert int(b) == 1 and int(buffers[name]) == 2
    with pytest.raises(ValueError, match="probs"):
        new(x, real, fake[:, :2])


def test_discriminator_image_branch_init(vgg_file, resnet_file, fcn, deeplab, swift, tmp_path):
    disc = build_discriminator("vgg", C, pretrained=vgg_file)
    state = _load(vgg_file)
    assert torch.equal(disc.image_branch[0].weight, state["features.0.weight"])
    assert torch.equal(disc.image_branch[7].weight, state["features.7.weight"])  # conv2_2
    disc = build_discriminator("resnet", C, pretrained=resnet_file, freeze_image_branch=True)
    state = _load(resnet_file)
    assert torch.equal(disc.image_branch.conv1.weight, state["conv1.weight"])
    assert torch.equal(disc.image_branch.layer1[2].conv3.weight, state["layer1.2.conv3.weight"])
    assert not any(p.requires_grad for p in disc.image_branch.parameters())
    disc.requires_grad_(False).requires_grad_(True)  # freeze/unfreeze around a G step
    assert not any(p.requires_grad for p in disc.image_branch.parameters())
    assert all(p.requires_grad for p in disc.fusion.parameters())
    disc.train()
    assert not disc.image_branch.training and disc.fusion.training

    d_vgg = build_discriminator("vgg", C)
    d_vgg.load_image_branch_from(fcn)
    assert torch.equal(d_vgg.image_branch[5].weight, fcn.features[5].weight)
    d_res = build_discriminator("resnet", C)
    d_res.load_image_branch_from(deeplab)
    assert torch.equal(d_res.image_branch.layer1[0].conv1.weight,
                       deeplab.backbone.layer1[0].conv1.weight)
    with pytest.raises(ConfigError, match="family"):
        d_res.load_image_branch_from(fcn)
    d_r18 = build_discriminator("resnet18", C)
    assert d_r18.fusion[0].in_channels == 64 + 64  # ResNet-18 layer1 + label branch
    d_r18.load_image_branch_from(swift)
    assert torch.equal(d_r18.image_branch.layer1[1].conv2.weight,
                       swift.backbone.layer1[1].conv2.weight)
    with pytest.raises(ConfigError, match="family"):
        d_r18.load_image_branch_from(deeplab)
    torch.manual_seed(4)
    r18 = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), r18)
    d_r18 = build_discriminator("resnet18", C, pretrained=str(r18))
    assert torch.equal(d_r18.image_branch.conv1.weight, _load(r18)["conv1.weight"])
    with pytest.raises(ConfigError, match="resnet18"):
        build_discriminator("resnet18", C, pretrained=str(resnet_file))


@pytest.mark.parametrize("family", ["vgg", "resnet"])
@pytest.mark.parametrize("mode", ["minimax", "nonsaturating"])
def test_gradient_reaches_generator_output_through_frozen_discriminator(family, mode):
    disc = build_discriminator(family, C).requires_grad_(False)
    x = torch.randn(2, 3, 33, 47)
    logits = torch.randn(2, C, 33, 47, requires_grad=True)
    _, _, adv = generator_loss(logits, torch.randint(0, C, (2, 33, 47)),
                               disc(x, logits.softmax(1)), mode=mode)
    adv.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters())


def test_gradient_reaches_generator_weights(deeplab):
    disc = build_discriminator("resnet", C, width=16).requires_grad_(False)
    x = torch.randn(2, 3, 33, 47)
    logits = deeplab(x)
    target = torch.randint(0, C, (2, 33, 47))
    _, _, adv = generator_loss(logits, target, disc(x, logits.softmax(1)))
    try:
        adv.backward()  # the adversarial term alone: its only path to G goes through D
        grad = deeplab.backbone.layer1[0].conv1.weight.grad
        assert grad is not None and grad.abs().sum() > 0
        assert all(p.grad is None for p in disc.parameters())
    finally:
        deeplab.zero_grad(set_to_none=True)


# ---- ground-truth embedding ---------------------------------------------------------------------
def test_embedding_hand_example():
    u = torch.tensor([0.5, 0.3, 0.2]).view(1, 3, 1, 1)
    v = embed_ground_truth(u, torch.zeros(1, 1, 1, dtype=torch.long), eps=0.9)
    assert torch.allclose(v.flatten(), torch.tensor([0.9, 0.06, 0.04]), atol=1e-6)
    v = embed_ground_truth(u, torch.ones(1, 1, 1, dtype=torch.long), eps=0.9)
    assert torch.allclose(v.flatten(), torch.tensor([0.5 / 7, 0.9, 0.2 / 7]), atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_embedding_properties(seed):
    g = torch.Generator().manual_seed(seed)
    n, c, h, w, eps = 2, 5, 9, 11, 0.8
    temp = torch.rand(n, 1, h, w, generator=g) * 8  # sharp and flat pixels
    u = (torch.randn(n, c, h, w, generator=g) * temp).softmax(1)
    target = torch.randint(0, c, (n, h, w), generator=g)
    target[0, 0, :4] = 255
    # exactly one-hot predictions on some pixels (u_il == 1), right and wrong
    u[1, :, 2, :] = 0.0
    u[1, 3, 2, :] = 1.0
    target[1, 2, :5] = 3
    target[1, 2, 5:] = 0
    u.requires_grad_(True)
    v = embed_ground_truth(u, target, eps=eps)
    assert v.shape == u.shape and not v.requires_grad
    assert torch.isfinite(v).all()
    assert torch.allclose(v.sum(1), torch.ones(n, h, w), atol=1e-6)

    u = u.detach()
    valid = target != 255
    t = target.clamp_max(c - 1).unsqueeze(1)
    u_l, v_l = u.gather(1, t)[:, 0], v.gather(1, t)[:, 0]
    keep = ~valid | (u_l >= eps)
    assert torch.equal(v.permute(0, 2, 3, 1)[keep], u.permute(0, 2, 3, 1)[keep])
    assert (v_l[valid] >= eps - 1e-6).all()
    assert torch.equal(v[0, :, 0, :4], u[0, :, 0, :4])  # ignore pixels unchanged
    assert torch.equal(v[1, :, 2, :5], u[1, :, 2, :5])  # u_il == 1: v = u
    assert torch.allclose(v[1, 0, 2, 5:], torch.full((w - 5,), eps))  # wrong one-hot: lifted
    # other classes are scaled in proportion where the true class was lifted
    lifted = valid & (u_l < eps)
    ratio = torch.where(torch.nn.functional.one_hot(target.clamp_max(c - 1), c).permute(
        0, 3, 1, 2).bool(), torch.nan, v / u)
    expect = ((1 - eps) / (1 - u_l)).unsqueeze(1).expand_as(ratio)
    mask = lifted.unsqueeze(1).expand_as(ratio) & ~torch.isnan(ratio) & (u > 1e-6)
    assert torch.allclose(ratio[mask], expect[mask], rtol=1e-4)


def test_embedding_rejects_bad_input():
    u = torch.rand(1, 3, 2, 2).softmax(1)
    with pytest.raises(ConfigError, match="eps"):
        embed_ground_truth(u, torch.zeros(1, 2, 2, dtype=torch.long), eps=1.5)
    with pytest.raises(ValueError, match="label 7"):
        embed_ground_truth(u, torch.full((1, 2, 2), 7))


# ---- losses -------------------------------------------------------------------------------------
def _loss_inputs():
    logits = torch.randn(2, 4, 6, 7, requires_grad=True)
    target = torch.randint(0, 4, (2, 6, 7))
    target[0, :2] = 255
    d_fake = torch.randn(2, 1, 4, 4, requires_grad=True)
    return logits, target, d_fake


def test_generator_loss_values_and_signs():
    logits, target, d_fake = _loss_inputs()
    ce_ref = F.cross_entropy(logits, target, ignore_index=255)
    lam = 0.1
    total, ce, adv = generator_loss(logits, target, d_fake, lam=lam, mode="minimax")
    assert torch.allclose(ce, ce_ref)
    assert torch.allclose(adv, F.softplus(d_fake).mean())  # BCE(0, d)
    assert torch.allclose(total, ce_ref - lam * adv)
    (grad_mm,) = torch.autograd.grad(total, d_fake)
    total_ns, _, adv_ns = generator_loss(logits, target, d_fake, lam=lam, mode="nonsaturating")
    assert torch.allclose(adv_ns, F.softplus(-d_fake).mean())  # BCE(1, d)
    assert torch.allclose(total_ns, ce_ref + lam * adv_ns)
    (grad_ns,) = torch.autograd.grad(total_ns, d_fake)
    # both push A's logit on G's map up ("real"); minimax saturates where A says "fake"
    assert (grad_mm < 0).all() and (grad_ns < 0).all()
    low = torch.full((1, 1, 4, 4), -10.0, requires_grad=True)
    (g_mm,) = torch.autograd.grad(generator_loss(logits, target, low, mode="minimax")[0], low)
    (g_ns,) = torch.autograd.grad(generator_loss(logits, target, low, mode="nonsaturating")[0],
                                  low)
    assert g_mm.abs().max() < 1e-3 * g_ns.abs().min()
    with pytest.raises(ConfigError, match="mode"):
        generator_loss(logits, target, d_fake, mode="wgan")
    with pytest.raises(ConfigError, match="lam"):
        generator_loss(logits, target, d_fake, lam=-1)


def test_generator_loss_class_weights_and_all_ignored():
    logits, target, d_fake = _loss_inputs()
    weights = torch.tensor([0.2, 1.0, 3.0, 0.5])
    _, ce, _ = generator_loss(logits, target, d_fake, class_weights=weights)
    assert torch.allclose(ce, F.cross_entropy(logits, target, weight=weights, ignore_index=255))
    total, ce, _ = generator_loss(logits, torch.full_like(target, 255), d_fake)
    assert ce.item() == 0.0
    total.backward()
    assert torch.isfinite(logits.grad).all()


def test_discriminator_loss_and_accuracy():
    real = torch.tensor([3.0, -1.0, 2.0, 0.5]).view(1, 1, 2, 2)
    fake = torch.tensor([-2.0, 1.0, -0.5, 0.0]).view(1, 1, 2, 2)
    loss = discriminator_loss(real, fake)
    assert torch.allclose(loss, F.softplus(-real).mean() + F.softplus(fake).mean())
    acc_real, acc_fake = discriminator_accuracy(real, fake)
    assert acc_real.item() == pytest.approx(0.75) and acc_fake.item() == pytest.approx(0.75)
    big = torch.full((2, 1, 4, 4), 20.0)
    assert discriminator_loss(big, -big).item() < 1e-6
    assert discriminator_accuracy(big, -big) == (1.0, 1.0)
    assert discriminator_accuracy(-big, big) == (0.0, 0.0)


# ---- confusion matrix ---------------------------------------------------------------------------
def test_confusion_matrix_hand_example():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[1, 1, 0, 0], [1, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    r = cm.compute()
    # IoU0 = 1 / (2 + 3 - 1), IoU1 = 2 / (3 + 3 - 2), IoU2 = 1 / (2 + 1 - 1), class 3 absent
    assert r["iou"][:3] == pytest.approx([1 / 4, 2 / 4, 1 / 2])
    assert math.isnan(r["iou"][3])
    assert r["miou"] == pytest.approx((1 / 4 + 2 / 4 + 1 / 2) / 3)
    assert r["pixel_acc"] == pytest.approx(4 / 7)
    assert r["mean_acc"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    assert r["pixels"] == 7


def _brute_force(preds, targets, c, ignore):
    m = np.zeros((c, c), dtype=np.int64)
    for p_img, t_img in zip(preds, targets):
        for p, t in zip(p_img.ravel().tolist(), t_img.ravel().tolist()):
            if t != ignore:
                m[t, p] += 1
    iou = []
    for i in range(c):
        union = m[i, :].sum() + m[:, i].sum() - m[i, i]
        iou.append(m[i, i] / union if union > 0 else float("nan"))
    return m, iou


def test_confusion_matrix_matches_brute_force_over_batches():
    g = torch.Generator().manual_seed(0)
    c, ignore = 6, 255
    preds, targets = [], []
    cm = ConfusionMatrix(c, ignore_index=ignore)
    for _ in range(3):
        t = torch.randint(0, c - 1, (2, 9, 13), generator=g)  # class 5 never in the targets
        t[torch.rand(t.shape, generator=g) < 0.1] = ignore
        p = torch.where(torch.rand(t.shape, generator=g) < 0.6, t.clamp_max(c - 1),
                        torch.randint(0, c, t.shape, generator=g))
        preds.append(p.numpy())
        targets.append(t.numpy())
        cm.update(p, t)
    m, iou = _brute_force(preds, targets, c, ignore)
    assert np.array_equal(cm.matrix.numpy(), m)
    r = cm.compute()
    assert np.allclose(r["iou"], iou, equal_nan=True)
    assert r["miou"] == pytest.approx(np.nanmean(iou))
    assert r["pixel_acc"] == pytest.approx(np.trace(m) / m.sum())
    # the ignore pixels were excluded
    assert r["pixels"] == sum(int((t != ignore).sum()) for t in targets)


def test_confusion_matrix_scores_merge_and_errors():
    target = torch.randint(0, 4, (2, 5, 6))
    scores = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float()
    cm = ConfusionMatrix(4)
    cm.update(scores, target)  # (N, C, H, W) scores are argmax-ed
    assert cm.compute()["miou"] == 1.0 and cm.compute()["pixel_acc"] == 1.0
    a, b, both = ConfusionMatrix(4), ConfusionMatrix(4), ConfusionMatrix(4)
    p = torch.randint(0, 4, target.shape)
    a.update(p[:1], target[:1])
    b.update(p[1:], target[1:])
    both.update(p, target)
    assert torch.equal((a + b).matrix, both.matrix)
    a.merge(b)
    assert torch.equal(a.matrix, both.matrix)
    assert a.all_reduce() is a  # no process group: no-op
    with pytest.raises(ValueError, match="label 9"):
        cm.update(torch.zeros_like(target), torch.full_like(target, 9))
    with pytest.raises(ValueError):
        a.merge(ConfusionMatrix(5))
    empty = ConfusionMatrix(3).compute()
    assert math.isnan(empty["miou"]) and math.isnan(empty["pixel_acc"])


# ---- sizes (for the record; reported in the design notes) ---------------------------------------
def test_parameter_counts(fcn, deeplab, swift):
    assert count_params(fcn) == 134_376_863
    assert count_params(swift) == 11_798_101
    assert count_params(deeplab) == 39_114_581
    assert count_params(build_discriminator("vgg", C)) == 1_973_697
    assert count_params(build_discriminator("resnet", C)) == 2_012_609
    assert count_params(build_discriminator("resnet18", C)) == 1_834_177


def test_fcn_width_option(vgg_file):
    narrow = build_seg_model("fcn8s_vgg16", C, width=0.25)
    assert narrow.fc6.weight.shape == (1024, 128, 7, 7) and narrow.fc7.weight.shape[:2] == (1024, 1024)
    assert narrow.score_pool3.in_channels == 64 and narrow.score_pool4.in_channels == 128
    convs = [m.out_channels for m in narrow.features if isinstance(m, torch.nn.Conv2d)]
    assert convs == [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128]
    with torch.no_grad():
        assert narrow.eval()(torch.randn(1, 3, 19, 33)).shape == (1, C, 19, 33)
    assert count_params(narrow) < count_params(build_seg_model("fcn8s_vgg16", C)) / 10
    for bad in (0, 1.5, "half", True):
        with pytest.raises(ConfigError, match="width"):
            build_seg_model("fcn8s_vgg16", C, width=bad)
    with pytest.raises(ConfigError, match="width 1"):
        build_seg_model("fcn8s_vgg16", C, width=0.5, pretrained=str(vgg_file))
