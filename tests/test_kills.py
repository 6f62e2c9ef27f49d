"""Nothing is lost under faults: SIGKILL at random moments and inside checkpoint writes, resume
with --resume auto each time, and end with the weights of an uninterrupted run; one run per
folder (lock)."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from densekit.cli.main import main
from densekit.engine.checkpoint import (TEMP_RE, checkpoint_step, list_checkpoints,
                                        load_checkpoint, run_lock)
from densekit.engine.logger import read_metrics
from densekit.tasks import seg, sr

from helpers import (assert_same_state, load_state, metrics_rows, set_args, tiny_seg_config,
                     tiny_sr_config)

pytestmark = pytest.mark.usefixtures("one_thread")  # the runs set engine.threads


def temp_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob("*") if TEMP_RE.match(p.name))


def new_steps(metrics: Path, offset: int) -> list[int]:
    if not metrics.exists():
        return []
    with open(metrics) as f:
        f.seek(offset)
        lines = f.read().splitlines()
    return [json.loads(x)["step"] for x in lines if x.endswith("}") and '"train"' in x]


# Each run is a fresh process that SIGKILL can hit anywhere. To keep the suite fast, the runs
# are forked from one helper process that imported torch and densekit once (no torch op ran
# in it, so forking is safe); a forked run is ``python -m densekit ...`` minus the imports.
FORKER = r"""
import json, os, sys
from densekit.cli.main import main
import densekit.tasks.sr, densekit.tasks.seg
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.environ.clear()
        os.environ.update(job["env"])
        fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        try:
            code = main(job["args"])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            import traceback; traceback.print_exc(); code = 99
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code or 0)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status), flush=True)
"""


@pytest.fixture(scope="module")
def forker():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("DENSEKIT_FAULT", None)
    proc = subprocess.Popen([sys.executable, "-c", FORKER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)

    def start(args: list[str], log: Path, fault: str = "") -> tuple[int, object]:
        job_env = dict(env, DENSEKIT_FAULT=fault) if fault else env
        proc.stdin.write(json.dumps({"args": args, "env": job_env, "log": str(log)}) + "\n")
        proc.stdin.flush()
        pid = int(proc.stdout.readline())
        return pid, lambda: int(proc.stdout.readline())

    yield start
    proc.stdin.close()
    proc.wait(timeout=60)


def run_killing(start_run, args: list[str], out: Path, plan, *, total: int,
                ckpt_every: int) -> int:
    """Run ``densekit ARGS`` once per entry of ``plan`` (then once more to the end), each time
    after the first with ``--resume auto``. Entries: ("after", d) SIGKILLs the run as soon as it
    logged the d-th step after its resume point (at most step total - 8, so that it is caught
    before the end); ("at", k) as soon as it logged step k; ("save", n) inside its n-th
    checkpoint write ("last": the weights.pt write); ("save_at", k) inside the write of the
    step-k checkpoint. After every kill: each checkpoint under its final name loads, a save kill
    left exactly one temporary file, and the next run resumes from the newest checkpoint and
    cleans up. Returns the number of kills."""
    metrics, ckpt_dir = out / "metrics.jsonl", out / "checkpoints"
    kills = 0
    for i, entry in enumerate(plan + [None]):
        ckpts = list_checkpoints(ckpt_dir)
        start = checkpoint_step(ckpts[-1]) if ckpts else 0
        fault = ""
        if entry and entry[0] == "save":
            n = -(-(total - start) // ckpt_every) + 1 if entry[1] == "last" else entry[1]
            fault = f"kill_in_save:{n}"
        if entry and entry[0] == "save_at":
            assert entry[1] > start and entry[1] % ckpt_every == 0, (entry, start)
            fault = f"kill_in_save:{(entry[1] - start) // ckpt_every}"
        offset = metrics.stat().st_size if metrics.exists() else 0
        log = out.parent / f"{out.name}-{i}.log"
        pid, wait = start_run(args + (["--resume", "auto"] if i else []), log, fault)
        if entry and entry[0] in ("after", "at"):
            target = min(start + entry[1], total - 8) if entry[0] == "after" else entry[1]
            assert target > start, (entry, start)
            deadline = time.time() + 120
            while not any(s >= target for s in new_steps(metrics, offset)):
                assert time.time() < deadline, (entry, log.read_text())
                time.sleep(0.002)
            os.kill(pid, signal.SIGKILL)
        code = wait()
        output = log.read_text()
        if i:  # resumed from the newest checkpoint (all of them load: checked below)
            expect = (f"resumed from {ckpt_dir / f'step_{start:08d}.pt'} at step {start}"
                      if start else "starting at step 0")
            assert expect in output, output
            if plan[i - 1][0].startswith("save"):
                assert "removed 1 unfinished checkpoint file(s) of a killed run" in output
        if entry is None:
            assert code == 0, output
            break
        assert code == -signal.SIGKILL, (entry, output)
        kills += 1
        for p in list_checkpoints(ckpt_dir):  # no checkpoint under its final name is corrupt
            assert load_checkpoint(p)["step"] == checkpoint_step(p)
        if entry[0].startswith("save"):  # killed mid-write: only a temporary file shows it
            assert len(temp_files(out)) == 1, temp_files(out)
        assert (out / ".lock").exists()  # left behind by the dead run, yet never blocks
    assert temp_files(out) == []
    return kills


def seeded_plan(seed: int, n_step: int, n_save: int, max_save: int) -> list:
    """``n_step`` kills 1-6 steps after a resume, ``n_save`` kills in checkpoint write
    1..max_save, in a seeded random order."""
    rng = random.Random(seed)
    plan = [("after", rng.randint(1, 6)) for _ in range(n_step)]
    plan += [("save", rng.randint(1, max_save)) for _ in range(n_save)]
    rng.shuffle(plan)
    return plan


def cli(task: str, sets: list[str]) -> list[str]:
    return [task, "train"] + set_args(sets)


def losses(rows: list[dict]) -> list[tuple]:
    """(split, step, loss) of metrics rows."""
    return [(r["split"], r["step"], r.get("loss")) for r in rows]


def assert_same_weights(a: Path, b: Path) -> None:
    """The two run folders' weights.pt are bit-equal."""
    assert_same_state(load_state(a / "weights.pt"), load_state(b / "weights.pt"))


# ---- SR ----------------------------------------------------------------------------------------
def test_sr_run_survives_sigkills(sr_folder, tmp_path, forker):
    extra = {"train.epochs": 4, "train.iters_per_epoch": 16, "engine.ckpt_every": 4,
             "engine.keep_ckpts": 3, "engine.deterministic": "true", "engine.threads": 1}
    ref, out = tmp_path / "ref", tmp_path / "killed"
    sr.train(None, tiny_sr_config(sr_folder, ref, **extra))
    plan = seeded_plan(1, 7, 4, 2) + [("save", "last")]
    kills = run_killing(forker, cli("sr", tiny_sr_config(sr_folder, out, **extra)), out, plan,
                        total=64, ckpt_every=4)
    print(f"\nSR run: {kills} SIGKILLs survived")
    assert kills == 12
    assert_same_weights(ref, out)
    # the killed runs logged some steps twice; read back, the curve is the uninterrupted one's
    assert len(metrics_rows(out)) > len(metrics_rows(ref))
    assert losses(read_metrics(out)) == losses(read_metrics(ref)) == losses(metrics_rows(ref))


# ---- SS-GAN ------------------------------------------------------------------------------------
def test_two_phase_ssgan_run_survives_sigkills(tmp_path, forker):
    extra = {"train.phase1_epochs": 2, "train.phase2_epochs": 2, "train.iters_per_epoch": 4,
             "engine.ckpt_every": 2, "engine.keep_ckpts": 2, "engine.deterministic": "true",
             "engine.threads": 1, "train.optimizer.name": "sgd",  # small checkpoints
             "train.adversarial.g_optimizer.name": "sgd",
             "train.adversarial.d_options": "{width: 8, label_width: 8}"}
    ref, out = tmp_path / "ref", tmp_path / "killed"
    seg.train(None, tiny_seg_config(ref, **extra))
    rng = random.Random(2)  # phase 1 is steps 1-8, the switch at 8, phase 2 steps 9-16
    plan = [("at", rng.randint(1, 3)), ("save_at", 4), ("at", rng.randint(5, 7)),  # phase 1
            ("save_at", 8), ("at", 8),  # the phase switch: its checkpoint, right after it
            ("at", rng.randint(9, 10)), ("save_at", 12), ("at", 13),
            ("save", "last")]  # phase 2, and the final weights.pt write
    kills = run_killing(forker, cli("seg", tiny_seg_config(out, **extra)), out, plan, total=16,
                        ckpt_every=2)
    print(f"\nSS-GAN run: {kills} SIGKILLs survived")
    assert kills == 9
    assert any("d_loss" in r for r in metrics_rows(out))  # phase 2 ran
    assert_same_weights(ref, out)


# ---- one run per folder --------------------------------------------------------------------------
def test_a_second_run_on_the_same_folder_is_refused(sr_folder, tmp_path, capsys):
    out = tmp_path / "run"
    sets = tiny_sr_config(sr_folder, out, **{"train.epochs": 1})
    for resume in ([], ["--resume", "auto"]):
        with run_lock(out):  # a run in progress holds the lock
            assert main(cli("sr", sets) + resume) == 2
        assert capsys.readouterr().err == (
            f"densekit: error: {out}: another run is using this folder (pid {os.getpid()}); "
            "wait for it to end or choose another engine.out_dir\n")
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # it wrote nothing
    sr.train(None, sets)  # once the lock is released the run goes ahead
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == ["step_00000002.pt"]
