"""Training precision and memory layout: --precision/--device on sr/seg train (bf16 training
steps really run their convolutions in bfloat16), the auto choice, channels_last through whole
training steps of both tasks."""

import pytest
import torch

from densekit.cli.main import main
from densekit.engine import precision
from densekit.engine.checkpoint import list_checkpoints, load_checkpoint

from helpers import conv_calls, set_args, tiny_seg_config, tiny_sr_config


def test_auto_precision_is_decided_in_one_place(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert precision.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    assert precision.resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.resolve_precision("auto", torch.device("cuda")) == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert precision.resolve_precision("fp32", torch.device("cuda")) == "fp32"


def test_train_precision_and_device_options_override_the_config(sr_folder, tmp_path, capsys):
    out = tmp_path / "run"
    sets = tiny_sr_config(sr_folder, out, **{"train.epochs": 1, "train.iters_per_epoch": 1,
                                             "engine.device": "auto"})  # precision fp32
    with conv_calls() as calls:
        assert main(["sr", "train", "--precision", "bf16", "--device", "cpu"]
                    + set_args(sets)) == 0
    assert "device cpu, bf16, channels_last" in capsys.readouterr().out
    # bf16 ran: the training step's middle convolutions returned bfloat16 (HDCN keeps its outer
    # layers in float32 by design)
    dtypes = {c.dtype for c in calls if c.training}
    assert dtypes == {torch.bfloat16, torch.float32}, dtypes
    engine = load_checkpoint(list_checkpoints(out / "checkpoints")[-1])["config"]["engine"]
    assert (engine["precision"], engine["device"]) == ("bf16", "cpu")


@pytest.mark.parametrize("task", ["sr", "seg"])
@pytest.mark.parametrize("option, message", [
    (["--precision", "fp16", "--device", "cpu"],
     "engine.precision: fp16 is for CUDA; use bf16 or fp32 on CPU"),
    (["--device", "tpu"], "engine.device: unknown device 'tpu'"),
])
def test_train_precision_mistakes_are_one_line_errors(task, option, message, sr_folder, tmp_path,
                                                      capsys):
    sets = tiny_sr_config(sr_folder, tmp_path / "run") if task == "sr" else \
        ["data.dataset=synthetic", f"engine.out_dir={tmp_path / 'run'}"]
    assert main([task, "train"] + option + set_args(sets)) == 2
    assert capsys.readouterr().err == f"densekit: error: {message}\n"
    assert not (tmp_path / "run").exists()


def not_channels_last(calls):
    """The convolutions of training steps (gradients enabled) whose input or weight is not
    channels_last."""
    return [c for c in calls if c.training and not (c.input_channels_last and
                                                     c.weight_channels_last)]


def test_sr_training_runs_channels_last(sr_folder, tmp_path):
    from densekit.tasks.sr import train

    with conv_calls() as calls:
        train(None, tiny_sr_config(sr_folder, tmp_path / "run", **{
            "model.channels": 3, "model.options": "{features: 8, upsampler: deconv}",
            "train.epochs": 1, "train.iters_per_epoch": 2}))
    assert {c.kind for c in calls if c.training} == {"Conv2d", "ConvTranspose2d"}
    assert not_channels_last(calls) == []


def test_seg_training_runs_channels_last_in_both_phases(tmp_path):
    from densekit.tasks.seg import train

    with conv_calls() as calls:
        train(None, tiny_seg_config(tmp_path / "run", **{
            "data.options": "{num_images: 4, size: [32, 32], num_classes: 3}",
            "train.phase1_epochs": 1, "train.phase2_epochs": 1, "train.iters_per_epoch": 1,
            "train.val_every_epochs": 0}))
    # G's convolutions in both steps, and A's (image and label branch) three calls in phase 2
    assert sum(c.training for c in calls) > 2 * 60
    assert not_channels_last(calls) == []
