"""The Gradio page of ``densekit serve`` and the server around it.

Safe by default: it listens on 127.0.0.1 unless told otherwise; uploads are capped in bytes
(``max_file_size``) and in pixels (densekit's decompression-bomb limit); requests wait in one
queue and run one at a time (both tasks share one slot), so two users never run two models at
once; the app reads only what was uploaded to it and writes only into its own temporary folder
(``allowed_paths`` is empty; no option takes a path); a bad upload shows a one-line message and
the server goes on. Analytics and share links are off, the page loads nothing from outside, and
it works offline.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from densekit.app import handlers
from densekit.data.image_io import MAX_PIXELS
from densekit.errors import DensekitError
from densekit.models.sr import SUPPORTED_SCALES

INSTALL_HINT = "densekit serve needs gradio: pip install 'densekit[app]'"
DEFAULT_PORT = 7860
DEFAULT_MAX_FILE_MB = 25
DEFAULT_QUEUE_SIZE = 16
CONCURRENCY_ID = "densekit-model"  # the one slot both tasks share
MESSAGE_CHARS = 300


def import_gradio():
    """gradio, with its analytics off; :class:`DensekitError` with the install line when it
    is not installed."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio
    except ImportError:
        raise DensekitError(INSTALL_HINT) from None
    return gradio


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _one_line(message: str) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 3] + "..."


def _upload(payload) -> tuple[str, str]:
    """(server path, safe name) of the image component's raw value (a FileData dict, which
    gradio has checked lies in its upload folder)."""
    if not payload:
        raise DensekitError("no image: drop an image on the input first")
    if isinstance(payload, dict):
        path, orig = payload.get("path"), payload.get("orig_name")
    else:  # a FileData model
        path, orig = getattr(payload, "path", None), getattr(payload, "orig_name", None)
    if not path:
        raise DensekitError("no image: drop an image on the input first")
    return str(path), handlers.upload_name(orig or Path(str(path)).name)


class App:
    """The request handlers of the page, bound to the server's limits and result folder."""

    def __init__(self, results_dir: str | Path, *, max_pixels: int = MAX_PIXELS,
                 device: str = "auto", precision: str = "auto"):
        self.results_dir = Path(results_dir)
        self.max_pixels = max_pixels
        self.device, self.precision = device, precision

    def _guard(self, run):
        gr = import_gradio()
        try:
            return run()
        except DensekitError as e:
            message = _one_line(e)
        except MemoryError:
            message = "out of memory: try a smaller image, or a tile size for super-resolution"
        except RuntimeError as e:  # torch.OutOfMemoryError and its kin
            if "out of memory" not in str(e).lower():
                raise
            message = "out of memory: try a smaller image, or a tile size for super-resolution"
        print(f"densekit serve: error: {message}", file=sys.stderr, flush=True)
        raise gr.Error(message, print_exception=False)

    def upscale(self, payload, model, scale, tile, self_ensemble):
        def run():
            path, name = _upload(payload)
            image = handlers.read_upload(path, name, max_pixels=self.max_pixels)
            res = handlers.run_upscale(image, name, handlers.new_result_dir(self.results_dir),
                                       scale=scale, model=model, tile=tile,
                                       self_ensemble=bool(self_ensemble), device=self.device,
                                       precision=self.precision)
            return (str(res.before), str(res.after)), str(res.after), res.summary
        return self._guard(run)

    def segment(self, payload, model, flip, scales):
        def run():
            path, name = _upload(payload)
            image = handlers.read_upload(path, name, max_pixels=self.max_pixels)
            res = handlers.run_segment(image, name, handlers.new_result_dir(self.results_dir),
                                       model=model, flip=bool(flip), scales=scales or (),
                                       device=self.device, precision=self.precision)
            return (str(res.overlay), handlers.legend_html(res.legend),
                    [str(res.overlay), str(res.label)], res.summary)
        return self._guard(run)


def build_app(results_dir: str | Path, *, max_pixels: int = MAX_PIXELS, device: str = "auto",
              precision: str = "auto"):
    """The page (a ``gradio.Blocks``): a super-resolution tab and a segmentation tab, each with
    an image drop zone, its options, the result beside the input and a download."""
    gr = import_gradio()
    app = App(results_dir, max_pixels=max_pixels, device=device, precision=precision)
    sr_models = handlers.sr_models()
    seg_models = handlers.seg_models()
    limit = f"{max_pixels:,}"
    with gr.Blocks(title="densekit", analytics_enabled=False,
                   delete_cache=(handlers.RESULTS_MAX_AGE_S, handlers.RESULTS_MAX_AGE_S)) as demo:
        gr.Markdown("## densekit\nDrop an image, pick the options, press Run. Images up to "
                    f"{limit} pixels; requests run one at a time.")
        with gr.Tabs():
            with gr.Tab("Super-resolution", id="sr"):
                with gr.Row():
                    with gr.Column(scale=1):
                        sr_in = gr.Image(label="Input image", type="filepath", image_mode=None,
                                         sources=["upload", "clipboard"], elem_id="sr-input")
                        with gr.Row():
                            sr_model = gr.Dropdown(sr_models, value=sr_models[0], label="Model",
                                                   elem_id="sr-model")
                            sr_scale = gr.Radio(list(SUPPORTED_SCALES), value=2, label="Scale",
                                                elem_id="sr-scale")
                        with gr.Row():
                            sr_tile = gr.Dropdown(list(handlers.TILE_CHOICES), value="auto",
                                                  label="Tile (input pixels; 0 = whole image)",
                                                  elem_id="sr-tile")
                            sr_ens = gr.Checkbox(False, label="Self-ensemble (8x the time)",
                                                 elem_id="sr-ensemble")
                        sr_run = gr.Button("Run", variant="primary", elem_id="sr-run")
                    with gr.Column(scale=2):
                        sr_out = gr.ImageSlider(label="Input (enlarged) | upscaled: drag to "
                                                "compare, scroll to zoom", type="filepath",
                                                elem_id="sr-result")
                        sr_file = gr.File(label="Download", elem_id="sr-download")
                        sr_info = gr.Textbox(label="Result", interactive=False, lines=1,
                                             elem_id="sr-summary")
            with gr.Tab("Segmentation", id="seg"):
                with gr.Row():
                    with gr.Column(scale=1):
                        seg_in = gr.Image(label="Input image", type="filepath", image_mode=None,
                                          sources=["upload", "clipboard"], elem_id="seg-input")
                        seg_model = gr.Dropdown(seg_models, value=seg_models[0],
                                                label="Model (shipped)", elem_id="seg-model")
                        seg_flip = gr.Checkbox(False, label="Flip (average with the mirrored "
                                               "image)", elem_id="seg-flip")
                        seg_scales = gr.CheckboxGroup(list(handlers.SEG_SCALES), value=[1.0],
                                                      label="Scales (several: multi-scale)",
                                                      elem_id="seg-scales")
                        seg_run = gr.Button("Run", variant="primary", elem_id="seg-run")
                    with gr.Column(scale=2):
                        seg_out = gr.Image(label="Overlay", type="filepath", format="png",
                                           interactive=False, buttons=["download", "fullscreen"],
                                           elem_id="seg-result")
                        seg_legend = gr.HTML(label="Classes present", elem_id="seg-legend")
                        seg_files = gr.File(label="Download (overlay, label map)",
                                            file_count="multiple", elem_id="seg-download")
                        seg_info = gr.Textbox(label="Result", interactive=False, lines=1,
                                              elem_id="seg-summary")
        # preprocess=False: the handlers read the upload themselves, with densekit's limits
        # and one-line messages (gradio has already checked the file lies in its upload folder)
        common = dict(preprocess=False, concurrency_limit=1, concurrency_id=CONCURRENCY_ID)
        sr_run.click(app.upscale, [sr_in, sr_model, sr_scale, sr_tile, sr_ens],
                     [sr_out, sr_file, sr_info], api_name="upscale", **common)
        seg_run.click(app.segment, [seg_in, seg_model, seg_flip, seg_scales],
                      [seg_out, seg_legend, seg_files, seg_info], api_name="segment", **common)
    return demo


class NoRemoteFiles:
    """ASGI middleware: refuse gradio's ``/file=<URL>`` route, which would make the server fetch
    any public URL it is handed; the app only ever serves its own results."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            from urllib.parse import unquote

            path = unquote(unquote(scope.get("path", ""))).lower()
            if any(k in path for k in ("/file=http:", "/file=https:", "/file=//")):
                from starlette.responses import PlainTextResponse

                await PlainTextResponse("remote files are not served", status_code=403)(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def launch_options(host: str, port: int, max_file_size_mb: int) -> dict:
    """The arguments of ``Blocks.launch``: no share link, no extra readable paths, the upload
    cap, nothing that needs a network or keeps what users did (server-side rendering, MCP,
    monitoring, PWA, run history)."""
    return dict(server_name=host, server_port=port, share=False, allowed_paths=[],
                max_file_size=int(max_file_size_mb) * 1024 * 1024, inbrowser=False,
                show_error=False, ssr_mode=False, mcp_server=False, pwa=False,
                enable_monitoring=False, run_history=False, quiet=True,
                prevent_thread_lock=True,
                app_kwargs={"middleware": [_middleware(NoRemoteFiles)]})


def _middleware(cls):
    from starlette.middleware import Middleware

    return Middleware(cls)


def _stop_on_sigterm():
    """Make SIGTERM stop the server like Ctrl-C (so the temporary folder is removed); returns
    the previous handler, or None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, stop)


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
          max_file_size_mb: int = DEFAULT_MAX_FILE_MB, max_pixels: int = MAX_PIXELS,
          queue_size: int = DEFAULT_QUEUE_SIZE, device: str = "auto", precision: str = "auto",
          report=None) -> None:
    """Run the web app on ``host``:``port`` until interrupted. Uploads and results live in a
    temporary folder of their own, removed when the server stops."""
    report = report or (lambda m: print(m, file=sys.stderr, flush=True))
    import_gradio()
    if not is_loopback(host):
        report(f"densekit serve: warning: listening on {host}, not on this machine only: anyone "
               "who can reach this port can use the app (it has no login)")
    work = Path(tempfile.mkdtemp(prefix="densekit-serve-"))
    os.environ["GRADIO_TEMP_DIR"] = str(work)  # uploads and served results stay in here
    os.environ.pop("GRADIO_ALLOWED_PATHS", None)  # would stand in for the empty allowed_paths
    try:
        demo = build_app(work / "results", max_pixels=max_pixels, device=device,
                         precision=precision)
        demo.queue(default_concurrency_limit=1, max_size=queue_size, api_open=False)
        try:
            demo.launch(**launch_options(host, port, max_file_size_mb))
        except OSError:
            raise DensekitError(f"--port {port}: cannot listen on {host}:{port} (in use, or "
                                "not an address of this machine)") from None
        previous = _stop_on_sigterm()
        try:
            url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
            print(f"densekit serve: {url} (Ctrl-C to stop)", flush=True)
            demo.block_thread()  # returns on Ctrl-C (or SIGTERM)
        finally:
            demo.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    finally:
        shutil.rmtree(work, ignore_errors=True)
