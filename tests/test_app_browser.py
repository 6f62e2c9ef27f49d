"""``densekit serve`` end to end: the real command in a subprocess, driven by a real browser
(Debian's Chromium through playwright). An uploaded image comes back with the pixels of
:func:`densekit.upscale` / :func:`densekit.segment`; a broken upload shows a one-line message
and the server goes on; no server path can be read through the app; the page loads nothing from
outside.

Skipped without gradio, playwright or Chromium (``apt-get install chromium``), failing instead
under $DENSEKIT_REQUIRE_DATA (CI). With $DENSEKIT_SCREENSHOT=FILE the segmentation test saves a
screenshot of the page there (the README's docs/images/app.png).
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

import densekit

from helpers import REPO, png_header_bomb, require, require_module, smooth_image

CHROMIUM = os.environ.get("DENSEKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SCENE = REPO / "src" / "densekit" / "demo_data" / "camvid" / "val" / "0016E5_08059.jpg"
TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """``densekit serve`` on a free port (uploads capped at 1 MB, fp32), started with gradio's
    GRADIO_ALLOWED_PATHS set to the repository and /etc: its URL."""
    require_module("gradio", "app")
    httpx = require_module("httpx", "app")
    port = free_port()
    env = dict(os.environ, GRADIO_ALLOWED_PATHS=f"/etc,{REPO}")  # must not open them
    proc = subprocess.Popen([sys.executable, "-m", "densekit", "serve", "--port", str(port),
                             "--max-file-size", "1", "--precision", "fp32"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        assert proc.poll() is None, f"densekit serve exited: {proc.stdout.read()}"
        assert time.time() < deadline, "densekit serve did not start in 120 s"
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    yield url
    proc.send_signal(signal.SIGTERM)  # stops like Ctrl-C: the temporary folder goes
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def browser():
    sync_api = require_module("playwright.sync_api")
    require(Path(CHROMIUM).is_file(), f"Chromium ({CHROMIUM}; apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the app; after the test, every request it made went to the app."""
    context = browser.new_context(viewport={"width": 1200, "height": 860})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    hosts = []
    pg.on("request", lambda r: hosts.append(urlsplit(r.url).netloc or r.url.split(":")[0]))
    pg.goto(server + "/")
    pg.wait_for_selector("#sr-run")
    yield pg
    context.close()
    outside = {h for h in hosts if h not in (urlsplit(server).netloc, "data", "blob")}
    assert not outside, f"the page loaded from outside: {outside}"


def fetch(page, href: str) -> Image.Image:
    resp = page.request.get(href)
    assert resp.ok, f"{href}: {resp.status}"
    return Image.open(io.BytesIO(resp.body()))


def run(page, task: str, image: Path, *, wait_for: str) -> None:
    page.set_input_files(f"#{task}-input input[type=file]", str(image))
    page.click(f"#{task}-run")
    page.wait_for_selector(wait_for)


def downloads(page, task: str) -> list[str]:
    return page.locator(f"#{task}-download a[download]").evaluate_all("a => a.map(x => x.href)")


def test_upscale_and_segment_in_the_browser(page, tmp_path):
    photo = Image.fromarray(smooth_image(np.random.default_rng(5), 48, 64))
    src = tmp_path / "photo.png"
    photo.save(src)
    run(page, "sr", src, wait_for="#sr-download a[download]")
    (href,) = downloads(page, "sr")
    assert unquote(href).endswith("/photo_x2.png")
    expect = densekit.upscale(photo, 2, precision="fp32")
    assert np.array_equal(np.asarray(fetch(page, href)), np.asarray(expect))
    slider = page.locator("#sr-result img").evaluate_all("i => i.map(x => x.src)")
    assert len(slider) == 2  # before | after
    assert fetch(page, slider[0]).size == expect.size
    assert "photo: 64x48 -> 128x96 pixels, hdcn x2" in page.input_value("#sr-summary textarea")

    scene = Image.open(SCENE).convert("RGB").resize((240, 180), Image.BICUBIC)
    src = tmp_path / "street.png"
    scene.save(src)
    page.get_by_role("tab", name="Segmentation").click()
    page.check("#seg-flip input[type=checkbox]")
    run(page, "seg", src, wait_for="#seg-legend li")
    page.wait_for_function("document.querySelectorAll('#seg-download a[download]').length == 2")
    overlay_href, label_href = downloads(page, "seg")
    labels = densekit.segment(scene, flip=True, precision="fp32")
    assert np.array_equal(np.asarray(fetch(page, overlay_href)),
                          np.asarray(densekit.overlay(scene, labels)))
    assert np.array_equal(np.asarray(fetch(page, label_href)), labels)
    classes = densekit.get_weights(densekit.api.DEFAULT_SEG_WEIGHTS).classes
    shown = page.locator("#seg-legend li").evaluate_all("l => l.map(x => x.dataset.class)")
    assert sorted(shown) == sorted(classes[i] for i in np.unique(labels))
    shot = os.environ.get("DENSEKIT_SCREENSHOT")
    if shot:
        page.wait_for_timeout(500)  # the overlay image finishes fading in
        raw = page.screenshot()
        Image.open(io.BytesIO(raw)).convert("RGB").quantize(96).save(shot, optimize=True)


def test_a_bad_upload_shows_a_message_and_the_server_goes_on(page, tmp_path):
    photo = Image.fromarray(smooth_image(np.random.default_rng(6), 48, 64))
    good = tmp_path / "good.png"
    photo.save(good)
    cases = {"notes.png": (b"not pixels at all\n", "notes: not an image or unsupported format"),
             "cut.png": (good.read_bytes()[:200], "cut: cannot decode image"),
             "bomb.png": (png_header_bomb(20000, 20000), "bomb: image too large")}
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        run(page, "sr", tmp_path / name, wait_for=f".toast-body:has-text('{message}')")
    run(page, "sr", good, wait_for="#sr-download a[download]")
    (href,) = downloads(page, "sr")
    expect = densekit.upscale(photo, 2, precision="fp32")
    assert np.array_equal(np.asarray(fetch(page, href)), np.asarray(expect))


def test_no_server_path_can_be_read(server, tmp_path):
    httpx = require_module("httpx", "app")
    weights = densekit.get_weights("hdcn_x2").path
    for path in ("/etc/passwd", str(REPO / "README.md"), str(weights), str(tmp_path),
                 "../../../../etc/passwd", "%2Fetc%2Fpasswd"):
        resp = httpx.get(f"{server}/gradio_api/file={path}", timeout=10)
        assert resp.status_code in (403, 404), (path, resp.status_code)
    for url in ("https://example.com/a.png", "http%3A//127.0.0.1:1/x", "//example.com/a"):
        resp = httpx.get(f"{server}/gradio_api/file={url}", timeout=10)  # no fetch by the server
        assert resp.status_code == 403 and "remote files are not served" in resp.text, url
    resp = httpx.post(f"{server}/gradio_api/upload",
                      files={"files": ("big.png", b"\0" * (1024 * 1024 + 1), "image/png")},
                      timeout=30)
    assert resp.status_code == 413, resp.status_code  # --max-file-size 1
