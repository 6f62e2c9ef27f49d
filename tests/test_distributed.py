"""Data-parallel training: 2 CPU processes (torchrun, gloo) give the weights of 1 process with
the same global batch; only process 0 writes; a batch the processes cannot share is refused.

Run as a script (``torchrun tests/test_distributed.py seg train ...``) it is the densekit CLI
with a tiny BatchNorm-free generator: with BatchNorm, per-process batch statistics differ from
the global batch's (that is what engine.sync_bn is for, on GPUs), so the SS-GAN equality test
needs a generator without it.
"""

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from densekit.engine.checkpoint import list_checkpoints, load_checkpoint

from helpers import (assert_same_state, load_state, metrics_rows, set_args, tiny_seg_config,
                     tiny_sr_config, wait_for_metrics)

# fp32 on CPU: gradients averaged over two half batches vs one full batch differ by rounding
# (measured: <= 3e-8 absolute after the 6 SR steps); this leaves room, and still fails at once
# if a process trained on the wrong samples or with unsynchronised gradients
TOL = dict(rtol=1e-5, atol=1e-6)


class TinyGenerator(nn.Module):
    family = "vgg"

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(8, num_classes, 3, padding=1))

    def forward(self, x):
        return self.net(x)


def torchrun(args, cwd, ok=True):
    """``python -m torch.distributed.run --standalone --nproc_per_node 2 ARGS`` (free port)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2"] + args
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert (res.returncode == 0) == ok, res.stdout + res.stderr
    return res.stdout + res.stderr


def files(out):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*"))


def assert_same_weights(a_path, b_path, key="state_dict"):
    assert_same_state(load_state(a_path, key), load_state(b_path, key), **TOL)


def assert_same_rows(ddp, one):
    """Same steps, splits and keys; the reduced scalars equal the single-process ones."""
    assert [(r["step"], r["split"]) for r in ddp] == [(r["step"], r["split"]) for r in one]
    for a, b in zip(ddp, one):
        assert set(a) == set(b)
        for k in a.keys() - {"split", "time", "samples_per_s", "psnr"}:  # psnr: mean of logs
            assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(b[k])), (a["step"], k, a[k], b[k])


def test_sr_on_two_processes_equals_one(sr_folder, tmp_path):
    from densekit.tasks.sr import train

    ddp, one = tmp_path / "ddp", tmp_path / "one"
    val = {"train.val_every_epochs": 1}
    # --precision wins over the config's engine.precision (the shortcut for --set)
    output = torchrun(["-m", "densekit", "sr", "train", "--precision", "fp32"] + set_args(
        tiny_sr_config(sr_folder, ddp, **val, **{"engine.precision": "auto"})), tmp_path)
    train(None, tiny_sr_config(sr_folder, one, **val))  # fp32
    assert_same_weights(ddp / "weights.pt", one / "weights.pt")
    assert_same_rows(metrics_rows(ddp), metrics_rows(one))  # train scalars and validation, logged once
    assert files(ddp) == files(one)  # only process 0 wrote (same files as one process)
    assert output.count("done: weights") == 1 and output.count("run folder") == 1
    assert "device cpu, fp32, channels_last, 2 processes" in output and "Traceback" not in output


def seg_sets(out, **extra):
    """tiny_seg_config with the paper's FCN-8s (TinyGenerator under torchrun), batch 4."""
    return tiny_seg_config(out, **{
        "model.name": "fcn8s_vgg16", "data.crop_size": "[24, 24]", "data.val_limit": 3,
        "train.phase1_epochs": 1, "train.batch_size": 4,
        "train.adversarial.d_options": "{width: 8, label_width: 8}",
        "train.adversarial.guard": "false", "engine.keep_ckpts": 1, **extra})


def test_ssgan_two_phases_on_two_processes_equal_one(tmp_path, monkeypatch):
    import densekit.tasks.seg as seg

    ddp, one = tmp_path / "ddp", tmp_path / "one"
    output = torchrun([__file__, "seg", "train"] + set_args(seg_sets(ddp)), tmp_path)
    monkeypatch.setattr(seg.task, "build_generator", lambda cfg, n: TinyGenerator(n))
    seg.train(None, seg_sets(one))
    assert_same_weights(ddp / "weights.pt", one / "weights.pt")  # G
    (ckpt,) = (ddp / "checkpoints").iterdir()
    assert_same_weights(ckpt, one / "checkpoints" / ckpt.name, key="modules")  # G and D
    r = metrics_rows(ddp)
    assert_same_rows(r, metrics_rows(one))  # ce, adv, d_loss, ... and val mIoU (summed matrices)
    assert {"d_loss", "adv"} <= set(r[-2]) and r[-1]["split"] == "val"
    assert files(ddp) == files(one)
    assert output.count("done: weights") == 1 and "Traceback" not in output


def test_batch_not_divisible_by_the_processes_is_a_one_line_error(sr_folder, tmp_path,
                                                                  monkeypatch, capsys):
    from densekit.cli.main import main

    # process 0 of 2 as torchrun starts it; the check comes before joining the group
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "2"),
                       ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "1")):
        monkeypatch.setenv(key, value)
    out = tmp_path / "run"
    argv = ["sr", "train"] + set_args(tiny_sr_config(sr_folder, out,
                                                      **{"train.batch_size": 3}))
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == ("densekit: error: train.batch_size: 3 is not divisible by the 2 "
                            "processes (WORLD_SIZE); the batch size is global, use a multiple "
                            "of 2\n")
    assert captured.out == "" and not out.exists()


def test_ssgan_rollbacks_are_taken_by_all_processes_together(tmp_path):
    # A "wins outright" at every phase-2 step: roll back once (every process loads the
    # checkpoint process 0 picked), then give up; every process stops with the same error
    out = tmp_path / "run"
    output = torchrun([__file__, "seg", "train"] + set_args(seg_sets(out, **{
        "train.adversarial.guard": "true", "train.adversarial.d_loss_floor": 100,
        "train.adversarial.patience": 1, "engine.max_rollbacks": 1})), tmp_path, ok=False)
    assert "ROLLBACK 1/1: adversarial network winning outright" in (out / "log.txt").read_text()
    assert output.count("densekit: error: adversarial network winning outright (D loss < "
                        "100.0 for 1 steps) at step 2; gave up after 1 rollbacks") == 2


def _worker_with_rank(agent_pid, rank):
    """The pid of the torchrun worker with RANK=rank (Linux /proc)."""
    for proc in Path("/proc").iterdir():
        try:
            ppid = int(proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
            env = proc.joinpath("environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == agent_pid and f"RANK={rank}".encode() in env:
            return int(proc.name)
    raise AssertionError(f"no worker with RANK={rank} under {agent_pid}")


def test_sigterm_to_one_process_stops_all_at_the_same_step(sr_folder, tmp_path):
    import re
    import signal

    out = tmp_path / "run"
    sets = tiny_sr_config(sr_folder, out, **{"train.epochs": 1, "train.iters_per_epoch": 100000,
                                             "engine.ckpt_every": 100000})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "densekit", "sr", "train"] + set_args(sets)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), start_new_session=True)
    try:
        wait_for_metrics(proc, out)
        os.kill(_worker_with_rank(proc.pid, 1), signal.SIGTERM)  # e.g. one node preempted
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # both processes left through the clean stop (exit 128 + 15), none crashed or hung
    codes = re.findall(r"rank\s*:\s*(\d+) \(local_rank: \d+\)\s+exitcode\s*:\s*(-?\d+)", output)
    assert sorted(codes) == [("0", "143"), ("1", "143")], output
    (step,) = map(int, re.findall(r"stopped by signal 15 at step (\d+)", output))
    (ckpt,) = list_checkpoints(out / "checkpoints")  # written by process 0, not signalled
    assert load_checkpoint(ckpt)["step"] == step
    assert [r["step"] for r in metrics_rows(out)] == list(range(1, step + 1))


def test_shards_of_a_step_batch_are_the_global_batch(sr_folder):
    from densekit.data.seg import SegStepBatches, build_seg_dataset, train_transforms
    from densekit.data.sr import SRPatchBatches

    def sr(slots):
        return SRPatchBatches([str(sr_folder)], scale=2, patch_size=16, batch_size=4, seed=3,
                              total_steps=9, slots=slots)

    ds = build_seg_dataset("synthetic", None, "train", num_images=6, size=(24, 24),
                           num_classes=3)

    def sg(slots):
        return SegStepBatches(ds, train_transforms((16, 16), (0.5, 2.0)), 4, 3, 9, slots)

    for make in (sr, sg):
        full = make(None)[5]
        parts = [make(range(0, 2))[5], make(range(2, 4))[5]]
        for whole, *shards in zip(full, *parts):
            assert torch.equal(torch.cat(shards), whole)
        assert not torch.equal(parts[0][0], parts[1][0])


def test_sync_bn(sr_folder, tmp_path, monkeypatch, capsys):
    from densekit.cli.main import main
    from densekit.engine.distributed import wrap

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert wrap(net, sync_bn=True) is net and type(net[1]) is nn.BatchNorm2d  # one process
    for key, value in (("RANK", "1"), ("LOCAL_RANK", "1"), ("WORLD_SIZE", "2")):
        monkeypatch.setenv(key, value)
    sets = tiny_sr_config(sr_folder, tmp_path / "run", **{"engine.sync_bn": "true"})
    assert main(["sr", "train"] + set_args(sets)) == 2
    assert capsys.readouterr().err == ("densekit: error: engine.sync_bn: SyncBatchNorm needs "
                                       "CUDA GPUs; set it to false for training on CPUs\n")


if __name__ == "__main__":  # the CLI with TinyGenerator, for torchrun (see the docstring)
    import densekit.tasks.seg as seg
    from densekit.cli.main import main

    seg.task.build_generator = lambda cfg, n: TinyGenerator(n)
    sys.exit(main(sys.argv[1:]))
