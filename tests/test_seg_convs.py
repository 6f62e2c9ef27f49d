"""densekit.models.seg.convs: FCN-8s' fc6 / fc7 as matrix products over input patches
(PatchConv2d) and DeepLab's atrous convolutions without the taps that only read padding
(AtrousConv2d) compute the function and gradients of the convolutions they replace, in every
memory layout, with the same state_dict."""

import pytest
import torch
import torch.nn.functional as F

from densekit.models.seg import build_seg_model
from densekit.models.seg.convs import PatchConv2d


@pytest.mark.parametrize("kernel, size", [(7, (12, 14)), (7, (7, 9)), (1, (6, 8)), (3, (3, 5))])
@pytest.mark.parametrize("weight_cl, input_cl", [(True, True), (False, False), (True, False),
                                                 (False, True)])
def test_patch_conv_equals_conv_forward_and_backward(kernel, size, weight_cl, input_cl):
    torch.manual_seed(0)
    m = PatchConv2d(6, 5, kernel).double()
    if weight_cl:  # (.to(memory_format=...) keeps it NCHW, see below)
        m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 6, *size, dtype=torch.float64)
    if input_cl:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    y = m(x)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, m.weight, m.bias), g)
    ref = F.conv2d(x, m.weight, m.bias)
    ref_grads = torch.autograd.grad(ref, (x, m.weight, m.bias), g)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # channels_last output for a channels_last input, NCHW otherwise
    if input_cl:
        assert y.is_contiguous(memory_format=torch.channels_last)
    else:
        assert y.is_contiguous()
    # the weight gradient keeps the parameter's layout (no copy when it is accumulated)
    assert all(sa == sb for sa, sb, n in zip(grads[1].stride(), m.weight.stride(),
                                               m.weight.shape) if n > 1)


def test_patch_conv_is_a_conv2d_with_its_state_dict():
    m = PatchConv2d(4, 3, 7)
    assert isinstance(m, torch.nn.Conv2d) and set(m.state_dict()) == {"weight", "bias"}
    assert m.weight.shape == (3, 4, 7, 7) and m.padding == (0, 0) and m.stride == (1, 1)
    # its weight stays NCHW in a channels_last model (a fused optimizer would copy it twice
    # per step otherwise), the same Parameter
    w = m.weight
    m.to(memory_format=torch.channels_last)
    assert m.weight is w and w.is_contiguous()
    fcn = build_seg_model("fcn8s_vgg16", 3, width=0.25).to(memory_format=torch.channels_last)
    assert fcn.fc6.weight.is_contiguous()
    assert fcn.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        m(torch.randn(1, 4, 6, 9))


def test_fcn_fc6_fc7_under_bf16_autocast_match_the_convolutions():
    """The narrow FCN-8s on the default path (bf16 autocast, channels_last): logits and the
    fc6 / fc7 weight gradients of the patch products agree with the convolutions' to bf16
    precision."""
    torch.manual_seed(0)
    model = build_seg_model("fcn8s_vgg16", 5, width=0.25).to(memory_format=torch.channels_last)
    for m in (model.score_fr, model.score_pool4, model.score_pool3):
        torch.nn.init.normal_(m.weight, std=0.1)
    model.eval()  # no dropout
    x = torch.randn(2, 3, 90, 120).contiguous(memory_format=torch.channels_last)
    out = {}
    for kind in ("patch", "conv"):
        model.zero_grad(set_to_none=True)
        if kind == "conv":
            for m in (model.fc6, model.fc7):
                m.forward = torch.nn.Conv2d.forward.__get__(m)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(x)
        y.float().square().mean().backward()
        out[kind] = (y.float(), model.fc6.weight.grad, model.fc7.weight.grad)
    for a, b in zip(out["patch"], out["conv"]):
        assert a.abs().max() > 0
        assert (a - b).abs().max() <= 2e-2 * b.abs().max()


# ---- AtrousConv2d ----------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(23, 30), (7, 30), (23, 5), (40, 50), (1, 1)])
@pytest.mark.parametrize("dilation", [12, 24, 36])
def test_atrous_conv_equals_conv_forward_and_backward(size, dilation):
    """Leaving out the taps that only read padding changes nothing, on axes shorter than the
    dilation (cropped), longer (kept) and mixed."""
    from densekit.models.seg.convs import AtrousConv2d

    torch.manual_seed(0)
    m = AtrousConv2d(6, 5, 3, padding=dilation, dilation=dilation).double().to(
        memory_format=torch.channels_last)
    x = torch.randn(2, 6, *size, dtype=torch.float64).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    y = m(x)
    ref = F.conv2d(x, m.weight, m.bias, 1, dilation, dilation)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, m.weight, m.bias), g)
    ref_grads = torch.autograd.grad(ref, (x, m.weight, m.bias), g)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_atrous_conv_counts_only_the_taps_it_computes():
    from densekit.models.complexity import FlopCounter
    from densekit.models.seg.convs import AtrousConv2d

    m = AtrousConv2d(8, 4, 3, padding=24, dilation=24)
    x = torch.randn(1, 8, 23, 30)  # rows: only the centre tap reads the input; columns: all 3
    with FlopCounter() as c:
        m(x)
    assert c.get_total_flops() == 2 * 23 * 30 * 4 * 8 * 3


def test_deeplab_aspp_branches_are_atrous_convs_with_unchanged_keys():
    from densekit.models.seg.convs import AtrousConv2d

    torch.manual_seed(0)
    model = build_seg_model("deeplab_r50", 5)
    convs = [model.classifier[0].convs[i][0] for i in (1, 2, 3)]
    assert all(type(c) is AtrousConv2d for c in convs)
    assert [c.dilation for c in convs] == [(12, 12), (24, 24), (36, 36)]
    keys = set(model.state_dict())
    assert {"classifier.0.convs.1.0.weight", "classifier.0.convs.3.0.weight"} <= keys
    # building it draws the same random numbers as torchvision's ASPP alone would
    after = torch.rand(3)
    torch.manual_seed(0)
    from torchvision.models import resnet50
    from torchvision.models.segmentation.deeplabv3 import ASPP

    resnet50(replace_stride_with_dilation=[False, True, True])
    ASPP(2048, (12, 24, 36), 256)
    torch.nn.Conv2d(256, 256, 1, bias=False), torch.nn.BatchNorm2d(256)
    torch.nn.Conv2d(256, 5, 1)
    assert torch.equal(torch.rand(3), after)


# ---- GlobalAvgPool2d ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_global_avg_pool_equals_adaptive_and_keeps_the_gradient_layout(dtype):
    from densekit.models.seg.convs import GlobalAvgPool2d

    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 7, dtype=dtype).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    y = GlobalAvgPool2d()(x)
    ref = F.adaptive_avg_pool2d(x, 1)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    (gref,) = torch.autograd.grad(ref, x, g)
    tol = 1e-12 if dtype == torch.float64 else 1e-2
    torch.testing.assert_close(y, ref, rtol=tol, atol=tol)
    torch.testing.assert_close(gx, gref, rtol=tol, atol=tol)
    assert y.shape == (2, 8, 1, 1)
    # the input's layout (adaptive pooling's backward gives NCHW here)
    assert gx.is_contiguous(memory_format=torch.channels_last) and not gx.is_contiguous()


def test_deeplab_aspp_gradient_reaches_the_features_in_channels_last():
    torch.manual_seed(0)
    model = build_seg_model("deeplab_r50", 3).to(memory_format=torch.channels_last).train()
    feats = torch.randn(2, 2048, 4, 5).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.classifier(feats)
    (g,) = torch.autograd.grad(out.float().sum(), feats)
    assert g.is_contiguous(memory_format=torch.channels_last) and not g.is_contiguous()
