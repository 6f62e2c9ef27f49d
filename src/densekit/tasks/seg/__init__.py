"""Semantic segmentation with SS-GAN adversarial training, on the shared engine.

One run has two phases (``docs/ssgan.md`` 5, paper 2.3):

1. the generator G alone with per-pixel cross-entropy (Adam, lr 1e-4 decayed linearly to 1e-5);
2. adversarial: each step first updates the adversarial network A with G frozen (real = the
   eps-embedded ground truth, fake = G's softmax), then G with A frozen, with
   L_G = CE - lambda * BCE(0, A(G(x), x)) (or the non-saturating form). G gets a fresh Adam
   (lr 3e-5), A uses SGD with momentum 0.9 (lr 3e-4); both decay linearly.

The generator can be any ``nn.Module`` mapping normalised images to class logits at input size:
``fcn8s_vgg16``, ``deeplab_r50`` or any ``torchvision:<segmentation model>``.

Collapse guard (the paper says its training "collapses easily"): a non-finite loss, the
adversarial network winning outright (its loss below ``d_loss_floor`` for ``patience`` steps),
or validation mIoU falling below the phase-1 value by ``miou_margin`` rolls the run back to the
last good checkpoint and damps lambda and A's learning rate by ``damping``; logged as ROLLBACK.

Modules: ``config`` (the run's settings and the generator they build), ``task`` (:class:`SegTask`
and :func:`train`) and ``weights`` (weights files and the shipped model).
"""

from __future__ import annotations

from densekit.tasks.seg.config import (AdversarialConfig, SegConfig, SegDataConfig,
                                       SegModelConfig, SegTrainConfig, build_generator,
                                       build_splits, dataset_kwargs, split_dataset)
from densekit.tasks.seg.task import SegTask, check_crop, train
from densekit.tasks.seg.weights import (SEG_WEIGHTS_FORMAT, SHIPPED_SEG_WEIGHTS,
                                        load_generator_weights, load_seg_model, read_seg_weights,
                                        save_seg_weights, shipped_seg_weights, write_seg_weights)

__all__ = ["SegConfig", "SegModelConfig", "SegDataConfig", "SegTrainConfig", "AdversarialConfig",
           "build_generator", "build_splits", "split_dataset", "dataset_kwargs",
           "SegTask", "check_crop", "train",
           "SEG_WEIGHTS_FORMAT", "SHIPPED_SEG_WEIGHTS", "shipped_seg_weights", "save_seg_weights",
           "write_seg_weights", "read_seg_weights", "load_generator_weights", "load_seg_model"]
