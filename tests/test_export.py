"""densekit export: ONNX files that ONNX Runtime runs like PyTorch, at any size (or at the one
size --size fixes); clean errors."""

import json
import numpy as np
import pytest
import torch

from densekit.cli.main import main

from helpers import require, require_module, sr_weights, tiny_seg_weights

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


def test_fixed_size_exports_a_size_dependent_sr_model(tmp_path, capsys):
    # SRCNN's bicubic is refused with dynamic H/W (above) but exports for one fixed LR size
    model = sr_weights(tmp_path / "s.pt", "srcnn", 2)
    out = tmp_path / "s.onnx"
    assert main(["export", "--task", "sr", "--weights", str(tmp_path / "s.pt"), "--size",
                 "12x15", "-o", str(out)]) == 0
    assert "1x12x15 and 2x12x15" in capsys.readouterr().out
    for n in (1, 3):
        x = torch.rand(n, 1, 12, 15)
        with torch.no_grad():
            ref = model(x).numpy()
        got = _run(out, x)
        assert got.shape == ref.shape == (n, 1, 24, 30)
        assert np.abs(got - ref).max() < 1e-4
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    assert meta["densekit.input_size"] == [12, 15]


def test_shipped_seg_model_exports_at_a_fixed_size(tmp_path):
    # no --weights: the shipped CamVid SwiftNet, whose pyramid pooling grids follow the size
    from densekit.tasks.seg import load_seg_model, shipped_seg_weights

    require(shipped_seg_weights("camvid") is not None, "the shipped CamVid weights")
    model, state = load_seg_model(None)
    out = tmp_path / "camvid.onnx"
    assert main(["export", "--task", "seg", "--size", "72x96", "-o", str(out)]) == 0
    x = torch.randn(2, 3, 72, 96)
    with torch.no_grad():
        ref = model(x).numpy()
    got = _run(out, x)
    assert got.shape == ref.shape == (2, 11, 72, 96)
    assert np.abs(got - ref).max() < 1e-3
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    assert meta["densekit.model"] == "swiftnet_r18" and meta["densekit.input_size"] == [72, 96]
    assert meta["densekit.classes"] == list(state["classes"])


@pytest.mark.parametrize("text", ["360", "0x10", "axb", "1x2x3"])
def test_bad_size_is_a_one_line_usage_error(tmp_path, capsys, text):
    with pytest.raises(SystemExit) as e:
        main(["export", "--task", "sr", "--size", text, "-o", str(tmp_path / "m.onnx")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--size" in err and text in err
    assert list(tmp_path.iterdir()) == []
