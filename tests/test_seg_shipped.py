"""The shipped CamVid segmentation model: the weights file (float16, metadata), `seg predict` and
`seg eval` without --weights/--config, the pairing check of `seg eval`, and
scripts/ship_seg_weights.py. A tiny stand-in replaces the shipped file: these tests say nothing
about the real model's accuracy."""

import importlib.util
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densekit.cli.main import main
from densekit.config import load_config, to_dict
from densekit.data.seg import CAMVID_CLASSES
from densekit.errors import DensekitError
from densekit.tasks import seg
from densekit.tasks.seg import (SegConfig, load_seg_model, read_seg_weights,
                                shipped_seg_weights, write_seg_weights)

from helpers import camvid_folder, require, shared_data, tiny_seg_config, tiny_seg_weights

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
TODAYS_FIELDS = {"dataset", "split", "model", "miou", "pixel_acc", "mean_acc", "iou", "images",
                 "seconds"}


@pytest.fixture
def shipped(monkeypatch, camvid_weights):
    """The tiny CamVid weights stand in for the shipped file."""
    monkeypatch.setattr(seg.weights, "shipped_seg_weights",
                        lambda dataset="camvid": camvid_weights if dataset == "camvid" else None)
    return camvid_weights


@pytest.fixture
def nothing_shipped(monkeypatch):
    monkeypatch.setattr(seg.weights, "shipped_seg_weights", lambda dataset="camvid": None)


def eval_json(capsys, *args) -> dict:
    assert main(["seg", "eval", *args, "--json", "--precision", "fp32"]) == 0
    return json.loads(capsys.readouterr().out)


def load_script():
    spec = importlib.util.spec_from_file_location("ship_seg_weights",
                                                  ROOT / "scripts" / "ship_seg_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the weights file ------------------------------------------------------------------------
def test_float16_weights_with_metadata_load_as_float32(tmp_path, camvid_weights):
    old = read_seg_weights(camvid_weights)  # written by save_seg_weights: float32, no meta
    assert old["meta"] == {} and old["dataset"] == "camvid"
    meta = {"dataset": "camvid", "command": "densekit seg train --config c.yaml",
            "val": {"miou": 0.5, "iou": {"Sky": float("nan")}}}
    half = tmp_path / "half.pt"
    write_seg_weights(half, dict(old, meta=meta), half=True)
    raw = torch.load(half, map_location="cpu", weights_only=True)
    floats = [v for v in raw["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert raw["state_dict"]["backbone.bn1.num_batches_tracked"].dtype == torch.int64
    assert half.stat().st_size < 0.6 * camvid_weights.stat().st_size
    model, state = load_seg_model(half)
    assert state["meta"]["command"] == meta["command"] and state["dataset"] == "camvid"
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            assert v.dtype == torch.float32
            assert torch.equal(v, old["state_dict"][k].half().float()), k
    ref, _ = load_seg_model(camvid_weights)
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=2e-2, rtol=2e-2)


def test_files_of_earlier_versions_still_load(tmp_path, camvid_weights):
    state = read_seg_weights(camvid_weights)
    path = tmp_path / "old.pt"  # the format before metadata: no config, no meta
    torch.save({"format": seg.SEG_WEIGHTS_FORMAT, "model": state["model"],
                "options": state["options"], "classes": state["classes"],
                "palette": state["palette"], "resize": 1.0,
                "state_dict": state["state_dict"]}, path)
    model, meta = load_seg_model(path)
    assert meta["meta"] == {} and meta["dataset"] is None and len(meta["classes"]) == 11


def test_float16_refuses_values_it_cannot_hold(tmp_path, camvid_weights):
    state = read_seg_weights(camvid_weights)
    state["state_dict"]["head.2.bias"] = state["state_dict"]["head.2.bias"] + 1e6
    out = tmp_path / "w.pt"
    with pytest.raises(DensekitError, match=r"w.pt: head.2.bias does not fit in float16"):
        write_seg_weights(out, state, half=True)
    assert list(tmp_path.iterdir()) == []


def test_shipped_lookup_is_none_without_a_file(monkeypatch):
    assert shipped_seg_weights("cityscapes") is None
    monkeypatch.setitem(seg.SHIPPED_SEG_WEIGHTS, "camvid", "no_such_file.pt")
    assert shipped_seg_weights("camvid") is None


def test_the_shipped_file_has_float16_weights_and_its_metadata():
    path = shipped_seg_weights("camvid")
    require(path is not None, "the shipped CamVid weights")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in raw["state_dict"].values()
               if v.is_floating_point())
    meta = raw["meta"]
    assert {"dataset", "classes", "palette", "normalization", "command", "val",
            "speed"} <= set(meta)
    assert meta["dataset"] == "camvid" and meta["classes"] == CAMVID_CLASSES
    assert meta["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert meta["command"].startswith("densekit seg train")
    assert {"miou", "pixel_acc", "iou", "split", "images", "resolution"} <= set(meta["val"])
    assert set(meta["val"]["iou"]) == set(CAMVID_CLASSES)
    assert {"ms_per_image", "precision", "cpu", "threads"} <= set(meta["speed"])
    model, state = load_seg_model(None)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert state["path"] == path


# ---- seg predict / seg eval without weights --------------------------------------------------
def test_predict_without_weights_uses_the_shipped_model(tmp_path, shipped, capsys):
    img = tmp_path / "street.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 44, 3), np.uint8)).save(img)
    assert main(["seg", "predict", str(img), "-o", str(tmp_path / "a"), "-q",
                 "--precision", "fp32"]) == 0
    assert main(["seg", "predict", str(img), "--weights", str(shipped), "-o",
                 str(tmp_path / "b"), "-q", "--precision", "fp32"]) == 0
    for name in ("street_label.png", "street_overlay.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    lab = Image.open(tmp_path / "a" / "street_label.png")
    assert lab.mode == "P" and lab.size == (44, 30)
    assert lab.getpalette()[:6] == [128, 128, 128, 128, 0, 0]  # CamVid's Sky, Building


@pytest.mark.parametrize("command", [["seg", "predict", "x.png", "-o", "OUT"],
                                     ["seg", "eval", "--data", "DATA", "--json"]])
def test_no_shipped_weights_is_a_one_line_error(tmp_path, nothing_shipped, capsys, command):
    args = [a.replace("OUT", str(tmp_path / "out")).replace("DATA", str(tmp_path)) for a in command]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        "densekit: error: --weights: no shipped CamVid segmentation weights in this "
        "installation (densekit/weights/camvid_swiftnet_r18.pt); pass a weights file from "
        "'densekit seg train'\n")
    assert not (tmp_path / "out").exists()


def test_eval_without_config_or_weights_scores_the_shipped_model(tmp_path, shipped, capsys):
    root = camvid_folder(tmp_path / "camvid")
    row = eval_json(capsys, "--data", str(root), "--split", "val")
    assert TODAYS_FIELDS <= set(row) and row["weights"] == str(shipped)
    assert row["dataset"] == "camvid" and row["split"] == "val" and row["images"] == 3
    assert list(row["iou"]) == CAMVID_CLASSES and 0 <= row["miou"] <= 1
    # the same numbers as with the weights and a CamVid config given explicitly
    cfg = tmp_path / "camvid.yaml"
    cfg.write_text(f"data: {{dataset: camvid, root: {root}}}\n")
    explicit = eval_json(capsys, "--config", str(cfg), "--weights", str(shipped), "--split",
                         "val")
    assert explicit["iou"] == row["iou"] and explicit["miou"] == row["miou"]
    # --weights without --config: CamVid weights imply CamVid
    assert eval_json(capsys, "--weights", str(shipped), "--data", str(root), "--split",
                     "val")["iou"] == row["iou"]


def test_eval_without_config_needs_camvid_weights(tmp_path, capsys):
    w = tiny_seg_weights(tmp_path / "synth.pt", dataset="synthetic", classes=["a", "b", "c"])
    root = camvid_folder(tmp_path / "camvid")
    assert main(["seg", "eval", "--weights", str(w), "--data", str(root), "--json"]) == 2
    assert capsys.readouterr().err == (
        f"densekit: error: --config: needed for {w} (trained on synthetic; without --config "
        "only CamVid weights are evaluated)\n")


@pytest.mark.parametrize("case", ["missing label", "extra label", "size"])
def test_eval_refuses_unpaired_files_before_it_starts(tmp_path, shipped, capsys, monkeypatch,
                                                      case):
    from densekit.tasks import seg_eval

    root = camvid_folder(tmp_path / "camvid")
    img, lbl = root / "val", root / "valannot"
    if case == "missing label":
        (lbl / "s1.png").unlink()
        bad, words = lbl / "s1.png", f"label missing for image {img / 's1.png'}"
    elif case == "extra label":
        (img / "s2.png").unlink()
        bad, words = lbl / "s2.png", "label without an image"
    else:
        Image.fromarray(np.zeros((20, 32), np.uint8)).save(lbl / "s0.png")
        bad, words = lbl / "s0.png", f"label is 32x20 but image {img / 's0.png'} is 32x24"
    monkeypatch.setattr(seg_eval, "evaluate_dataset", lambda *a, **k: pytest.fail("evaluated"))
    assert main(["seg", "eval", "--data", str(root), "--split", "val", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"densekit: error: {bad}: {words}\n"
    assert main(["data", "check", "--task", "seg", "--dataset", "camvid", "--data", str(root),
                 "--split", "val"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert f"{bad}: {words}" in lines and lines[-1].endswith("1 problem(s)")


def test_eval_names_the_first_of_several_unpaired_files(tmp_path, shipped, capsys):
    root = camvid_folder(tmp_path / "camvid")
    (root / "valannot" / "s0.png").unlink()
    (root / "val" / "s2.png").unlink()
    assert main(["seg", "eval", "--data", str(root), "--split", "val"]) == 2
    assert capsys.readouterr().err == (
        f"densekit: error: {root / 'valannot' / 's0.png'}: label missing for image "
        f"{root / 'val' / 's0.png'} (and 1 more problem(s); 'densekit data check' lists them)\n")


# ---- scripts/ship_seg_weights.py -------------------------------------------------------------
def test_ship_script_writes_weights_whose_numbers_seg_eval_reproduces(tmp_path, camvid_weights,
                                                                      capsys):
    root = camvid_folder(tmp_path / "camvid")
    run = tmp_path / "run"
    run.mkdir()
    (run / "weights.pt").write_bytes(camvid_weights.read_bytes())
    cmd = "densekit seg train --config configs/seg/swiftnet_r18_camvid.yaml --set engine.seed=1"
    (run / "log.txt").write_text("2026-01-01 10:00:00 run folder run: steps 0->5\n"
                                 f"2026-01-01 10:00:00 command: {cmd}\n")
    out = tmp_path / "pkg" / "camvid_swiftnet_r18.pt"
    ship = load_script()
    assert ship.main([str(run), "-o", str(out), "--data", str(root), "--split", "val",
                      "--half", "--runs", "1", "--threads", "1", "--precision", "fp32"]) == 0
    printed = capsys.readouterr().out
    assert "float32 weights on camvid val: mIoU" in printed
    assert "float16 weights on camvid val: mIoU" in printed
    raw = torch.load(out, map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in raw["state_dict"].values()
               if v.is_floating_point())
    meta = raw["meta"]
    assert meta["command"] == cmd and meta["dataset"] == "camvid"
    assert meta["classes"] == CAMVID_CLASSES and len(meta["palette"]) == 11
    assert meta["normalization"]["std"] == [0.229, 0.224, 0.225]
    v = meta["val"]
    assert (v["split"], v["images"], v["resolution"], v["precision"]) == ("val", 3, [24, 32],
                                                                          "fp32")
    s = meta["speed"]
    assert s["ms_per_image"] > 0 and s["size"] == [360, 480] and s["threads"] == 1
    assert s["precision"] == "fp32" and s["cpu"]
    # what the file claims is what `densekit seg eval` measures with it
    row = eval_json(capsys, "--weights", str(out), "--data", str(root), "--split", "val")
    assert row["miou"] == pytest.approx(v["miou"], abs=1e-12)
    assert row["iou"] == pytest.approx(v["iou"], abs=1e-12, nan_ok=True)
    assert meta["stored"] == "float16" and not list(out.parent.glob(".*"))


def test_ship_script_refuses_float16_that_changes_the_miou(tmp_path, camvid_weights, capsys,
                                                           monkeypatch):
    root = camvid_folder(tmp_path / "camvid")
    ship = load_script()
    real = ship.half_state

    def broken_half(state_dict):  # as if float16 lost the head: every pixel becomes class 5
        out = real(state_dict)
        out["head.2.bias"] = torch.zeros(11)
        out["head.2.bias"][5] = 1e4
        return out

    monkeypatch.setattr(ship, "half_state", broken_half)
    out = tmp_path / "w.pt"
    assert ship.main([str(camvid_weights), "-o", str(out), "--data", str(root), "--half",
                      "--runs", "1", "--threads", "1", "--precision", "fp32",
                      "--command", "densekit seg train"]) == 2
    printed, err = capsys.readouterr()
    assert printed.count("weights on camvid val: mIoU") == 2
    assert err.startswith("ship_seg_weights: error: --half: float16 weights move the mIoU by ")
    assert err.endswith("(more than --tolerance 0.1); nothing written\n")
    assert not out.exists()


def test_ship_script_bad_source_is_one_line_error(tmp_path, capsys):
    ship = load_script()
    (tmp_path / "run").mkdir()
    assert ship.main([str(tmp_path / "run"), "-o", str(tmp_path / "w.pt")]) == 2
    assert capsys.readouterr().err == (f"ship_seg_weights: error: {tmp_path / 'run'}: no "
                                       "weights.pt in this run folder (is the run finished?)\n")
    assert not (tmp_path / "w.pt").exists()


def test_training_command_from_a_real_run_and_from_its_config(tmp_path):
    from densekit.tasks.seg import train

    run = tmp_path / "run"
    sets = tiny_seg_config(run, **{"train.phase2_epochs": 0, "train.phase1_epochs": 1})
    train(None, sets)
    ship = load_script()
    state = read_seg_weights(run / "weights.pt")
    logged, log = ship.logged_command(run / "weights.pt")
    assert log == run / "log.txt"
    assert logged == "densekit seg train" + "".join(f" --set {shlex.quote(s)}" for s in sets)
    # without a log: --set overrides that rebuild the same config
    rebuilt = ship.config_command(state["config"])
    words = shlex.split(rebuilt)
    assert words[:3] == ["densekit", "seg", "train"] and words[3::2] == ["--set"] * (
        len(words) // 2 - 1)
    cfg = load_config(SegConfig, None, words[4::2])
    assert to_dict(cfg) == state["config"]
    (run / "log.txt").unlink()
    assert ship.training_command(run / "weights.pt", state, None) == (
        rebuilt, "rebuilt from the weights' config")


def test_the_shipped_model_scores_its_recorded_val_miou_on_camvid(capsys):
    """The shipped model on ../shared/data/camvid val reproduces the mIoU in its metadata (fp32)
    and is worth shipping (>= 50)."""
    camvid = shared_data("camvid")
    require(shipped_seg_weights("camvid") is not None, "the shipped CamVid weights")
    meta = read_seg_weights(shipped_seg_weights("camvid"))["meta"]
    assert main(["seg", "eval", "--data", str(camvid), "--split", "val", "--json",
                 "--precision", "fp32"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["images"] == 101 and row["miou"] >= 0.50
    assert abs(row["miou"] - meta["val"]["miou"]) < 1e-3
