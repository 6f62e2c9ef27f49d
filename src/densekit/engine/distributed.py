"""Data-parallel training on torchrun's environment (``torch.distributed`` +
``DistributedDataParallel``).

A run started by ``torchrun`` (or anything that sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT) with WORLD_SIZE > 1 joins one process group: NCCL with device cuda:LOCAL_RANK on
GPUs, gloo on CPUs. ``train.batch_size`` stays the *global* batch: process r builds slots
``[r * B/W, (r + 1) * B/W)`` of each step's batch, so the union over processes is exactly the
batch one process would use, and DDP's gradient average over equal shards is the gradient of the
global mean loss.

Every helper here is the identity on one process (no process group), so the single-process
path never pays for distribution.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import nn

from densekit.errors import ConfigError, DensekitError


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @classmethod
    def from_env(cls) -> World:
        """torchrun's RANK / LOCAL_RANK / WORLD_SIZE (one process when unset)."""
        values = {}
        for key, default in (("RANK", 0), ("LOCAL_RANK", 0), ("WORLD_SIZE", 1)):
            text = os.environ.get(key, "").strip() or str(default)
            try:
                values[key] = int(text)
            except ValueError:
                raise ConfigError(f"{key}: expected an integer, got {text!r}") from None
        world = cls(values["RANK"], values["LOCAL_RANK"], values["WORLD_SIZE"])
        if world.size < 1 or not 0 <= world.rank < world.size or world.local_rank < 0:
            raise ConfigError(f"RANK={world.rank}, LOCAL_RANK={world.local_rank}, "
                              f"WORLD_SIZE={world.size}: not a valid process layout")
        return world


def start(world: World, device: torch.device, batch_size: int, sync_bn: bool) -> torch.device:
    """Check the run against the process layout, join the process group when WORLD_SIZE > 1,
    and return this process's device (cuda:LOCAL_RANK on GPUs)."""
    if batch_size % world.size:
        raise ConfigError(f"train.batch_size: {batch_size} is not divisible by the "
                          f"{world.size} processes (WORLD_SIZE); the batch size is global, "
                          f"use a multiple of {world.size}")
    if world.size == 1:
        return device
    if device.type == "cuda":
        if device.index is not None:
            raise ConfigError(f"engine.device: {device} names one GPU, but each of the "
                              f"{world.size} processes uses cuda:LOCAL_RANK; use cuda or auto")
        if world.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={world.local_rank}: this node has only "
                              f"{torch.cuda.device_count()} GPU(s)")
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    elif sync_bn:
        raise ConfigError("engine.sync_bn: SyncBatchNorm needs CUDA GPUs; set it to false "
                          "for training on CPUs")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                init_method="env://", rank=world.rank, world_size=world.size)
    return device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def shard_slots(batch_size: int) -> range:
    """The slots of the global batch this process builds (all of them on one process)."""
    per = batch_size // size()
    return range(rank() * per, (rank() + 1) * per)


def wrap(module: nn.Module, sync_bn: bool = False) -> nn.Module:
    """``module`` in DistributedDataParallel (optionally with SyncBatchNorm), or ``module``
    itself on one process. The BatchNorm conversion happens in place (same parameters), so
    ``module`` stays the network to checkpoint, validate and export."""
    if size() == 1:
        return module
    if sync_bn:
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        if converted is not module:  # only when ``module`` itself is a BatchNorm
            raise ConfigError("engine.sync_bn: cannot convert a bare BatchNorm module")
    # channels_last weights with size-1 dims (e.g. a 1x1 conv to one channel) get gradients
    # whose strides differ from DDP's bucket views in those size-1 dims only: a harmless copy
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    device = next(module.parameters()).device
    return nn.parallel.DistributedDataParallel(
        module, device_ids=[device] if device.type == "cuda" else None)


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over processes (a new tensor on ``t``'s device)."""
    if size() == 1:
        return t
    out = t.detach().to(_comm_device(), copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(t.device)


def mean_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Average a step's scalars over processes (NaN anywhere gives NaN everywhere, so every
    process takes the same non-finite decision)."""
    if size() == 1 or not metrics:
        return metrics
    values = all_sum(torch.tensor(list(metrics.values()), dtype=torch.float64)) / size()
    return dict(zip(metrics, values.tolist()))


def all_true(flag: bool) -> bool:
    """True only if ``flag`` is true on every process."""
    if size() == 1:
        return bool(flag)
    return int(all_sum(torch.tensor([0 if flag else 1]))) == 0


def exit_now(code: int) -> NoReturn:
    """End this process with ``code`` at once, after flushing Python's streams: for a torchrun
    worker that has stopped cleanly (checkpoint written, logs closed, process group left). At a
    normal exit, C++ static destructors after Python's own shutdown sometimes abort the worker
    that got the signal (SIGABRT, "terminate called without an active exception"), which
    torchrun reports as a crash of a run that stopped cleanly."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def barrier() -> None:
    """Wait until every process gets here."""
    if size() > 1:
        dist.barrier()


def first_signal(signum: int | None) -> int | None:
    """A stop signal seen by any process (the highest number), the same on every process."""
    if size() == 1:
        return signum
    t = torch.tensor([signum or 0], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t) or None


def from_rank0(fn):
    """Run ``fn`` on process 0 only and give every process its result; a DensekitError it
    raises is raised on every process (so they all stop, none waits for the others)."""
    if size() == 1:
        return fn()
    box = [None]
    if rank() == 0:
        try:
            box[0] = (None, fn())
        except DensekitError as e:
            box[0] = (e, None)
    dist.broadcast_object_list(box, src=0)
    error, value = box[0]
    if error is not None:
        raise error
    return value


def broadcast_buffers(modules) -> None:
    """Copy process 0's buffers (BatchNorm running statistics) to every process."""
    if size() == 1:
        return
    for m in modules:
        for b in m.buffers():
            t = b.detach().to(_comm_device())
            dist.broadcast(t, src=0)
            b.copy_(t)
