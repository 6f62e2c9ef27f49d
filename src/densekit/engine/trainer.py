"""The one training loop shared by every task.

A task (SR, segmentation, adversarial segmentation) supplies its modules, optimizers, a
step-indexed batch stream and a ``train_step``; the :class:`Trainer` owns everything else:
device and precision, seeding, the loop, LR schedules, validation, logging, progress, atomic
checkpoints with full state, resume, and clean stops on SIGTERM/Ctrl-C.

Batches are a pure function of (seed, step), so a resumed run sees exactly the batches the
uninterrupted run would have seen.

Under torchrun (WORLD_SIZE > 1, :mod:`densekit.engine.distributed`) every process runs this loop
on its shard of each step's batch; step scalars and validation are reduced over processes,
process 0 alone writes files, and the processes agree on every rollback or stop.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import torch
from tqdm import tqdm

from densekit.config import check, to_dict
from densekit.engine import checkpoint as ckpt
from densekit.engine import distributed, memory
from densekit.engine.logger import RunLogger, command_message, resume_hint, start_message
from densekit.engine.precision import Precision, resolve_device, resolve_precision
from densekit.errors import ConfigError, DensekitError


@dataclass
class EngineConfig:
    out_dir: str = "runs/default"
    device: str = "auto"
    precision: str = check("auto", choices=["auto", "fp32", "bf16", "fp16"])
    channels_last: bool = True
    compile: bool = check(False, help="torch.compile the trained networks ('densekit bench' "
                                      "measures whether it helps on this machine)")
    seed: int = 0
    deterministic: bool = False
    threads: int = check(0, min=0, help="torch intra-op threads (0 = torch default)")
    log_every: int = check(50, min=1)
    ckpt_every: int = check(1000, min=1, help="steps between checkpoints")
    keep_ckpts: int = check(3, min=1)
    tensorboard: bool = True
    progress: bool = True
    nonfinite: str = check("rollback", choices=["rollback", "skip", "stop"],
                           help="on a NaN/Inf loss: reload the last checkpoint and go on, "
                                "skip the step, or stop")
    max_rollbacks: int = check(5, min=0)
    sync_bn: bool = check(False, help="under torchrun: BatchNorm statistics over the global "
                                      "batch (SyncBatchNorm, CUDA only; no-op on one process)")
    reuse_freed_memory: bool = check(True, help="glibc: keep freed memory in the process "
                                                "for reuse instead of page-faulting blocks over "
                                                "32 MiB in anew on every allocation "
                                                "(densekit.engine.memory); false: the C "
                                                "allocator's defaults")

    def validate(self):
        if not self.out_dir.strip():
            raise ConfigError("out_dir: must name a folder, got ''")


def format_out_dir(template: str, **fields) -> str:
    """Fill the placeholders of engine.out_dir (a task's ``{model}``, ``{scale}``, ``{seed}``...)."""
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as e:
        raise DensekitError(f"engine.out_dir: bad placeholder in {template!r} ({e}); "
                            f"known: {', '.join('{' + k + '}' for k in fields)}") from None


class Rollback(Exception):
    """Raised by a task (or the trainer) to go back to the last good checkpoint."""


class Task(Protocol):
    """What a task gives the trainer."""

    modules: dict[str, torch.nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]

    def batches(self, start_step: int) -> Iterator: ...
    def train_step(self, batch, step: int) -> dict[str, float]: ...
    def validate(self) -> dict[str, float]: ...
    def signature(self) -> dict: ...
    def extra_state(self) -> dict: ...
    def load_extra_state(self, state: dict) -> None: ...
    def export(self, path: Path) -> None: ...
    def after_rollback(self, reason: str) -> str: ...


def setup_engine(cfg: EngineConfig, *, batch_size: int) -> Precision:
    """Process group (under torchrun), seed, threads, the C allocator (reuse of freed memory),
    determinism, device and precision for a run whose global batch is ``batch_size``."""
    world = distributed.World.from_env()
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.reuse_freed_memory:
        memory.reuse_freed_memory()
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    device = distributed.start(world, resolve_device(cfg.device), batch_size, cfg.sync_bn)
    return Precision(device, resolve_precision(cfg.precision, device), cfg.channels_last)


class _StopRequest:
    """Turns SIGTERM/SIGINT into a flag checked between steps. With ``escalate`` a second
    signal stops at once; not under torchrun, whose agent forwards a signal it gets to the
    processes that already got it from the terminal or the job scheduler (and kills them
    itself if they take more than 30 s to stop)."""

    def __init__(self, escalate: bool = True):
        self.escalate = escalate
        self.signum = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # second Ctrl-C: stop now
            if self.escalate:
                raise KeyboardInterrupt
            return
        self.signum = signum

    def __exit__(self, *exc):
        # a process stopping under torchrun keeps ignoring the signals the agent sends to the
        # processes still running once the first one has exited, so that it exits cleanly too
        keep_ignoring = self.signum is not None and not self.escalate
        for sig, old in self._old.items():
            signal.signal(sig, signal.SIG_IGN if keep_ignoring else old)


class Trainer:
    def __init__(self, task: Task, cfg: EngineConfig, *, total_steps: int, iters_per_epoch: int,
                 val_every: int, batch_size: int, config_dict: dict, command: str = "densekit",
                 rank: int | None = None, extra_val_steps: set[int] | None = None):
        self.task = task
        self.cfg = cfg
        self.total_steps = total_steps
        self.iters_per_epoch = iters_per_epoch
        self.val_every = val_every
        self.extra_val_steps = set(extra_val_steps or ())
        self.batch_size = batch_size
        self.config_dict = config_dict
        self.command = command
        self.rank = distributed.rank() if rank is None else rank
        self.out_dir = Path(cfg.out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.step = 0

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": "densekit-checkpoint-1",
            "step": self.step,
            "signature": self.task.signature(),
            "config": self.config_dict,
            "modules": {k: m.state_dict() for k, m in self.task.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.task.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.task.schedulers.items()},
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "task": self.task.extra_state(),
        }

    def load_state_dict(self, state: dict, path: Path) -> None:
        if state.get("format") != "densekit-checkpoint-1":
            raise DensekitError(f"{path}: not a densekit training checkpoint")
        mine, theirs = self.task.signature(), state.get("signature", {})
        diff = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
        if diff:
            k = diff[0]
            raise DensekitError(f"{path}: checkpoint is for a different run ({k}: checkpoint has "
                                f"{theirs.get(k)!r}, config has {mine.get(k)!r})")
        try:
            for k, m in self.task.modules.items():
                m.load_state_dict(state["modules"][k])
            for k, o in self.task.optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            for k, s in self.task.schedulers.items():
                s.load_state_dict(state["schedulers"][k])
        except (KeyError, RuntimeError, ValueError) as e:
            raise DensekitError(f"{path}: checkpoint does not match the model "
                                f"({str(e).splitlines()[0][:160]})") from None
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"].get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.task.load_extra_state(state.get("task", {}))
        self.step = int(state["step"])

    def weights_finite(self) -> bool:
        local = all(torch.isfinite(t).all() for m in self.task.modules.values()
                    for t in m.state_dict().values() if t.is_floating_point())
        return distributed.all_true(local)  # the same answer on every process

    def save(self) -> Path:
        self._rolled_back_to = None  # progress since the last rollback
        path = ckpt.checkpoint_path(self.ckpt_dir, self.step)
        if self.rank == 0:
            ckpt.atomic_torch_save(self.state_dict(), path)
            ckpt.prune(self.ckpt_dir, self.cfg.keep_ckpts)
        return path

    def resume(self, resume: str | None) -> None:
        """Every process loads the checkpoint that process 0 picks."""
        path = distributed.from_rank0(lambda: self._resume_path(resume))
        if path is not None:
            self.load_state_dict(ckpt.load_checkpoint(path), path)
            self.log.info(f"resumed from {path} at step {self.step}")
        self.log.restart_at(self.step)  # also at step 0: a run killed before its first checkpoint

    def _resume_path(self, resume: str | None) -> Path | None:
        if not resume:
            if ckpt.list_checkpoints(self.ckpt_dir):
                raise DensekitError(f"{self.out_dir}: already holds checkpoints; pass --resume "
                                    "auto to continue that run, or choose another "
                                    "engine.out_dir")
            return None
        if resume == "auto":
            path = ckpt.find_resume(self.ckpt_dir)
            if path is None:
                self.log.info(f"no checkpoint in {self.ckpt_dir}; starting at step 0")
            return path
        return Path(resume)

    # ---- loop --------------------------------------------------------------------------------
    def fit(self, resume: str | None = None) -> dict:
        """Train to ``total_steps`` while holding the run folder's lock (rank 0)."""
        lock = ckpt.run_lock(self.out_dir) if self.rank == 0 else contextlib.nullcontext()
        with lock:
            self.log = RunLogger(self.out_dir, self.cfg.tensorboard, enabled=(self.rank == 0))
            try:
                if self.rank == 0:  # only the lock holder may clean up after a killed writer
                    n = ckpt.remove_stale_temps(self.ckpt_dir) + \
                        ckpt.remove_stale_temps(self.out_dir)
                    if n:
                        self.log.info(f"removed {n} unfinished checkpoint file(s) of a "
                                      "killed run")
                return self._fit(resume)
            finally:
                self.log.close()

    def _fit(self, resume: str | None) -> dict:
        self.resume(resume)
        if self.rank == 0:
            self.log.info(start_message(self.out_dir, self.step, self.total_steps,
                                        self.task_precision_desc()))
            self.log.info(command_message(self.command))
        # the log window: per-key sums and counts (a key can be missing from some steps, e.g.
        # the adversarial losses in a window that straddles the phase switch), the number of
        # steps and their busy time (data + step; validation and checkpoints excluded)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        count, busy = 0, 0.0
        last_val: dict = {}
        batches = self.task.batches(self.step)
        self.rollbacks = 0
        escalate = distributed.size() == 1  # see _StopRequest
        with _StopRequest(escalate) as stop, tqdm(total=self.total_steps, initial=self.step,
                                          disable=not (self.cfg.progress and self.rank == 0),
                                          unit="step", dynamic_ncols=True,
                                          mininterval=1.0) as bar:
            while self.step < self.total_steps:
                t_step = time.perf_counter()
                batch = next(batches)
                try:
                    metrics = distributed.mean_metrics(self.task.train_step(batch, self.step))
                    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
                    if bad and self.cfg.nonfinite == "stop":
                        raise DensekitError(
                            f"non-finite {bad[0]} at step {self.step}; the last checkpoint in "
                            f"{self.ckpt_dir} is intact (lower the learning rate or use fp32)")
                    if bad and self.cfg.nonfinite == "rollback":
                        raise Rollback(f"non-finite {bad[0]} at step {self.step}")
                    if bad:  # skip: the task did not apply this step's update
                        self.log.info(f"step {self.step}: non-finite {bad[0]}, update skipped")
                        metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
                    used_lr = {f"lr_{n}": o.param_groups[0]["lr"]
                               for n, o in self.task.optimizers.items()}
                    with warnings.catch_warnings():  # phase schedules also step while idle
                        warnings.filterwarnings("ignore",
                                                message="Detected call of `lr_scheduler")
                        for s in self.task.schedulers.values():
                            s.step()
                    self.step += 1
                    bar.update(1)
                    for k, v in metrics.items():
                        sums[k] = sums.get(k, 0.0) + v
                        counts[k] = counts.get(k, 0) + 1
                    count += 1
                    busy += time.perf_counter() - t_step
                    if self.step % self.cfg.log_every == 0 or self.step == self.total_steps:
                        row = {k: v / counts[k] for k, v in sums.items()}
                        row.update(used_lr)  # the learning rates of the window's last step
                        row["samples_per_s"] = count * self.batch_size / max(busy, 1e-9)
                        self.log.scalars(self.step, row, "train")
                        bar.set_postfix({k: f"{v:.4g}" for k, v in row.items()
                                         if not k.startswith("lr_")}, refresh=False)
                        sums, counts, count, busy = {}, {}, 0, 0.0
                    if self.step in self.extra_val_steps or self.val_every and (
                            self.step % self.val_every == 0 or self.step == self.total_steps):
                        distributed.broadcast_buffers(self.task.modules.values())
                        last_val = self.task.validate()
                        if last_val:
                            self.log.scalars(self.step, last_val, "val")
                            self.log.info(f"step {self.step}: " + ", ".join(
                                f"{k} {v:.4f}" for k, v in last_val.items()))
                    if self.step % self.cfg.ckpt_every == 0 or self.step == self.total_steps:
                        if not self.weights_finite():  # never checkpoint broken weights
                            raise Rollback(f"non-finite weights after step {self.step}")
                        self.save()
                except Rollback as r:  # from the step, the validation or the weights check
                    self.rollback(str(r))
                    bar.reset(total=self.total_steps)
                    bar.update(self.step)
                    sums, counts, count, busy = {}, {}, 0, 0.0
                    batches = self.task.batches(self.step)
                    continue
                signum = distributed.first_signal(stop.signum)  # all processes stop together
                if signum is not None and self.step < self.total_steps:
                    stop.signum = signum  # also on a process that got no signal itself
                    path = self.save()
                    # no process tears the group down while process 0 still writes the checkpoint
                    distributed.barrier()
                    self.log.info(f"stopped by signal {signum} at step {self.step}; "
                                  f"checkpoint {path}. {resume_hint(self.command)}")
                    raise SystemExit(128 + signum)
        if self.rank == 0:
            self.task.export(self.out_dir / "weights.pt")
            self.log.info(f"done: weights {self.out_dir / 'weights.pt'}")
        return last_val

    def rollback(self, reason: str) -> None:
        """Reload the newest valid checkpoint, let the task adapt (e.g. damp a loss weight),
        and continue from there."""
        self.rollbacks += 1
        if self.rollbacks > self.cfg.max_rollbacks:
            raise DensekitError(f"{reason}; gave up after {self.cfg.max_rollbacks} rollbacks "
                                f"(engine.max_rollbacks). Checkpoints in {self.ckpt_dir}")
        # a failure again before any new checkpoint: that checkpoint is suspect, go further back
        before = getattr(self, "_rolled_back_to", None)
        path = distributed.from_rank0(lambda: ckpt.find_resume(self.ckpt_dir, before=before))
        if path is None:
            raise DensekitError(f"{reason}, and there is no earlier checkpoint to roll back to "
                                f"(engine.ckpt_every, engine.keep_ckpts)")
        self._rolled_back_to = ckpt.checkpoint_step(path)
        bad_step = self.step
        self.load_state_dict(ckpt.load_checkpoint(path), path)
        self.log.restart_at(self.step)
        change = self.task.after_rollback(reason) if hasattr(self.task, "after_rollback") else ""
        self.log.info(f"ROLLBACK {self.rollbacks}/{self.cfg.max_rollbacks}: {reason}; "
                      f"back from step {bad_step} to {self.step} ({path.name})"
                      + (f"; {change}" if change else ""))
        self.log.scalars(self.step, {"rollback": self.rollbacks, "from_step": bad_step}, "event")

    def task_precision_desc(self) -> str:
        p = getattr(self.task, "precision", None)
        if p is None:
            return "?"
        procs = f", {distributed.size()} processes" if distributed.size() > 1 else ""
        return f"{p.device.type}, {p.mode}{', channels_last' if p.channels_last else ''}{procs}"


def train_task(task: Task, cfg, command: str, resume: str | None = None, *,
               extra_val_steps: set[int] | None = None) -> dict:
    """Train ``task`` to its end (or from ``resume``) with the run config ``cfg`` of a task
    (its ``train`` section: ``iters_per_epoch``, ``val_every_epochs``, ``batch_size``; its
    ``engine`` section), then leave the process group. ``command`` is logged and stored with the
    checkpoints; returns the final validation metrics."""
    t = cfg.train
    trainer = Trainer(task, cfg.engine, total_steps=task.total_steps,
                      iters_per_epoch=t.iters_per_epoch,
                      val_every=t.val_every_epochs * t.iters_per_epoch,
                      batch_size=t.batch_size, config_dict=to_dict(cfg), command=command,
                      extra_val_steps=extra_val_steps)
    try:
        return trainer.fit(resume)
    finally:
        distributed.shutdown()
