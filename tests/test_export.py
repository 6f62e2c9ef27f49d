"""densekit export: ONNX files that ONNX Runtime runs like PyTorch, at any size; clean errors."""

import json
import numpy as np
import pytest
import torch

from densekit.cli.main import main

from helpers import require_module, sr_weights, tiny_seg_weights

ort = require_module("onnxruntime")
onnx = require_module("onnx")
require_module("onnxscript")


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


def test_sr_export_matches_pytorch_at_other_sizes(tmp_path, capsys):
    # x3 with kaiming init: outputs of order 1, odd sizes give both deconv parities
    model = sr_weights(tmp_path / "w.pt", "hdcn", 3, features=16, init="kaiming")
    out = tmp_path / "m.onnx"
    assert main(["export", "--task", "sr", "--weights", str(tmp_path / "w.pt"), "-o",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "max abs difference" in printed and str(out) in printed
    for shape in [(1, 1, 11, 9), (3, 1, 16, 21)]:
        x = torch.rand(shape)
        with torch.no_grad():
            ref = model(x).numpy()
        got = _run(out, x)
        assert got.shape == ref.shape == (shape[0], 1, 3 * shape[2], 3 * shape[3])
        assert np.abs(got - ref).max() < 1e-4 and np.abs(ref).max() > 0.1
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    assert meta["densekit.model"] == "hdcn" and meta["densekit.scale"] == 3
    assert meta["densekit.max_abs_diff"] < 1e-4


def test_seg_export_matches_pytorch(tmp_path):
    from densekit.tasks.seg import load_seg_model

    tiny_seg_weights(tmp_path / "g.pt", dataset="synthetic", classes=["a", "b", "c"],
                     model="torchvision:lraspp_mobilenet_v3_large", options={})  # small
    model, _ = load_seg_model(tmp_path / "g.pt")
    out = tmp_path / "seg.onnx"
    assert main(["export", "--task", "seg", "--weights", str(tmp_path / "g.pt"), "--format",
                 "onnx", "-o", str(out)]) == 0
    for shape in [(1, 3, 45, 61), (2, 3, 64, 48)]:
        x = torch.randn(shape)
        with torch.no_grad():
            ref = model(x).numpy()
        got = _run(out, x)
        assert got.shape == ref.shape == (shape[0], 3, shape[2], shape[3])
        assert np.abs(got - ref).max() < 1e-3
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    assert meta["densekit.classes"] == ["a", "b", "c"]


def test_size_dependent_model_is_refused(tmp_path, capsys):
    # SRCNN's MATLAB bicubic builds its matrices from the input size: no dynamic H/W
    sr_weights(tmp_path / "s.pt", "srcnn", 2)
    out = tmp_path / "s.onnx"
    assert main(["export", "--task", "sr", "--weights", str(tmp_path / "s.pt"), "-o",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("densekit: error: ") and err.count("\n") == 1
    assert "SRCNN" in err or "srcnn" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "s.pt"]


@pytest.mark.parametrize("case", ["missing", "wrong_task", "wrong_model", "unwritable"])
def test_user_errors_are_one_line_and_write_nothing(tmp_path, capsys, case):
    w = tmp_path / "w.pt"
    sr_weights(w, "hdcn", 2, features=8)
    out = tmp_path / "out" / "m.onnx"
    args = {"missing": ["--task", "sr", "--weights", str(tmp_path / "nope.pt")],
            "wrong_task": ["--task", "seg", "--weights", str(w)],
            "wrong_model": ["--task", "sr", "--weights", str(w), "--model", "vdsr"],
            "unwritable": ["--task", "sr", "--weights", str(w)]}[case]
    if case == "unwritable":
        (tmp_path / "out").write_text("a file where the folder should be")
    assert main(["export", *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("densekit: error: ") and err.count("\n") == 1
    expect = {"missing": "nope.pt: checkpoint not found",
              "wrong_task": "not a densekit segmentation weights file",
              "wrong_model": "weights are for model hdcn, not vdsr",
              "unwritable": "m.onnx: cannot write"}[case]
    assert expect in err
    left = ["out", "w.pt"] if case == "unwritable" else ["w.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == left
