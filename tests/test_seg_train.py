"""Two-phase SS-GAN training end to end on tiny synthetic scenes, evaluation and prediction."""

import json

import pytest
import torch
from PIL import Image

from densekit.cli.main import main
from densekit.engine.checkpoint import list_checkpoints, load_checkpoint
from densekit.errors import ConfigError, DensekitError
from densekit.tasks.seg import train

from helpers import camvid_folder, metrics_rows, tiny_seg_config


pytestmark = pytest.mark.usefixtures("one_thread")


def test_two_phases_log_and_checkpoint(tmp_path):
    out = tmp_path / "run"  # the paper's FCN-8s generator (134M parameters: few checkpoints)
    train(None, tiny_seg_config(out, **{"model.name": "fcn8s_vgg16", "engine.keep_ckpts": 1}))
    r = metrics_rows(out)
    tr = [x for x in r if x["split"] == "train"]
    assert [x["step"] for x in tr] == list(range(1, 9))
    assert all(set(x) >= {"ce"} for x in tr[:4])
    assert all(set(x) >= {"ce", "adv", "d_loss", "d_acc_real", "d_acc_fake", "lambda"}
               for x in tr[4:])
    assert [x["step"] for x in r if x["split"] == "val"] == [2, 4, 6, 8]
    state = load_checkpoint(list_checkpoints(out / "checkpoints")[-1])
    assert set(state["modules"]) == {"G", "D"} and set(state["optimizers"]) == {"G1", "G2", "D"}
    # phase-2 G optimizer starts at 3e-5 and decays linearly; phase 1 at 1e-4
    assert tr[0]["lr_G1"] == pytest.approx(1e-4, rel=0.2)
    assert tr[4]["lr_G2"] == pytest.approx(3e-5, rel=0.3) and tr[7]["lr_G2"] < tr[4]["lr_G2"]
    assert (out / "weights.pt").is_file()


def test_resume_mid_phase2_equals_uninterrupted(tmp_path):
    import shutil

    full, part = tmp_path / "full", tmp_path / "part"
    train(None, tiny_seg_config(full))
    (part / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / "step_00000006.pt", part / "checkpoints")
    train(None, tiny_seg_config(part), resume="auto")
    a = torch.load(full / "weights.pt", weights_only=True)["state_dict"]
    b = torch.load(part / "weights.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_frozen_image_branch_gets_no_gradient_in_phase2(tmp_path):
    from densekit.config import load_config
    from densekit.tasks.seg import SegConfig, SegTask

    task = SegTask(load_config(SegConfig, None, tiny_seg_config(tmp_path / "run", **{
        "train.adversarial.d_options": "{freeze_image_branch: true}"})))
    branch = task.D.image_branch
    before = {k: v.clone() for k, v in branch.state_dict().items()}
    task.phase1_miou = 0.0
    for step in (task.p1, task.p1 + 1):  # a G step's requires_grad_(True) must not unfreeze it
        task.train_step(task.data[step], step)
    assert all(not p.requires_grad and p.grad is None for p in branch.parameters())
    assert all(torch.equal(v, before[k]) for k, v in branch.state_dict().items())
    assert all(p.grad is not None for p in task.D.fusion.parameters())


def test_photometric_augmentation_in_training_batches(tmp_path):
    from densekit.config import load_config
    from densekit.tasks.seg import SegConfig, SegTask

    def batch(**extra):
        task = SegTask(load_config(SegConfig, None, tiny_seg_config(tmp_path / "r", **extra)))
        return task.data[3]

    plain = batch()
    photo = batch(**{"data.photometric.prob": 1.0, "data.photometric.noise_prob": 1.0})
    assert torch.equal(plain[1], photo[1])  # the same crops, labels untouched
    assert (plain[0] - photo[0]).abs().mean() > 0.05
    again = batch(**{"data.photometric.prob": 1.0, "data.photometric.noise_prob": 1.0})
    assert torch.equal(again[0], photo[0])


def test_phase2_from_a_phase1_run(tmp_path):
    p1 = tmp_path / "p1"
    train(None, tiny_seg_config(p1, **{"train.phase2_epochs": 0}))
    p2 = tmp_path / "p2"
    train(None, tiny_seg_config(p2, **{"train.phase1_epochs": 0,
                            "train.init_from": str(p1 / "weights.pt")}))
    tr = [x for x in metrics_rows(p2) if x["split"] == "train"]
    assert len(tr) == 4 and all("d_loss" in x for x in tr)
    # the collapse guard's reference is the phase-1 run's mIoU, measured before phase 2 starts
    p1_miou = [x for x in metrics_rows(p1) if x["split"] == "val"][-1]["miou"]
    state = load_checkpoint(list_checkpoints(p2 / "checkpoints")[-1])
    assert state["task"]["phase1_miou"] == pytest.approx(p1_miou, abs=1e-9)


def test_collapse_guard_recovers_from_a_huge_d_learning_rate(tmp_path):
    # injected fault: A's learning rate x30000. The run must detect the collapse, roll back
    # to a good checkpoint, damp lambda and A's lr, log it, and finish with finite weights.
    out = tmp_path / "run"
    train(None, tiny_seg_config(out, **{"train.adversarial.d_optimizer.lr": 10.0,
                             "train.adversarial.damping": 0.01, "engine.ckpt_every": 1,
                             "engine.max_rollbacks": 10}))
    log = (out / "log.txt").read_text()
    assert "ROLLBACK 1/10: non-finite" in log
    assert "lambda -> 0.0001, D lr x0.01" in log
    final = torch.load(out / "weights.pt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in final.values())
    state = load_checkpoint(list_checkpoints(out / "checkpoints")[-1])
    assert state["step"] == 8 and state["task"]["collapses"] >= 1
    assert all(torch.isfinite(v).all() for v in state["modules"]["D"].values()
               if v.is_floating_point())


def test_guard_gives_up_after_max_rollbacks(tmp_path):
    with pytest.raises(DensekitError, match="gave up after 1 rollbacks"):
        train(None, tiny_seg_config(tmp_path / "run", **{"train.adversarial.d_loss_floor": 100.0,
                                              "train.adversarial.patience": 1,
                                              "engine.max_rollbacks": 1}))


def test_any_torchvision_segmentation_model_is_a_generator(tmp_path):
    out = tmp_path / "run"
    train(None, tiny_seg_config(out, **{"model.name": "torchvision:fcn_resnet50",
                             "train.phase1_epochs": 0, "train.phase2_epochs": 1,
                             "train.val_every_epochs": 0}))
    assert any("d_loss" in x for x in metrics_rows(out))


def test_eval_and_predict_cli(tmp_path, capsys):
    out = tmp_path / "run"
    train(None, tiny_seg_config(out))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {dataset: synthetic, options: {num_images: 3, size: [32, 32], "
                   "num_classes: 3}}\n")
    capsys.readouterr()
    assert main(["seg", "eval", "--config", str(cfg), "--weights", str(out / "weights.pt"),
                 "--json", "--flip", "--precision", "fp32"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == 3 and len(res["iou"]) == 3
    assert 0 <= res["miou"] <= 1
    assert main(["seg", "eval", "--config", str(cfg), "--weights", str(out / "weights.pt"),
                 "--mode", "slide", "--crop", "16", "16", "--json", "--precision", "fp32"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 3
    ckpt = list_checkpoints(out / "checkpoints")[-1]  # the final checkpoint = weights.pt
    results = []
    for w in (out / "weights.pt", ckpt):
        assert main(["seg", "eval", "--config", str(cfg), "--weights", str(w), "--json",
                     "--precision", "fp32"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["iou"] == results[1]["iou"]
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.new("RGB", (40, 30), (120, 80, 40)).save(imgs / "a.png")
    (imgs / "bad.png").write_text("nope")
    code = main(["seg", "predict", str(imgs), "--weights", str(out / "weights.pt"), "-o",
                 str(tmp_path / "pred"), "-q", "--precision", "fp32"])
    assert code == 1 and "bad.png" in capsys.readouterr().err
    lab = Image.open(tmp_path / "pred" / "a_label.png")
    assert lab.mode == "P" and lab.size == (40, 30)
    assert Image.open(tmp_path / "pred" / "a_overlay.png").mode == "RGB"
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["a_label.png",
                                                                    "a_overlay.png"]


def test_training_refuses_an_invalid_data_set(tmp_path):
    import numpy as np

    root = camvid_folder(tmp_path / "camvid")
    Image.fromarray(np.full((5, 8), 3, np.uint8)).save(root / "trainannot" / "s0.png")
    with pytest.raises(DensekitError, match=r"1 problem\(s\), e.g. .*s0.png"):
        train(None, tiny_seg_config(tmp_path / "run", **{
            "data.dataset": "camvid", "data.root": str(root), "data.options": "{}"}))
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("extra, message", [
    ({"data.crop_size": "[65, 20]"}, "data.crop_size: 65x20 is larger than the training images "
                                     "even at the largest scale (32x32 x 2 = 64x64)"),
    ({"data.crop_size": "[16, 40]", "data.scale_range": "[0.5, 1.0]"},
     "data.crop_size: 16x40 is larger than the training images"),
    ({"data.options": "{bogus: 1}"}, "data.options: unknown option 'bogus' for the synthetic"),
    ({"train.adversarial.d_options": "{bogus: 1}"},
     "train.adversarial.d_options: unknown option 'bogus'"),
    ({"data.photometric.gamma": "[1.5, 0.7]"},
     "data.photometric.gamma: expected [low, high] with 0.05 <= low <= high <= 20"),
    ({"data.photometric.prob": "2"}, "data.photometric.prob"),
])
def test_impossible_training_setups_are_refused_before_training(tmp_path, extra, message):
    out = tmp_path / "run"
    with pytest.raises(DensekitError) as e:
        train(None, tiny_seg_config(out, **extra))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert not (out / "checkpoints").exists()


@pytest.mark.parametrize("args, message", [
    (["--mode", "slide"], "--mode slide: needs the window size, --crop H W"),
    (["--mode", "slide", "--crop", "0", "16"], "--crop: expected two sizes >= 1, got 0 16"),
    (["--scales", "1", "-0.5"], "--scales: expected numbers > 0, got -0.5"),
])
def test_impossible_inference_options_are_one_line_errors(tmp_path, capsys, args, message):
    for cmd in (["seg", "predict", "x.png", "-o", str(tmp_path / "o")],
                ["seg", "eval", "--config", "c.yaml"]):
        assert main(cmd + ["--weights", "w.pt"] + args) == 2
        assert capsys.readouterr().err == f"densekit: error: {message}\n"
    assert not (tmp_path / "o").exists()


def test_unknown_torchvision_generator_option_is_refused(tmp_path):
    # torchvision's builders swallow unknown keywords; densekit must not
    with pytest.raises(ConfigError, match=r"model.options: torchvision fcn_resnet50 has no "
                                          r"option 'bogus' \(options: aux_loss\)"):
        train(None, tiny_seg_config(tmp_path / "run", **{"model.name": "torchvision:fcn_resnet50",
                                              "model.options": "{bogus: 1}"}))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_log_window_straddling_the_phase_switch_and_throughput_without_validation(
        tmp_path, monkeypatch):
    """A log window holding phase-1 and phase-2 steps averages each metric over the steps that
    have it (lambda stays 1e-2); samples_per_s counts data + step time, not validation."""
    import time

    from densekit.tasks import seg

    validate = seg.SegTask.validate

    def slow_validate(self):
        time.sleep(2.0)
        return validate(self)

    monkeypatch.setattr(seg.SegTask, "validate", slow_validate)
    out = tmp_path / "run"
    train(None, tiny_seg_config(out, **{"engine.log_every": 3, "train.val_every_epochs": 1,
                             "engine.ckpt_every": 8}))
    tr = [x for x in metrics_rows(out) if x["split"] == "train"]
    assert [x["step"] for x in tr] == [3, 6, 8]
    assert tr[1]["lambda"] == pytest.approx(1e-2) and tr[2]["lambda"] == pytest.approx(1e-2)
    # 2 s of validation after every second step: with it, <= 2 samples/s would be logged
    assert all(x["samples_per_s"] > 4 for x in tr)
