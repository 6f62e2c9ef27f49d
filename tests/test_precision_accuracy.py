"""bf16 autocast gives the same accuracy as fp32: SR PSNR on Set5 (shipped HDCN x2) within
0.02 dB, segmentation mIoU within 0.1 (in %) on a small trained model. Both tests also check
that bf16 really ran: the convolutions of the bf16 pass returned bfloat16 (all of the small
segmentation model; most of HDCN, which keeps its outer layers in float32 by design), none of the
fp32 pass did, and the two SR passes' PSNRs differ."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from densekit.data.seg import build_seg_dataset
from densekit.engine.precision import Precision
from densekit.tasks.seg_eval import evaluate_dataset, normalize
from densekit.tasks.sr import load_sr_model, shipped_weights
from densekit.tasks.sr_eval import evaluate_folder

from helpers import conv_calls, require, shared_data

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


def bf16_share(calls) -> float:
    """The share of the convolutions run that returned bfloat16."""
    assert calls
    return sum(c.dtype == torch.bfloat16 for c in calls) / len(calls)


def test_sr_set5_psnr_bf16_within_0_02_db_of_fp32():
    set5 = shared_data("sr", "Set5")
    require(shipped_weights("hdcn", 2) is not None, "the shipped HDCN x2 weights")
    res = {}
    share = {}
    for mode in ("fp32", "bf16"):
        prec = Precision(CPU, mode, channels_last=True)
        model = prec.prepare(load_sr_model("hdcn", 2))
        with conv_calls() as calls:
            res[mode] = evaluate_folder(model, set5, 2, autocast=prec.autocast)
        share[mode] = bf16_share(calls)
    assert share["fp32"] == 0 and share["bf16"] > 0.5, share
    assert res["fp32"]["images"] == 5 and res["fp32"]["psnr"] > 35
    diff = res["bf16"]["psnr"] - res["fp32"]["psnr"]
    print(f"Set5 x2 HDCN: fp32 {res['fp32']['psnr']:.4f} dB, bf16 {res['bf16']['psnr']:.4f} dB,"
          f" difference {diff:+.4f} dB")
    assert 0 < abs(diff) <= 0.02  # bf16 rounding moves the PSNR, a little


def test_seg_miou_bf16_within_0_1_percent_of_fp32():
    torch.manual_seed(0)
    kw = {"size": (48, 48), "num_classes": 4}
    train = build_seg_dataset("synthetic", None, "train", num_images=16, **kw)
    val = build_seg_dataset("synthetic", None, "val", num_images=8, **kw)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=2, dilation=2), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=4, dilation=4), nn.ReLU(),
                          nn.Conv2d(16, 4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    pairs = [train[i] for i in range(len(train))]
    x = torch.cat([normalize(torch.as_tensor(im)[None]) for im, _ in pairs])
    y = torch.stack([torch.as_tensor(m).long() for _, m in pairs])
    for _ in range(300):
        loss = F.cross_entropy(model(x), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
    res = {}
    for mode, share in (("fp32", 0), ("bf16", 1)):
        prec = Precision(CPU, mode, channels_last=True)
        with conv_calls() as calls:
            res[mode] = evaluate_dataset(prec.prepare(model), val, num_classes=4,
                                         autocast=prec.autocast, channels_last=True)
        assert bf16_share(calls) == share, mode
    # evaluate_dataset gives mIoU as a fraction: 0.1 % = 0.001
    diff = 100 * (res["bf16"]["miou"] - res["fp32"]["miou"])
    print(f"synthetic val mIoU: fp32 {100 * res['fp32']['miou']:.3f} %, bf16 "
          f"{100 * res['bf16']['miou']:.3f} %, difference {diff:+.3f} points")
    assert res["fp32"]["miou"] > 0.5  # a model that learned something
    assert abs(diff) <= 0.1
