"""The ``densekit`` command.

Before torch loads, the command asks PyTorch's CPU allocator for transparent huge pages on
every tensor of 2 MiB or more (``THP_MEM_ALLOC_ENABLE=1``, read once by PyTorch at its first
allocation; a value already in the environment wins). Large tensors are then page-faulted in
2 MiB at a time instead of 4 KiB: HDCN x2 inference on 512x512 outputs took about 0.7x the
time, ``densekit sr upscale`` of a 2000x1500 JPEG 0.96x with 0.88x the peak memory, the same
output (docs/results/benchmarks.md, "Huge pages for inference"). It needs the kernel's
transparent huge pages set to ``madvise`` or ``always``
(``/sys/kernel/mm/transparent_hugepage/enabled``); with ``never`` nothing changes.
"""

import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
