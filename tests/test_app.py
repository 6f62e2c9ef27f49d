"""``densekit serve`` without a browser: the handlers of the web app (an upload read under the
server's limits, the results equal to the public API's, one-line messages that never show a
server path), the page's safety settings, and the command line (its one-line install hint when
gradio is missing). The page in a real browser: test_app_browser.py."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image

import densekit
from densekit.app import handlers, server
from densekit.cli.main import main
from densekit.errors import DensekitError, ImageError

from helpers import png_header_bomb, require_module, smooth_image


@pytest.fixture(scope="module")
def photo():
    return Image.fromarray(smooth_image(np.random.default_rng(3), 48, 64))


def bad_uploads(tmp_path, photo) -> dict:
    """name -> (file, the words its message must contain)."""
    good = tmp_path / "good.png"
    photo.save(good)
    data = good.read_bytes()
    animation = io.BytesIO()
    photo.save(animation, "PNG", save_all=True, append_images=[photo.rotate(180)])
    files = {"notes": (b"these are not pixels\n", "not an image"),
             "animation": (animation.getvalue(), "2 frames (an animation or a multi-page file)"),
             "truncated": (data[: len(data) // 2], "cannot decode"),
             "empty": (b"", "empty file"),
             "bomb": (png_header_bomb(20000, 20000), "too large")}
    out = {}
    for name, (content, words) in files.items():
        path = tmp_path / "upload-cache" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
        out[name] = (path, words)
    return out


# ---- handlers (no gradio) -----------------------------------------------------------------------
@pytest.mark.parametrize("orig, safe", [
    ("photo.png", "photo"), ("../../etc/pass wd.jpg", "pass_wd"), (None, "image"),
    ("<img src=x onerror=alert(1)>.png", "img_src_x_onerror_alert_1"), ("C:\\a\\b.tif", "b"),
    ("....png", "image"), ("x" * 100 + ".png", "x" * 64),
])
def test_upload_name_is_safe(orig, safe):
    assert handlers.upload_name(orig) == safe


def test_read_upload_decodes_an_image(tmp_path, photo):
    path = tmp_path / "in.png"
    photo.save(path)
    im = handlers.read_upload(path, "in")
    assert im.size == (64, 48) and np.array_equal(np.asarray(im), np.asarray(photo))


def test_bad_uploads_are_one_line_without_the_server_path(tmp_path, photo):
    for name, (path, words) in bad_uploads(tmp_path, photo).items():
        with pytest.raises(ImageError) as e:
            handlers.read_upload(path, name)
        message = str(e.value)
        assert message.startswith(f"{name}: ") and words in message, message
        assert "\n" not in message and str(tmp_path) not in message, message


def test_read_upload_pixel_limit(tmp_path, photo):
    path = tmp_path / "in.png"
    photo.save(path)
    with pytest.raises(ImageError, match=r"^in: 64x48 pixels is larger than this server's "
                                         r"limit of 3,000 pixels$"):
        handlers.read_upload(path, "in", max_pixels=3000)
    assert handlers.read_upload(path, "in", max_pixels=64 * 48).size == (64, 48)


@pytest.mark.parametrize("model, tile", [("bicubic", "auto"), ("hdcn", "0"), ("hdcn", 64)])
def test_run_upscale_equals_the_api(tmp_path, photo, one_thread, model, tile):
    res = handlers.run_upscale(photo, "in", tmp_path, scale=2, model=model, tile=tile)
    expect = densekit.upscale(photo, 2, model=model, tile=None if tile == "auto" else int(tile))
    after = Image.open(res.after)
    assert res.after.name == "in_x2.png" and np.array_equal(np.asarray(after),
                                                            np.asarray(expect))
    before = np.asarray(Image.open(res.before))
    assert before.shape == (96, 128, 3)
    assert np.array_equal(before[::2, ::2], np.asarray(photo))  # nearest neighbour
    weights = " (hdcn_x2)" if model == "hdcn" else ""  # the weights used, as the API chose
    assert res.summary == f"in: 64x48 -> 128x96 pixels, {model} x2{weights}, " + \
        res.summary.split(", ")[-1]


def test_run_upscale_keeps_gray_and_alpha(tmp_path, photo, one_thread):
    la = photo.convert("LA")
    res = handlers.run_upscale(la, "la", tmp_path, scale=3, model="bicubic")
    out = Image.open(res.after)
    assert out.mode == "LA" and out.size == (192, 144)
    assert np.array_equal(np.asarray(out), np.asarray(densekit.upscale(la, 3, model="bicubic")))
    assert Image.open(res.before).size == (192, 144)


@pytest.mark.parametrize("options, argument", [
    ({"scale": 5}, "scale"), ({"scale": "x"}, "scale"), ({"model": "srcnn"}, "model"),
    ({"tile": "-3"}, "tile"), ({"tile": "big"}, "tile"), ({"tile": 1}, "tile"),
])
def test_run_upscale_refuses_bad_options(tmp_path, photo, options, argument):
    with pytest.raises(DensekitError, match=f"^{argument}: "):
        handlers.run_upscale(photo, "in", tmp_path, **{"model": "bicubic", **options})


def test_run_segment_equals_the_api(tmp_path, photo, one_thread):
    res = handlers.run_segment(photo, "street", tmp_path, flip=True, scales=[1.0, 0.75])
    labels = densekit.segment(photo, flip=True, scales=(0.75, 1.0))
    assert np.array_equal(np.asarray(Image.open(res.overlay)),
                          np.asarray(densekit.overlay(photo, labels)))
    label = Image.open(res.label)
    assert label.mode == "P" and np.array_equal(np.asarray(label), labels)
    w = densekit.get_weights(densekit.api.DEFAULT_SEG_WEIGHTS)
    present = np.unique(labels)
    assert sorted(e.name for e in res.legend) == sorted(w.classes[i] for i in present)
    assert all(e.color == w.palette[w.classes.index(e.name)] for e in res.legend)
    assert abs(sum(e.fraction for e in res.legend) - 1) < 1e-6
    fractions = [e.fraction for e in res.legend]
    assert fractions == sorted(fractions, reverse=True)
    assert "+ flip, scales 0.75 1" in res.summary


@pytest.mark.parametrize("options, argument", [
    ({"scales": []}, "scales"), ({"scales": ["x"]}, "scales"), ({"scales": [0]}, "scales"),
    ({"scales": [1, 40]}, "scales"), ({"scales": [float("nan")]}, "scales"),
    ({"model": "camvid_other"}, "model"),
])
def test_run_segment_refuses_bad_options(tmp_path, photo, options, argument):
    with pytest.raises(DensekitError, match=f"^{argument}: "):
        handlers.run_segment(photo, "in", tmp_path, **options)


def test_legend_html_escapes_class_names():
    entries = handlers.legend(np.array([[0, 1], [1, 1]]), ["<b>sky</b>", "road & 'car'"],
                              [(1, 2, 3), (4, 5, 6)])
    assert [(e.name, e.fraction) for e in entries] == [("road & 'car'", 0.75),
                                                       ("<b>sky</b>", 0.25)]
    text = handlers.legend_html(entries)
    assert "<b>" not in text and "&lt;b&gt;sky&lt;/b&gt;" in text and "rgb(4,5,6)" in text
    assert handlers.legend_html([]) == ""


def test_result_folders_are_fresh_and_old_ones_go(tmp_path, monkeypatch):
    a = handlers.new_result_dir(tmp_path)
    b = handlers.new_result_dir(tmp_path)
    assert a != b and a.parent == b.parent == tmp_path
    monkeypatch.setattr(handlers, "RESULTS_MAX_AGE_S", -1)
    c = handlers.new_result_dir(tmp_path)
    assert not a.exists() and not b.exists() and c.is_dir()


# ---- the page's handlers and settings (gradio, no server) ---------------------------------------
def test_page_handlers_show_one_line_errors(tmp_path, photo, one_thread):
    gr = require_module("gradio", "app")
    app = server.App(tmp_path / "results")
    for name, (path, words) in bad_uploads(tmp_path, photo).items():
        with pytest.raises(gr.Error) as e:
            app.upscale({"path": str(path), "orig_name": f"{name}.png"}, "bicubic", 2, "auto",
                        False)
        assert e.value.message.startswith(f"{name}: ") and words in e.value.message
        assert str(tmp_path) not in e.value.message
    with pytest.raises(gr.Error, match="no image"):
        app.segment(None, densekit.api.DEFAULT_SEG_WEIGHTS, False, [1.0])
    good = tmp_path / "good.png"
    (slider, download, summary) = app.upscale({"path": str(good), "orig_name": "My Photo.png"},
                                              "bicubic", 2, "auto", False)
    assert download == slider[1] and download.endswith("My_Photo_x2.png")
    assert summary.startswith("My_Photo: 64x48 -> 128x96 pixels, bicubic x2")
    overlay, legend, files, summary = app.segment({"path": str(good), "orig_name": "s.jpg"},
                                                  densekit.api.DEFAULT_SEG_WEIGHTS, False, [1.0])
    assert files == [overlay, files[1]] and files[1].endswith("s_label.png")
    assert 'class="densekit-legend"' in legend


def test_page_settings(tmp_path, monkeypatch):
    """serve() builds the page with one shared slot and a bounded queue, launches it on the given
    host without a share link or readable paths, and warns off loopback."""
    gr = require_module("gradio", "app")
    launched = {}

    def launch(self, **kwargs):
        launched.update(kwargs, demo=self)

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # restored afterwards
    monkeypatch.setattr(gr.Blocks, "launch", launch)
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)
    monkeypatch.setattr(gr.Blocks, "close", lambda self: None)
    said = []
    server.serve("0.0.0.0", 8123, max_file_size_mb=3, queue_size=5, report=said.append)
    assert len(said) == 1 and "warning: listening on 0.0.0.0" in said[0]
    assert launched["server_name"] == "0.0.0.0" and launched["server_port"] == 8123
    assert launched["share"] is False and launched["allowed_paths"] == []
    assert launched["max_file_size"] == 3 * 1024 * 1024 and launched["ssr_mode"] is False
    assert launched["run_history"] is False and launched["mcp_server"] is False
    demo = launched["demo"]
    assert demo.analytics_enabled is False
    assert demo._queue.default_concurrency_limit == 1 and demo._queue.max_size == 5
    runs = [fn for fn in demo.fns.values() if fn.name in ("upscale", "segment")]
    assert len(runs) == 2 and {fn.concurrency_id for fn in runs} == {server.CONCURRENCY_ID}
    assert all(fn.concurrency_limit == 1 and not fn.preprocess for fn in runs)
    said.clear()
    server.serve("127.0.0.1", 8124, report=said.append)
    assert said == []


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.1.1", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("192.168.1.2", False), ("::", False), ("example.org", False),
])
def test_is_loopback(host, loopback):
    assert server.is_loopback(host) is loopback


# ---- the command line ---------------------------------------------------------------------------
def test_serve_without_gradio_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["serve", "--port", "8125"]) == 2
    err = capsys.readouterr().err
    assert err == "densekit: error: densekit serve needs gradio: pip install 'densekit[app]'\n"


def test_serve_help_describes_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--max-file-size", "--max-pixels", "--queue-size",
                   "--device", "--precision", "127.0.0.1", "200,000,000"):
        assert option in out


@pytest.mark.parametrize("args", [["--port", "0"], ["--port", "70000"],
                                  ["--max-file-size", "0"], ["--queue-size", "x"]])
def test_serve_refuses_bad_options(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", *args])
    assert e.value.code == 2 and "error: argument" in capsys.readouterr().err
