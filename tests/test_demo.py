"""The embedded demo runs offline end to end (with stand-in weights in place of shipped ones)."""

import torch
from PIL import Image

from densekit.models.sr import build_sr_model
from densekit.tasks import demo, sr
from densekit.tasks.sr import SRModelConfig, save_weights


def test_demo_writes_table_and_comparisons(tmp_path, monkeypatch, capsys):
    paths = {}
    for s in (2, 4):
        m = build_sr_model("hdcn", s, features=8, init="kaiming")
        paths[s] = tmp_path / f"hdcn_x{s}.pt"
        save_weights(paths[s], m, SRModelConfig(name="hdcn", scale=s, options={"features": 8}))
    monkeypatch.setattr(sr, "shipped_weights", lambda name, scale: paths.get(scale))
    monkeypatch.setattr(demo, "DEMO_IMAGES", ("chelsea", "camera"))
    torch.set_num_threads(1)
    demo.run_demo(tmp_path / "out")
    out = capsys.readouterr().out
    for name in ("chelsea", "camera"):
        for s in (2, 4):
            assert f"{name:<10} {'x' + str(s):>5}" in out
            im = Image.open(tmp_path / "out" / "sr" / f"{name}_x{s}.png")
            assert im.width > 3 * 300 // 2  # three panels side by side
    assert "mean" in out and "Bicubic PSNR/SSIM" in out


def test_seg_demo_trains_both_phases_and_writes_pictures(tmp_path, capsys):
    torch.set_num_threads(1)
    short = ["train.iters_per_epoch=3", "train.val_every_epochs=1"]
    miou = demo.run_seg_demo(tmp_path / "seg", scenes=2, phases={
        "phase1": ["train.phase1_epochs=1", "train.phase2_epochs=0"] + short,
        "ssgan": ["train.phase1_epochs=0", "train.phase2_epochs=1"] + short})
    out = capsys.readouterr().out
    assert set(miou) == {"phase1", "ssgan"} and all(0 <= v <= 1 for v in miou.values())
    assert f"after phase 2 (SS-GAN): {100 * miou['ssgan']:.1f}%" in out
    for i in range(2):
        im = Image.open(tmp_path / "seg" / f"scene{i}.png")
        assert im.width > 4 * 64 * 3  # image | ground truth | phase 1 | SS-GAN
    assert not (tmp_path / "seg" / "scene2.png").exists()
