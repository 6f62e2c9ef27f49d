"""Step-indexed batch streams shared by every task.

A task's training data is a Dataset whose item ``step`` is the whole batch of that step, built
from a generator seeded by (seed, step). Batches are therefore a pure function of the step:
resumed runs see exactly the batches of an uninterrupted run, and DataLoader workers can build
them ahead of the training step with no shared state.
"""

from __future__ import annotations

import signal

import torch
from torch.utils.data import DataLoader


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + int(step))


def _worker_init(_):
    torch.set_num_threads(1)  # leave the cores to the training step
    # Ctrl-C / SIGTERM go to the whole process group: the main process checkpoints and stops;
    # a worker killed first would turn that clean stop into a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def batch_stream(data, start_step: int, total_steps: int, workers: int = 1):
    """Iterate over the batches of steps start_step..total_steps-1, prefetched by workers."""
    # the loader gets its own generator: drawing its base seed from the global RNG would
    # shift the model's dropout masks after a resume
    loader = DataLoader(data, batch_size=None, sampler=range(start_step, total_steps),
                        num_workers=workers, worker_init_fn=_worker_init if workers else None,
                        persistent_workers=False, prefetch_factor=4 if workers else None,
                        generator=torch.Generator().manual_seed(start_step))
    return iter(loader)
