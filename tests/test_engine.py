"""The shared engine on a seconds-long SR run: checkpoints, resume equality, refusals."""

import copy
import shutil

import pytest
import torch

from densekit.engine.checkpoint import find_resume, list_checkpoints, load_checkpoint
from densekit.engine.logger import logged_command, read_metrics, run_starts
from densekit.errors import DensekitError
from densekit.tasks.sr import train

from helpers import (assert_same_state, load_state, metrics_rows, set_args, tiny_sr_config,
                     wait_for_metrics)


def weights(out_dir):
    return load_state(out_dir / "weights.pt")


def test_run_writes_checkpoints_logs_and_weights(sr_folder, tmp_path):
    out = tmp_path / "run"
    train(None, tiny_sr_config(sr_folder, out, **{"train.val_every_epochs": 1}))
    names = [p.name for p in list_checkpoints(out / "checkpoints")]
    assert names == ["step_00000002.pt", "step_00000004.pt", "step_00000006.pt"]
    state = load_checkpoint(out / "checkpoints" / names[-1])
    assert state["step"] == 6
    assert set(state) >= {"modules", "optimizers", "schedulers", "rng", "config", "signature"}
    rows = metrics_rows(out)
    train_rows = [r for r in rows if r["split"] == "train"]
    val_rows = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6]
    assert all("loss" in r and "samples_per_s" in r for r in train_rows)
    assert len(val_rows) == 3 and all("psnr_hr" in r for r in val_rows)
    # lr halves every epoch (step scheduler, 2 iterations per epoch)
    assert [r["lr_model"] for r in train_rows][::2] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    assert set(weights(out)) == set(state["modules"]["model"])


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(sr_folder, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    train(None, tiny_sr_config(sr_folder, full))
    # an interrupted run: only the step-2 checkpoint survived
    (part / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / "step_00000002.pt", part / "checkpoints")
    train(None, tiny_sr_config(sr_folder, part), resume="auto")
    assert_same_state(weights(full), weights(part))
    # log.txt says where each start began, read back as the results scripts read it
    (start,) = run_starts((full / "log.txt").read_text())
    assert start[:2] == (0, 6) and start[2].startswith("cpu, fp32")
    (resumed,) = run_starts((part / "log.txt").read_text())
    assert resumed == (2, 6, start[2])
    assert logged_command((part / "log.txt").read_text()).startswith("densekit sr train")


def scalar_curve(tb_dir, tag: str) -> list[tuple[int, float]]:
    """(step, value) of one TensorBoard scalar as TensorBoard shows it (purged events hidden)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_a_resumed_run_supersedes_what_was_logged_after_its_checkpoint(sr_folder, tmp_path):
    """A run killed at step 6 whose newest surviving checkpoint is step 2 logged steps 3-6
    twice: read_metrics and TensorBoard show each step once, as the resumed run logged it,
    the same curve as the uninterrupted run's; metrics.jsonl itself stays append-only."""
    sets = {"train.val_every_epochs": 1, "engine.tensorboard": "true"}
    full, part = tmp_path / "full", tmp_path / "part"
    train(None, tiny_sr_config(sr_folder, full, **sets))
    shutil.copytree(full, part)
    for p in list_checkpoints(part / "checkpoints")[1:]:
        p.unlink()
    (part / "weights.pt").unlink()
    train(None, tiny_sr_config(sr_folder, part, **sets), resume="auto")
    assert_same_state(weights(full), weights(part))

    def curve(rows):
        return [(r["split"], r["step"], r.get("loss", r.get("psnr_hr"))) for r in rows]

    assert [r["step"] for r in metrics_rows(part) if r["split"] == "train"] == \
        [1, 2, 3, 4, 5, 6, 3, 4, 5, 6]  # the file keeps both
    assert curve(read_metrics(part)) == curve(read_metrics(full)) == curve(metrics_rows(full))
    assert [r["split"] for r in read_metrics(part)][:3] == ["train", "train", "val"]
    tb = scalar_curve(part / "tb", "train/loss")
    assert [s for s, _ in tb] == [1, 2, 3, 4, 5, 6]
    assert [v for _, v in tb] == [v for _, v in scalar_curve(full / "tb", "train/loss")]
    # without the purge TensorBoard would keep the interrupted run's events as well
    assert [s for s, _ in scalar_curve(part / "tb", "val/psnr_hr")] == [2, 4, 6]
    # killed before its first checkpoint: it starts again at step 0
    early = tmp_path / "early"
    shutil.copytree(full, early, ignore=shutil.ignore_patterns("checkpoints", "weights.pt"))
    train(None, tiny_sr_config(sr_folder, early, **sets), resume="auto")
    assert curve(read_metrics(early)) == curve(read_metrics(full))
    assert scalar_curve(early / "tb", "train/loss") == scalar_curve(full / "tb", "train/loss")


def test_read_metrics_keeps_the_validation_at_the_checkpoint_and_every_event(tmp_path):
    """Rolled back from step 5 to the step-4 checkpoint: the step-5 row goes, the validation at
    step 4 (logged before the checkpoint) and the rollback event stay; a second rollback of
    the same steps supersedes again."""
    import json

    rows = [("train", 3, 0.3), ("train", 4, 0.4), ("val", 4, 30.0), ("train", 5, 0.9),
            ("event", 4, 1.0), ("train", 5, 0.5), ("val", 6, 31.0), ("train", 6, 0.6),
            ("event", 4, 2.0), ("train", 5, 0.45), ("train", 6, 0.55)]
    (tmp_path / "metrics.jsonl").write_text("".join(
        json.dumps({"step": st, "split": sp, "v": v}) + "\n" for sp, st, v in rows))
    assert [(r["split"], r["step"], r["v"]) for r in read_metrics(tmp_path)] == \
        [("train", 3, 0.3), ("train", 4, 0.4), ("val", 4, 30.0), ("event", 4, 1.0),
         ("event", 4, 2.0), ("train", 5, 0.45), ("train", 6, 0.55)]


def test_resume_auto_skips_a_truncated_checkpoint(sr_folder, tmp_path):
    out = tmp_path / "run"
    train(None, tiny_sr_config(sr_folder, out))
    last = out / "checkpoints" / "step_00000006.pt"
    last.write_bytes(last.read_bytes()[:1000])
    assert find_resume(out / "checkpoints").name == "step_00000004.pt"
    with pytest.raises(DensekitError, match="step_00000006.pt: not a valid checkpoint"):
        train(None, tiny_sr_config(sr_folder, out), resume=str(last))


def test_refuses_checkpoint_of_another_run(sr_folder, tmp_path):
    out = tmp_path / "run"
    train(None, tiny_sr_config(sr_folder, out))
    with pytest.raises(DensekitError, match=r"different run \(scale: checkpoint has 2"):
        train(None, tiny_sr_config(sr_folder, out, **{"model.scale": 3}), resume="auto")


def test_refuses_to_overwrite_a_run_without_resume(sr_folder, tmp_path):
    out = tmp_path / "run"
    train(None, tiny_sr_config(sr_folder, out))
    with pytest.raises(DensekitError, match="already holds checkpoints"):
        train(None, tiny_sr_config(sr_folder, out))


def test_loss_decreases(sr_folder, tmp_path):
    out = tmp_path / "run"
    train(None, tiny_sr_config(sr_folder, out, **{"train.epochs": 1, "train.iters_per_epoch": 40,
                                                  "train.scheduler.name": "constant"}))
    losses = [r["mse"] for r in metrics_rows(out) if r["split"] == "train"]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


@pytest.mark.parametrize("loss", ["l1", "charbonnier"])
def test_other_pixel_losses_train_and_still_log_mse(sr_folder, tmp_path, loss):
    out = tmp_path / "run"
    train(None, tiny_sr_config(sr_folder, out, **{
        "train.epochs": 1, "train.iters_per_epoch": 40, "train.scheduler.name": "constant",
        "train.l2": 0, "train.loss": loss}))
    rows = [r for r in metrics_rows(out) if r["split"] == "train"]
    assert all(r["loss"] != pytest.approx(r["mse"]) for r in rows)  # the loss is not the MSE
    losses = [r["mse"] for r in rows]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_pixel_losses_values():
    from densekit.tasks.sr import pixel_loss

    a, b = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 0.0, 0.0])
    assert pixel_loss("mse", a, b).item() == pytest.approx(1.25 / 3)
    assert pixel_loss("l1", a, b).item() == pytest.approx(0.5)
    assert pixel_loss("charbonnier", a, b).item() == pytest.approx(
        (1e-3 + (0.25 + 1e-6) ** 0.5 + (1 + 1e-6) ** 0.5) / 3)


def test_ema_is_the_average_validation_and_weights_use_and_it_resumes(sr_folder, tmp_path):
    from densekit.config import load_config
    from densekit.tasks.sr import SRConfig, SRTask

    full, part = tmp_path / "full", tmp_path / "part"
    sets = {"train.ema": 0.5}
    train(None, tiny_sr_config(sr_folder, full, **sets))
    state = load_checkpoint(full / "checkpoints" / "step_00000006.pt")
    model, ema = state["modules"]["model"], state["modules"]["ema"]
    assert int(ema["n_averaged"]) == 6
    # the exported weights are the EMA's, not the trained weights
    exported = weights(full)
    assert_same_state(exported, {k[len("module."):]: v for k, v in ema.items()
                                 if k.startswith("module.")})
    assert not torch.equal(exported["tail.weight"], model["tail.weight"])
    # a checkpoint read as weights (sr eval --weights, train.init_from) gives the EMA too
    from densekit.tasks.sr import read_sr_weights
    assert_same_state(read_sr_weights(full / "checkpoints" / "step_00000006.pt")["state_dict"],
                      exported)
    # resume equality with the EMA
    (part / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / "step_00000002.pt", part / "checkpoints")
    train(None, tiny_sr_config(sr_folder, part, **sets), resume="auto")
    assert_same_state(weights(full), weights(part))
    # a run without an EMA cannot resume a checkpoint with one, and the error says why
    with pytest.raises(DensekitError, match=r"different run \(ema: checkpoint has 0.5"):
        train(None, tiny_sr_config(sr_folder, full, **{"train.epochs": 4}), resume="auto")
    # the update rule, with the warmed-up decay min(0.5, (1 + n) / (10 + n)) after n updates
    cfg = load_config(SRConfig, None, tiny_sr_config(sr_folder, tmp_path / "t", **sets))
    task = SRTask(cfg)
    batches = task.batches(0)
    task.train_step(next(batches), 0)
    ema = w = task.model.tail.weight.detach().clone()
    assert torch.equal(task.ema.module.tail.weight, w)  # the first update copies
    for n, d in ((1, 2 / 11), (2, 3 / 12), (3, 4 / 13)):
        task.train_step(next(batches), n)
        w = task.model.tail.weight.detach().clone()
        ema = d * ema + (1 - d) * w
        torch.testing.assert_close(task.ema.module.tail.weight, ema)
    from densekit.engine.ema import ema_decay
    assert ema_decay(0.5, 8) == 0.5 and ema_decay(0.999, 20000) == 0.999
    assert ema_decay(0.999, 100) == pytest.approx(101 / 110)


def test_training_batches_follow_the_protocol(sr_folder):
    from densekit.data.sr import SRPatchBatches, make_lr

    data = SRPatchBatches([str(sr_folder)], scale=3, patch_size=25, batch_size=3, channels=1,
                          seed=1, total_steps=10)
    lr, hr = data[4]
    assert hr.shape == (3, 1, 24, 24) and lr.shape == (3, 1, 8, 8)  # HR crop multiple of 3
    # Y at uint8 levels, LR = MATLAB bicubic of it; pure function of the step
    assert torch.allclose(hr * 255, torch.round(hr * 255), atol=1e-4)
    torch.testing.assert_close(lr, make_lr(hr.double(), 3).float())
    lr2, hr2 = data[4]
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2)
    assert not torch.equal(data[5][1], hr)


def test_resize_augmentation_takes_downscaled_crops(tmp_path):
    import numpy as np
    from PIL import Image

    from densekit.data.sr import SRPatchBatches, make_lr

    # a gray ramp rising 1 level per pixel to the right: downscaled by 0.5, 2 levels per pixel
    ramp = np.tile(np.arange(40, 200, dtype=np.uint8), (160, 1))
    (tmp_path / "d").mkdir()
    Image.fromarray(ramp).save(tmp_path / "d" / "ramp.png")
    common = dict(scale=2, patch_size=24, batch_size=4, channels=1, augment=False, seed=3,
                  total_steps=4)
    plain = SRPatchBatches([str(tmp_path / "d")], **common)
    half = SRPatchBatches([str(tmp_path / "d")], resize_range=(0.5, 0.5), **common)
    for data, levels in ((plain, 1), (half, 2)):
        lr, hr = data[1]
        steps = (hr[..., 4:-4, 1:] - hr[..., 4:-4, :-1]) * 255  # inner columns: no border effect
        inner = steps[..., 4:-4]
        assert inner.mean().item() == pytest.approx(levels, abs=0.05)  # a gray image is its Y
        assert torch.allclose(hr * 255, torch.round(hr * 255), atol=1e-4)  # 8-bit levels
        torch.testing.assert_close(lr, make_lr(hr.double(), 2).float())
    # the default draws nothing extra: the same batches as before the option existed
    same = SRPatchBatches([str(tmp_path / "d")], resize_range=(1.0, 1.0), **common)
    assert torch.equal(same[2][1], plain[2][1])
    with pytest.raises(DensekitError, match=r"data.resize_range: expected \[lo, hi\]"):
        train(None, tiny_sr_config(tmp_path / "d", tmp_path / "run",
                                   **{"data.resize_range": "[0.5, 1.5]"}))


def test_patch_larger_than_images_is_a_clear_error(sr_folder):
    from densekit.data.sr import SRPatchBatches

    with pytest.raises(DensekitError, match="smaller than the 200px training patch"):
        SRPatchBatches([str(sr_folder)], scale=2, patch_size=200, batch_size=2)


def test_sigterm_writes_a_checkpoint_and_says_how_to_resume(sr_folder, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    sets = tiny_sr_config(sr_folder, out, **{"train.epochs": 1, "train.iters_per_epoch": 100000,
                                             "engine.ckpt_every": 100000, "data.workers": 1})
    cmd = [sys.executable, "-m", "densekit", "sr", "train"] + set_args(sets)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    wait_for_metrics(proc, out)
    os.killpg(proc.pid, signal.SIGTERM)  # the whole group, data worker included
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "Resume with: densekit sr train" in output and "--resume auto" in output
    log = (out / "log.txt").read_text()
    hint = output.split("Resume with: ")[1].split(" --resume auto")[0]
    assert logged_command(log) == hint and hint.startswith("densekit sr train --set ")
    assert log.count("command: ") == 1 and "Resume with: " in log.splitlines()[-1]
    (ckpt,) = list_checkpoints(out / "checkpoints")
    step = load_checkpoint(ckpt)["step"]
    assert step >= 1 and ckpt.name == f"step_{step:08d}.pt"


def _nan_once_at(monkeypatch, bad_step):
    """Make SRTask.train_step report a NaN loss (without updating) the first time it reaches
    ``bad_step``."""
    from densekit.tasks.sr import SRTask

    real = SRTask.train_step
    fired = []

    def flaky(self, batch, step):
        if step == bad_step and not fired:
            fired.append(step)
            return {"loss": float("nan"), "mse": float("nan"), "psnr": float("nan")}
        return real(self, batch, step)

    monkeypatch.setattr(SRTask, "train_step", flaky)
    return fired


def test_nonfinite_loss_rolls_back_and_replays(sr_folder, tmp_path, monkeypatch):
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    train(None, tiny_sr_config(sr_folder, clean))
    fired = _nan_once_at(monkeypatch, 3)
    train(None, tiny_sr_config(sr_folder, faulty))
    assert fired == [3]
    assert "ROLLBACK 1/5: non-finite loss at step 3; back from step 3 to 2" in \
        (faulty / "log.txt").read_text()
    a, b = weights(clean), weights(faulty)
    for k in a:  # the replay from the step-2 checkpoint reproduces the clean run exactly
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_nonfinite_loss_stop_and_skip_policies(sr_folder, tmp_path, monkeypatch):
    _nan_once_at(monkeypatch, 3)
    with pytest.raises(DensekitError, match="non-finite loss at step 3; the last checkpoint"):
        train(None, tiny_sr_config(sr_folder, tmp_path / "stop",
                                   **{"engine.nonfinite": "stop"}))
    _nan_once_at(monkeypatch, 3)
    train(None, tiny_sr_config(sr_folder, tmp_path / "skip", **{"engine.nonfinite": "skip"}))
    assert "step 3: non-finite loss, update skipped" in (tmp_path / "skip" / "log.txt").read_text()
    assert all(torch.isfinite(v).all() for v in weights(tmp_path / "skip").values())


def test_backward_step_never_applies_a_nonfinite_loss():
    from densekit.engine.precision import Precision

    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    prec = Precision(torch.device("cpu"), "fp32")
    assert prec.backward_step((w * float("inf")).sum(), opt) is False
    assert torch.equal(w.detach(), torch.ones(3))
    assert prec.backward_step((w * 2).sum(), opt) is True
    assert torch.allclose(w.detach(), torch.full((3,), 0.8))


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from densekit.engine import checkpoint as ck

    good = tmp_path / "step_00000001.pt"
    ck.atomic_torch_save({"a": torch.ones(2)}, good)

    def full_disk(obj, f):
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")

    monkeypatch.setattr(ck.torch, "save", full_disk)
    with pytest.raises(DensekitError, match="step_00000002.pt: cannot write checkpoint .*"
                                            "previous checkpoint is kept"):
        ck.atomic_torch_save({"a": torch.zeros(2)}, tmp_path / "step_00000002.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001.pt"]
    monkeypatch.undo()
    assert torch.equal(ck.load_checkpoint(good)["a"], torch.ones(2))


def test_init_from_starts_from_weights_and_refuses_ones_that_do_not_fit(sr_folder, tmp_path):
    from densekit.config import load_config
    from densekit.tasks.sr import SRConfig, SRTask, shipped_weights

    def task(**sets):
        return SRTask(load_config(SRConfig, None, tiny_sr_config(sr_folder, tmp_path / "b",
                                                                 **sets)))

    a = tmp_path / "a"
    train(None, tiny_sr_config(sr_folder, a))
    for src, ref, sets in [
            (a / "weights.pt", weights(a), {}),
            (a / "checkpoints" / "step_00000004.pt",
             load_checkpoint(a / "checkpoints" / "step_00000004.pt")["modules"]["model"], {}),
            ("shipped", torch.load(shipped_weights("hdcn", 2), weights_only=True)["state_dict"],
             {"model.options": "{init: kaiming}"})]:
        assert_same_state(task(**{"train.init_from": src}, **sets).model.state_dict(), ref)
    scratch = task().model.state_dict()
    assert not torch.equal(scratch["tail.weight"], weights(a)["tail.weight"])
    w = str(a / "weights.pt")
    # another scale (EDSR's x3/x4 from x2): all but the scale-dependent upsampler is copied
    ref = weights(a)
    for scale, fresh in [(4, {"upsample.layers.1.weight", "upsample.layers.1.bias"}),
                         (3, {"upsample.layers.0.weight"})]:  # its k5 deconv; same-shape bias copied
        own = task(**{"model.scale": scale}).model.state_dict()
        got = task(**{"train.init_from": w, "model.scale": scale}).model.state_dict()
        assert {k for k in got if k not in ref or got[k].shape != ref[k].shape} == fresh
        for k, v in got.items():
            assert torch.equal(v, own[k] if k in fresh else ref[k]), k
    with pytest.raises(DensekitError, match=r"x2 weights do not fit hdcn \(they were trained "
                       r"with channels 1, options \{'features': 8, 'init': 'kaiming'\}; "
                       r"\S+ differs\)"):
        task(**{"train.init_from": w, "model.scale": 4, "model.options": "{features: 16}"})
    with pytest.raises(DensekitError, match=r"weights do not fit hdcn \(they were trained with "
                       r"channels 1, options \{'features': 8, 'init': 'kaiming'\}; size mismatch"):
        task(**{"train.init_from": w, "model.options": "{features: 16}"})
    with pytest.raises(DensekitError, match="trained with channels 1.*size mismatch"):
        task(**{"train.init_from": w, "model.channels": 3})
    with pytest.raises(DensekitError, match="weights are for model hdcn, not srcnn"):
        task(**{"train.init_from": w, "model.name": "srcnn", "model.options": "{}"})
    with pytest.raises(DensekitError, match="train.init_from: no shipped weights for srcnn x2"):
        task(**{"train.init_from": "shipped", "model.name": "srcnn", "model.options": "{}"})
    with pytest.raises(DensekitError, match="^train.init_from: .*nope.pt is neither a file nor a "
                                            "shipped weights name"):
        task(**{"train.init_from": str(tmp_path / "nope.pt")})


@pytest.mark.parametrize("sets, expected", [
    ({"warmup_steps": 3}, [0.25, 0.5, 0.75, 1.0, 1.0]),
    ({"name": "step", "step_epochs": 1, "gamma": 0.5}, [1, 1, 0.5, 0.5, 0.25]),
    ({"name": "step", "step_epochs": 1, "gamma": 0.5, "warmup_steps": 2},
     [1 / 3, 2 / 3, 0.5, 0.5, 0.25]),
    ({"name": "linear", "end_factor": 0.0}, [1, 0.75, 0.5, 0.25, 0]),
    ({"name": "poly", "end_factor": 0.0, "power": 2.0}, [1, 0.5625, 0.25, 0.0625, 0]),
    ({"name": "cosine", "end_factor": 0.0}, [1, 0.5 + 0.5 ** 1.5, 0.5, 0.5 - 0.5 ** 1.5, 0]),
    ({"name": "cosine", "end_factor": 0.5}, [1, 0.75 + 0.5 ** 2.5, 0.75, 0.75 - 0.5 ** 2.5, 0.5]),
])
def test_lr_schedule_per_step(sets, expected):
    from densekit.engine.optim import SchedulerConfig, build_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(SchedulerConfig(**sets), opt, total_steps=4, iters_per_epoch=2)
    lrs = []
    for _ in expected:
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx(expected)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers_are_fused_with_the_results_of_torchs_loop(name):
    """build_optimizer picks torch's fused kernel on CPU; five steps (weight decay on, a
    channels_last conv weight, a parameter without gradient) give the parameters of torch's
    one-parameter-at-a-time loop (foreach=False)."""
    from densekit.engine.optim import OptimConfig, build_optimizer

    cfg = OptimConfig(name=name, lr=1e-2, weight_decay=1e-3, momentum=0.9)
    shapes = [(8, 4, 3, 3), (8,), (5, 7), (3,)]
    init = [torch.randn(s) for s in shapes]
    init[0] = init[0].contiguous(memory_format=torch.channels_last)
    frozen = torch.nn.Parameter(torch.randn(2), requires_grad=False)
    ours = [torch.nn.Parameter(t.clone()) for t in init]
    ref = [torch.nn.Parameter(t.clone()) for t in init]
    opt = build_optimizer(cfg, ours + [frozen])
    assert opt.defaults["fused"] is True and len(opt.param_groups[0]["params"]) == len(shapes)
    kw = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "foreach": False}
    if name == "sgd":
        loop = torch.optim.SGD(ref, momentum=cfg.momentum, **kw)
    else:
        loop = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name](
            ref, betas=tuple(cfg.betas), eps=cfg.eps, **kw)
    for step in range(5):
        grads = [torch.randn(s) for s in shapes]
        for params in (ours, ref):
            for p, g in zip(params, grads):
                p.grad = None if step == 2 and p.dim() == 1 else g.clone()  # a missing grad
        opt.step()
        loop.step()
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert ours[0].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_fused_optimizer_resumed_from_another_memory_layout(name):
    """Moments saved by a run without channels_last (NCHW), loaded into the fused optimizer of
    a channels_last model: the steps equal torch's loop (torch's fused kernel alone pairs the
    elements by memory position and gets them wrong)."""
    from densekit.engine.optim import OptimConfig, build_optimizer

    cfg = OptimConfig(name=name, lr=1e-2, momentum=0.9)
    w0 = torch.randn(6, 3, 3, 3)
    nchw = torch.nn.Parameter(w0.clone())
    first = build_optimizer(cfg, [nchw])
    nchw.grad = torch.randn(6, 3, 3, 3)
    first.step()
    saved = first.state_dict()
    ours = torch.nn.Parameter(nchw.detach().clone().contiguous(
        memory_format=torch.channels_last))
    ref = torch.nn.Parameter(nchw.detach().clone())
    opt = build_optimizer(cfg, [ours])
    opt.load_state_dict(copy.deepcopy(saved))  # loaded state tensors are shared
    opt.param_groups[0]["fused"] = True  # a checkpoint from a fused run
    loop = build_optimizer(cfg, [ref])
    loop.load_state_dict(copy.deepcopy(saved))
    loop.param_groups[0]["fused"] = False
    loop.param_groups[0]["foreach"] = False
    for _ in range(3):
        g = torch.randn(6, 3, 3, 3)
        ours.grad = g.contiguous(memory_format=torch.channels_last)
        ref.grad = g.clone()
        opt.step()
        loop.step()
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)


def test_fused_step_leaves_channels_last_parameters_as_they_were():
    """After fused steps a channels_last weight, its gradient and its state keep their shape
    and layout (the state is created in the parameter's layout)."""
    from densekit.engine.optim import OptimConfig, build_optimizer

    w = torch.nn.Parameter(torch.randn(6, 4, 3, 3).contiguous(
        memory_format=torch.channels_last))
    opt = build_optimizer(OptimConfig(name="adam"), [w])
    for _ in range(2):
        w.grad = torch.randn(6, 4, 3, 3).contiguous(memory_format=torch.channels_last)
        opt.step()
    for t in (w, w.grad, opt.state[w]["exp_avg"], opt.state[w]["exp_avg_sq"]):
        assert t.shape == (6, 4, 3, 3)
        assert t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    # and a checkpoint written now loads into a fresh optimizer as usual
    again = build_optimizer(OptimConfig(name="adam"), [w])
    again.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert again.state[w]["exp_avg"].shape == (6, 4, 3, 3)


def test_log_lines_print_above_the_progress_bar_in_order(sr_folder, tmp_path):
    """With stdout and stderr in one pipe (`densekit ... 2>&1 | tee`), every log line is a
    whole line, at its place among the bar's updates (not flushed at exit after the bar)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    sets = tiny_sr_config(sr_folder, out, **{"engine.progress": "true",
                                             "train.val_every_epochs": 1})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe buffers
    res = subprocess.run([sys.executable, "-m", "densekit", "sr", "train"] + set_args(sets),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(env, OMP_NUM_THREADS="1"), timeout=300)
    assert res.returncode == 0, res.stdout
    shown = [line.rsplit("\r", 1)[-1] for line in res.stdout.split("\n")]  # what a terminal keeps
    logged = [line[20:] for line in (out / "log.txt").read_text().splitlines()]  # no time stamp
    assert len(logged) >= 5 and all(m in shown for m in logged), (logged, res.stdout)
    first_val = shown.index(next(m for m in logged if m.startswith("step 2: ")))
    assert first_val < next(i for i, s in enumerate(shown) if "6/6 [" in s)  # before the end
