"""ONNX export of trained models (``densekit export``), checked against ONNX Runtime.

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript), the exporter
PyTorch recommends; the legacy TorchScript one (``dynamo=False``) also works for these models
but is deprecated in torch 2.x. Batch, height and width are dynamic. Before anything is
written, the ONNX model is run with ONNX Runtime on two random inputs of sizes other than the
traced one (odd ones included) and compared with PyTorch; the file is then written atomically.

Models whose computation depends on the input size in Python (the MATLAB-exact bicubic
upsampling of SRCNN/VDSR/REDNet/bicubic builds its matrices from the size; SwiftNet's
aspect-aware pyramid pooling picks its grids from it) cannot keep a dynamic height/width: the
export or the check refuses them with one line instead of writing a wrong file, and ``size``
exports them for one fixed height and width (the batch stays dynamic), checked at that size.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from densekit.errors import DensekitError
from densekit.io import atomic_write_bytes
from densekit.ops import imresize

# (traced size, two check sizes) per task, as (N, H, W); SR sizes are LR sizes
SIZES = {"sr": ((1, 24, 28), ((1, 17, 31), (2, 20, 13))),
         "seg": ((1, 64, 64), ((1, 50, 70), (2, 37, 41)))}
NAMES = {"sr": ("lr", "sr"), "seg": ("image", "logits")}


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise DensekitError(f"--format onnx needs the '{module}' package: pip install "
                            "'densekit[export]'") from None


def load_model(task: str, weights: str | None, model: str | None = None,
               scale: int | None = None) -> tuple[nn.Module, dict]:
    """The model to export and its metadata (what an application needs to use the file)."""
    if task == "sr":
        from densekit.tasks.sr import load_sr_model, read_sr_weights

        if weights is not None:
            state = read_sr_weights(weights)
            model, scale = model or state["model"], scale or state["scale"]
        elif model is None or scale is None:
            raise DensekitError("--weights: pass a weights file or checkpoint (or --model and "
                                "--scale for shipped weights)")
        net = load_sr_model(model, scale, weights)
        meta = {"task": "sr", "model": model, "scale": scale, "channels": net.channels,
                "input": "LR image (N, C, h, w) in [0, 1]; C = 1 means Y (BT.601) of YCbCr",
                "output": "SR image (N, C, scale*h, scale*w), unclamped"}
        return net, meta
    if task == "seg":
        from densekit.data.seg import IMAGENET_MEAN, IMAGENET_STD
        from densekit.tasks.seg import load_seg_model

        net, state = load_seg_model(weights)  # None: the shipped CamVid model
        meta = {"task": "seg", "model": state["model"], "classes": list(state["classes"]),
                "palette": [list(c) for c in state["palette"]],
                "resize": state.get("resize", 1.0), "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
                "input": "RGB image (N, 3, H, W) in [0, 1] normalised with mean/std",
                "output": "class logits (N, classes, H, W)"}
        return net, meta
    raise DensekitError(f"--task: expected sr or seg, got {task!r}")


def _input(task: str, channels: int, size: tuple[int, int, int], seed: int) -> torch.Tensor:
    n, h, w = size
    return torch.rand(n, channels, h, w, generator=torch.Generator().manual_seed(seed))


def sizes(task: str, size: tuple[int, int] | None) -> tuple[tuple, tuple]:
    """(traced size, check sizes) as (N, H, W): the task's defaults, or for a fixed ``size``
    (H, W) batches 1 and 2 at that size."""
    if size is None:
        return SIZES[task]
    h, w = size
    return (1, h, w), ((1, h, w), (2, h, w))


_FIXED_HINT = "; export one fixed input size with --size HxW"


def to_onnx(model: nn.Module, task: str, channels: int,
            size: tuple[int, int] | None = None) -> bytes:
    """The serialized ONNX model (opset chosen by torch) with dynamic batch and, unless
    ``size`` fixes them, dynamic height and width."""
    _require("onnxscript")
    traced, _ = sizes(task, size)
    x = _input(task, channels, traced, 0)
    dyn = torch.export.Dim.DYNAMIC
    dims = {0: dyn} if size else {0: dyn, 2: dyn, 3: dyn}
    in_name, out_name = NAMES[task]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(model.eval().float(), (x,), dynamo=True,
                                        input_names=[in_name], output_names=[out_name],
                                        dynamic_shapes=(dims,),
                                        verbose=False, report=False)
        except Exception as e:  # the exporter's own errors are many and untyped
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DensekitError(f"ONNX export failed for {type(model).__name__} "
                                f"({first[:160]})" + ("" if size else _FIXED_HINT)) from None
        finally:  # tracing filled the bicubic matrix cache with fake tensors: drop them
            imresize.clear_cache()
    return program.model_proto.SerializeToString()


def onnx_session(data: bytes, threads: int = 0):
    """An ONNX Runtime CPU session for a serialized model (threads 0 = ORT default)."""
    ort = _require("onnxruntime")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def max_abs_difference(model: nn.Module, session, task: str, channels: int,
                       size: tuple[int, int] | None = None) -> float:
    """Largest |ONNX Runtime - PyTorch| over the two check inputs of ``task`` (or of the fixed
    ``size``); a size the ONNX model cannot take (a size-specialised graph) raises
    DensekitError."""
    _, checks = sizes(task, size)
    worst = 0.0
    for i, shape in enumerate(checks):
        x = _input(task, channels, shape, 1 + i)
        with torch.no_grad():
            ref = model(x).float().numpy()
        try:
            (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DensekitError(f"{type(model).__name__}: the ONNX model does not take a "
                                f"{shape[1]}x{shape[2]} input ({first[:120]}); its graph "
                                "depends on the input size"
                                + ("" if size else _FIXED_HINT)) from None
        if out.shape != ref.shape:
            raise DensekitError(f"{type(model).__name__}: ONNX output {out.shape} for a "
                                f"{shape[1]}x{shape[2]} input, PyTorch gives {ref.shape}")
        worst = max(worst, float(abs(out - ref).max()))
    return worst


def _with_metadata(data: bytes, meta: dict) -> bytes:
    onnx = _require("onnx")
    proto = onnx.load_model_from_string(data)
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"densekit.{k}", json.dumps(v)
    return proto.SerializeToString()


def export(task: str, weights: str | None, output: str | Path, *, model: str | None = None,
           scale: int | None = None, size: tuple[int, int] | None = None,
           tolerance: float = 1e-3) -> dict:
    """Export, check against ONNX Runtime, then write ``output`` atomically. ``size`` (H, W;
    for SR the LR size) fixes the input's height and width. Returns {output, model, bytes,
    max_abs_diff, check_sizes}."""
    net, meta = load_model(task, weights, model, scale)
    channels = int(getattr(net, "channels", 3))
    data = to_onnx(net, task, channels, size)
    diff = max_abs_difference(net, onnx_session(data), task, channels, size)
    if not diff <= tolerance:
        where = "at its fixed size" if size else "on inputs of another size"
        raise DensekitError(f"{meta['model']}: ONNX Runtime differs from PyTorch by {diff:.3g} "
                            f"(> {tolerance}) {where}; not exported"
                            + ("" if size else _FIXED_HINT))
    fixed = list(size) if size else None
    data = _with_metadata(data, {**meta, "input_size": fixed, "max_abs_diff": diff})
    out = Path(output)
    atomic_write_bytes(out, data, what="ONNX model")
    return {"output": str(out), "model": meta["model"], "bytes": len(data), "max_abs_diff": diff,
            "check_sizes": [list(s) for s in sizes(task, size)[1]]}
