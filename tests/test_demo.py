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
