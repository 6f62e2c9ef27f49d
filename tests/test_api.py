"""The public Python API (densekit.upscale / segment / create_model ...), the model zoo's
metadata and the torch.hub entry points."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import densekit
from densekit.cli.main import main
from densekit.models import zoo

from helpers import smooth_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rgb():
    return smooth_image(np.random.default_rng(1), 36, 44)


def _cli_upscale(tmp_path, arr, *args):
    src = tmp_path / "in.png"
    Image.fromarray(arr).save(src)
    assert main(["sr", "upscale", str(src), "--scale", "2", "-o", str(tmp_path / "out"),
                 "--quiet", *args]) == 0
    return np.asarray(Image.open(tmp_path / "out" / "in_x2.png"))


def test_upscale_pil_equals_cli(tmp_path, rgb, one_thread):
    out = densekit.upscale(Image.fromarray(rgb), 2)
    assert isinstance(out, Image.Image) and out.size == (88, 72) and out.mode == "RGB"
    assert np.array_equal(np.asarray(out), _cli_upscale(tmp_path, rgb))


def test_upscale_tiled_and_options_equal_cli(tmp_path, rgb, one_thread):
    out = densekit.upscale(Image.fromarray(rgb), 2, tile=16, precision="fp32")
    cli = _cli_upscale(tmp_path, rgb, "--tile", "16", "--precision", "fp32")
    assert np.array_equal(np.asarray(out), cli)


def test_upscale_model_options_equal_cli(tmp_path, rgb, one_thread):
    opts = {"fp32_features": False}  # feature maps in bf16: a different result on bf16 only
    out = np.asarray(densekit.upscale(rgb, 2, precision="bf16", model_options=opts))
    cli = _cli_upscale(tmp_path, rgb, "--precision", "bf16", "--model-option",
                       "fp32_features=false")
    assert np.array_equal(out, cli)
    assert not np.array_equal(out, densekit.upscale(rgb, 2, precision="bf16"))
    assert np.array_equal(densekit.upscale(rgb, 2, precision="fp32", model_options=opts),
                          densekit.upscale(rgb, 2, precision="fp32"))


def test_upscale_numpy_kinds(rgb, one_thread):
    pil = np.asarray(densekit.upscale(Image.fromarray(rgb), 2))
    out = densekit.upscale(rgb, 2)  # H x W x 3 uint8
    assert out.dtype == np.uint8 and out.shape == (72, 88, 3) and np.array_equal(out, pil)
    gray = rgb[:, :, 0]
    g = densekit.upscale(gray, 2)
    assert g.dtype == np.uint8 and g.shape == (72, 88)
    assert np.array_equal(g, np.asarray(densekit.upscale(Image.fromarray(gray), 2)))
    assert densekit.upscale(gray[:, :, None], 2).shape == (72, 88, 1)
    rgba = np.concatenate([rgb, np.full((36, 44, 1), 200, np.uint8)], axis=2)
    a = densekit.upscale(rgba, 2)
    assert a.shape == (72, 88, 4) and np.array_equal(a[:, :, :3], pil)
    assert np.abs(a[:, :, 3].astype(int) - 200).max() <= 1
    g16 = densekit.upscale(gray.astype(np.uint16) * 257, 2)
    assert g16.dtype == np.uint16 and g16.shape == (72, 88)
    assert np.abs(g16.astype(np.int64) // 257 - g.astype(np.int64)).max() <= 1


def test_upscale_tensor_kinds(rgb, one_thread):
    pil = np.asarray(densekit.upscale(Image.fromarray(rgb), 2)).astype(np.float32) / 255
    t = torch.from_numpy(rgb).permute(2, 0, 1)
    f = densekit.upscale(t.float() / 255, 2)
    assert f.dtype == torch.float32 and f.shape == (3, 72, 88)
    assert np.abs(f.permute(1, 2, 0).numpy() - pil).max() <= 0.5 / 255 + 1e-6
    u = densekit.upscale(t, 2)
    assert u.dtype == torch.uint8 and np.array_equal(u.permute(1, 2, 0).numpy(),
                                                      (pil * 255).round().astype(np.uint8))
    assert densekit.upscale(t[0].float() / 255, 2).shape == (72, 88)


@pytest.mark.parametrize("call, argument", [
    (lambda im: densekit.upscale(im, 5), "scale"),
    (lambda im: densekit.upscale(im, 2, model="edsr"), "model"),
    (lambda im: densekit.upscale(im, 2, tile=-1), "tile"),
    (lambda im: densekit.upscale(im, 2, precision="int8"), "precision"),
    (lambda im: densekit.upscale("photo.png", 2), "image"),
    (lambda im: densekit.upscale(np.zeros((8, 8), np.float64), 2), "image"),
    (lambda im: densekit.upscale(np.zeros((8, 8, 2), np.uint8), 2), "image"),
    (lambda im: densekit.upscale(torch.zeros(2, 8, 8), 2), "image"),
    (lambda im: densekit.upscale(im, 3, weights=densekit.get_weights("hdcn_x2")), "weights"),
    (lambda im: densekit.upscale(im, 2, model_options={"init": "paper"}), "model_options"),
    (lambda im: densekit.upscale(im, 2, model_options=["fp32_features"]), "model_options"),
    (lambda im: densekit.upscale(im, 2, model_options={1: True, "a": 2}), "model_options"),
    (lambda im: densekit.upscale(im, 2, model_options={"fp32_features": [False]}),
     "model_options"),
    (lambda im: densekit.upscale(im, 2, model="vdsr", model_options={"fp32_features": False}),
     "model_options"),
    (lambda im: densekit.segment(im, model="nope"), "model"),
    (lambda im: densekit.segment(im, mode="slide"), "crop"),
    (lambda im: densekit.segment(im, scales=(0,)), "scales"),
    (lambda im: densekit.create_model("unet"), "name"),
    (lambda im: densekit.create_model("swiftnet_r18"), "num_classes"),
    (lambda im: densekit.create_model("hdcn", weights="DEFAULT", scale=2, features=8),
     "options"),
    (lambda im: densekit.list_models("det"), "task"),
    (lambda im: densekit.get_weights("hdcn_x9"), "weights"),
])
def test_bad_arguments_raise_one_error_type(call, argument, rgb):
    with pytest.raises(densekit.DensekitError) as e:
        call(Image.fromarray(rgb))
    msg = str(e.value)
    assert "\n" not in msg and (msg.startswith(argument + ":") or f"{argument} " in msg), msg


def test_wrong_scale_for_weights_file_names_it(rgb):
    path = densekit.get_weights("hdcn_x2").path
    with pytest.raises(densekit.DensekitError, match="scale x2"):
        densekit.upscale(Image.fromarray(rgb), 3, weights=path)


def test_segment_equals_seg_predict(tmp_path, one_thread):
    arr = smooth_image(np.random.default_rng(2), 60, 76)
    src = tmp_path / "street.png"
    Image.fromarray(arr).save(src)
    assert main(["seg", "predict", str(src), "-o", str(tmp_path / "out"), "--flip",
                 "--quiet"]) == 0
    labels = densekit.segment(Image.fromarray(arr), flip=True)
    assert labels.dtype == np.uint8 and labels.shape == (60, 76)
    assert np.array_equal(labels, np.asarray(Image.open(tmp_path / "out" / "street_label.png")))
    assert np.array_equal(np.asarray(densekit.overlay(arr, labels)),
                          np.asarray(Image.open(tmp_path / "out" / "street_overlay.png")))
    col = densekit.colorize(labels)
    assert col.mode == "P" and np.array_equal(np.asarray(col), labels)
    t = densekit.segment(torch.from_numpy(arr).permute(2, 0, 1), flip=True)
    assert t.dtype == torch.int64 and np.array_equal(t.numpy(), labels)


def test_overlay_checks_its_labels(rgb):
    with pytest.raises(densekit.DensekitError, match="^labels: size"):
        densekit.overlay(rgb, np.zeros((3, 3), np.uint8))
    with pytest.raises(densekit.DensekitError, match="^labels: values"):
        densekit.overlay(rgb, np.full(rgb.shape[:2], 11, np.uint8))


def test_create_model_and_list_models(one_thread):
    assert {"hdcn", "srcnn", "vdsr", "rednet", "fcn8s_vgg16", "deeplab_r50",
            "swiftnet_r18"} <= set(densekit.list_models())
    assert set(densekit.list_models(pretrained=True)) == {w.model for w in densekit.list_weights()}
    assert densekit.list_models("seg") == ["fcn8s_vgg16", "deeplab_r50", "swiftnet_r18"]
    rand = densekit.create_model("hdcn", scale=3)
    assert rand.scale == 3 and rand.training
    shipped = densekit.create_model("hdcn", scale=3, weights="DEFAULT")
    assert not shipped.training
    x = torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        assert not torch.equal(rand.eval()(x), shipped(x))
        same = densekit.create_model("hdcn", scale=3, weights="hdcn_x3")
        assert torch.equal(shipped(x), same(x))
        # an option that changes no weights may be set on them
        fast = densekit.create_model("hdcn", scale=3, weights="DEFAULT", fp32_features=False)
        assert not fast.fp32_features and torch.equal(shipped(x), fast(x))  # float32: the same
    seg = densekit.create_model("swiftnet_r18", weights="DEFAULT")
    assert seg.num_classes == 11
    assert densekit.create_model("swiftnet_r18", num_classes=5).num_classes == 5
    with pytest.raises(densekit.DensekitError, match="holds a swiftnet_r18 model"):
        densekit.create_model("deeplab_r50", weights="camvid_swiftnet_r18")


def test_zoo_records_match_the_files():
    records = densekit.list_weights()
    files = sorted(p.name for p in (ROOT / "src/densekit/weights").glob("*.pt"))
    assert sorted(w.file for w in records) == files
    for w in records:
        assert w.verify() == w.path and w.params > 0 and w.flops_per_pixel > 0
        assert w.metrics and w.eval_command.startswith("densekit ") and w.train_command
        state = torch.load(w.path, map_location="cpu", weights_only=True)
        assert state["model"] == w.model
        if w.task == "sr":
            sets = {"Set5", "Set14"} if w.degradation == "bicubic" else {"Set5 jpeg:70",
                                                                        "Set14 jpeg:70"}
            assert state["scale"] == w.scale and set(w.metrics) == sets
        else:
            assert list(state["classes"]) == list(w.classes) and len(w.palette) == len(w.classes)
            assert w.normalization["mean"] == [0.485, 0.456, 0.406]


def test_zoo_checksum_guards_the_file():
    w = densekit.get_weights("hdcn_x2")
    bad = dataclasses.replace(w, sha256="0" * 64)
    with pytest.raises(densekit.DensekitError, match="SHA-256"):
        bad.verify()


def test_readme_model_table_comes_from_the_metadata():
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- model-zoo:start -->\n", 1)[1].split("<!-- model-zoo:end -->")[0]
    assert table == zoo.markdown_table()


def test_models_command_lists_the_zoo(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [w.name for w in densekit.list_weights()]
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(w.name in out for w in densekit.list_weights())


def test_torch_hub_local(one_thread):
    hub = torch.hub.load(str(ROOT), "hdcn", source="local", scale=2, pretrained=True)
    ref = densekit.create_model("hdcn", scale=2, weights="DEFAULT")
    x = torch.rand(1, 1, 10, 10)
    with torch.no_grad():
        assert torch.equal(hub(x), ref(x))
    seg = torch.hub.load(str(ROOT), "swiftnet_r18", source="local", num_classes=4)
    assert seg.num_classes == 4
