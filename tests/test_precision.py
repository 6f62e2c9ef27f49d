"""Training precision and memory layout: --precision/--device on sr/seg train, the auto choice,
channels_last through whole training steps of both tasks."""

import pytest
import torch
from torch import nn

from densekit.cli.main import main
from densekit.engine import precision
from densekit.engine.checkpoint import list_checkpoints, load_checkpoint

from conftest import tiny_sr_config


def sets_args(sets):
    return [x for s in sets for x in ("--set", s)]


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
    assert main(["sr", "train", "--precision", "bf16", "--device", "cpu"]
                + sets_args(sets)) == 0
    assert "device cpu, bf16, channels_last" in capsys.readouterr().out
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
    assert main([task, "train"] + option + sets_args(sets)) == 2
    assert capsys.readouterr().err == f"densekit: error: {message}\n"
    assert not (tmp_path / "run").exists()


@pytest.fixture
def conv_layouts():
    """(input, weight) channels_last flags of every 2-D (transposed) convolution run with
    gradients enabled, i.e. in training steps."""
    seen = []

    def hook(module, args):
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and torch.is_grad_enabled():
            cl = torch.channels_last
            seen.append((type(module).__name__, args[0].is_contiguous(memory_format=cl),
                         module.weight.is_contiguous(memory_format=cl)))

    handle = nn.modules.module.register_module_forward_pre_hook(hook)
    yield seen
    handle.remove()


def test_sr_training_runs_channels_last(sr_folder, tmp_path, conv_layouts):
    from densekit.tasks.sr import train

    train(None, tiny_sr_config(sr_folder, tmp_path / "run", **{
        "model.channels": 3, "model.options": "{features: 8, upsampler: deconv}",
        "train.epochs": 1, "train.iters_per_epoch": 2}))
    assert {name for name, _, _ in conv_layouts} == {"Conv2d", "ConvTranspose2d"}
    assert all(x and w for _, x, w in conv_layouts), conv_layouts


def test_seg_training_runs_channels_last_in_both_phases(tmp_path, conv_layouts):
    from densekit.tasks.seg import train

    sets = {"model.name": "torchvision:lraspp_mobilenet_v3_large", "data.dataset": "synthetic",
            "data.options": "{num_images: 4, size: [32, 32], num_classes: 3}",
            "data.crop_size": "[32, 32]", "data.workers": 0, "train.phase1_epochs": 1,
            "train.phase2_epochs": 1, "train.iters_per_epoch": 1, "train.val_every_epochs": 0,
            "engine.out_dir": tmp_path / "run", "engine.progress": "false",
            "engine.tensorboard": "false", "engine.precision": "fp32"}
    train(None, [f"{k}={v}" for k, v in sets.items()])
    # G's convolutions in both steps, and A's (image and label branch) three calls in phase 2
    assert len(conv_layouts) > 2 * 60
    assert all(x and w for _, x, w in conv_layouts), [c for c in conv_layouts if not all(c[1:])]
