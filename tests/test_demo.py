"""The embedded demo runs offline end to end (with stand-in weights in place of shipped ones)."""

import pytest
from PIL import Image

from densekit.tasks import demo, sr

from helpers import sr_weights

pytestmark = pytest.mark.usefixtures("one_thread")


def test_demo_writes_table_and_comparisons(tmp_path, monkeypatch, capsys):
    paths = {}
    for s in (2, 4):
        paths[s] = tmp_path / f"hdcn_x{s}.pt"
        sr_weights(paths[s], "hdcn", s, features=8, init="kaiming")
    monkeypatch.setattr(sr, "shipped_weights", lambda name, scale: paths.get(scale))
    monkeypatch.setattr(demo, "DEMO_IMAGES", ("chelsea", "camera"))
    demo.run_demo(tmp_path / "out")
    out = capsys.readouterr().out
    for name in ("chelsea", "camera"):
        for s in (2, 4):
            assert f"{name:<10} {'x' + str(s):>5}" in out
            im = Image.open(tmp_path / "out" / "sr" / f"{name}_x{s}.png")
            assert im.width > 3 * 300 // 2  # three panels side by side
    assert "mean" in out and "Bicubic PSNR/SSIM" in out


def test_seg_demo_trains_both_phases_and_writes_pictures(tmp_path, capsys):
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


def test_camvid_demo_scores_the_shipped_model_on_the_embedded_scenes(tmp_path, monkeypatch,
                                                                    capsys, camvid_weights):
    from densekit.data.seg import CamVid, check_dataset
    from densekit.engine.precision import Precision, resolve_device, resolve_precision
    from densekit.tasks import seg
    from densekit.tasks.seg_eval import evaluate_dataset

    root = demo.camvid_demo_root()
    data = CamVid(root, "val")  # three 360x480 scenes with clean labels, small in the package
    assert len(data) == 3 and check_dataset(data) == []
    assert all(Image.open(p).size == (480, 360) for p, _ in data.files)
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 500_000
    monkeypatch.setattr(seg.weights, "shipped_seg_weights", lambda dataset="camvid": camvid_weights)
    res = demo.run_camvid_demo(tmp_path / "camvid")
    out = capsys.readouterr().out
    for p, _ in data.files:
        assert f"{p.stem:<14} mIoU {100 * res['images'][p.stem]:5.1f}%" in out
        im = Image.open(tmp_path / "camvid" / f"{p.stem}.png")
        assert im.width >= 3 * 480 and im.height > 360  # image | prediction | truth, legend
    assert f"all 3          mIoU {100 * res['miou']:5.1f}%" in out
    # the overall number is the evaluation protocol's: one confusion matrix over the scenes
    model, _ = seg.load_seg_model(camvid_weights)
    device = resolve_device("auto")
    prec = Precision(device, resolve_precision("auto", device))
    ref = evaluate_dataset(prec.prepare(model), data, num_classes=11, device=device,
                           autocast=prec.autocast, channels_last=True)
    assert res["miou"] == ref["miou"] and res["pixel_acc"] == ref["pixel_acc"]


def test_demo_without_shipped_camvid_weights(tmp_path, monkeypatch, capsys):
    from densekit.cli.main import main
    from densekit.tasks import seg

    monkeypatch.setattr(seg.weights, "shipped_seg_weights", lambda dataset="camvid": None)
    monkeypatch.setattr(demo, "run_seg_demo", lambda out_dir: {})
    demo.run_demo(tmp_path / "all", ("camvid", "seg"))  # the whole demo goes on without it
    assert "CamVid demo skipped: this installation has no shipped CamVid weights" in \
        capsys.readouterr().out
    assert not (tmp_path / "all" / "camvid").exists()
    assert main(["demo", "--part", "camvid", "-o", str(tmp_path / "one")]) == 2
    assert capsys.readouterr().err.startswith(
        "densekit: error: densekit demo --part camvid: no shipped CamVid segmentation weights")
