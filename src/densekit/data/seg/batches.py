"""The training batches of a segmentation run, a pure function of the step."""

from __future__ import annotations

import torch

from densekit.data.stream import step_generator


class SegStepBatches(torch.utils.data.Dataset):
    """Item ``step`` is that step's batch: images drawn epoch by epoch in a seeded permutation,
    augmentation seeded by (seed, step, slot), so every batch is a pure function of the step.
    Only the samples ``slots`` (default: all) of the global batch are built (torchrun shards)."""

    def __init__(self, dataset, transform, batch_size: int, seed: int, total_steps: int,
                 slots: range | None = None):
        self.dataset, self.transform = dataset, transform
        self.batch_size, self.seed, self.total_steps = batch_size, seed, total_steps
        self.slots = range(batch_size) if slots is None else slots
        self.per_epoch = max(1, len(dataset) // batch_size)

    def __len__(self):
        return self.total_steps

    def __getitem__(self, step: int):
        epoch, k = divmod(int(step), self.per_epoch)
        perm = torch.randperm(len(self.dataset), generator=step_generator(self.seed, -1 - epoch))
        images, masks = [], []
        for slot in self.slots:
            idx = int(perm[(k * self.batch_size + slot) % len(perm)])
            image, mask = self.dataset[idx]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed * 1_000_003 + int(step) * 64 + slot)
                image, mask = self.transform(image, mask)
            images.append(torch.as_tensor(image))
            masks.append(torch.as_tensor(mask).long())
        return torch.stack(images), torch.stack(masks)
