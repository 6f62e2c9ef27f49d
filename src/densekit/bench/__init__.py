"""``densekit bench``: how fast every model trains and infers on this machine, in one run.

Everything is measured through the code that training and inference really use: the SR and
segmentation tasks (``SRTask`` / ``SegTask``, their ``train_step`` and batch pipelines) built
from configs, once as a typical reference script runs them (fp32, NCHW) and once on densekit's
default path (``precision: auto`` + channels_last, resolved for this machine). FLOPs come from
:class:`densekit.models.complexity.FlopCounter` (torch's ``FlopCounterMode`` with the backward
pass of grouped convolutions counted right; forward + backward for a training step) and are set
against the measured peak of the precision used: the best of an n x n matmul and a dense 3x3
convolution (channels_last), whichever is faster on this machine.

Both paths (and the torchvision peers) run in one process, under the engine's process-wide
settings (threads, the C allocator's reuse of freed memory: ``densekit.engine.memory``, which
the first training step switches on). The SR section runs first, so that its inference is timed
as the inference commands run it (transparent huge pages for large tensors, ``densekit.cli``).

Times are medians of several runs after warm-up steps, reported with their min-max spread;
steps that are compared (SS-GAN phase 1 and phase 2) are interleaved. All on whatever else the
machine is doing: run it on an idle machine for numbers to publish.

Modules: ``timing`` (times, FLOPs, peak probes), ``steps`` (the compared engine settings and the
tasks' training steps), one per section (``models``, ``sr``, ``upscale``, ``backends`` for
torch.compile and ONNX Runtime), ``run`` (the whole run) and ``report`` (the table).
"""

from __future__ import annotations

from densekit.bench.report import print_table
from densekit.bench.run import SECTIONS, SIZES, machine_threads, parse_sections, run_bench
from densekit.bench.steps import interleaved_step_times
from densekit.bench.timing import (conv_gflops, inference_ms_per_megapixel, matmul_gflops,
                                   ratio_spread, spread, time_runs)

__all__ = ["run_bench", "print_table", "parse_sections", "SECTIONS", "SIZES", "machine_threads",
           "time_runs", "spread", "ratio_spread", "matmul_gflops", "conv_gflops",
           "inference_ms_per_megapixel", "interleaved_step_times"]
