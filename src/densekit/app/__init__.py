"""``densekit serve``: a local web app for super-resolution and segmentation (Gradio).

:mod:`densekit.app.handlers` reads an upload under the server's limits and runs the public API
(:func:`densekit.upscale`, :func:`densekit.segment`); :mod:`densekit.app.server` builds the page
and serves it. gradio is an optional dependency (``pip install 'densekit[app]'``), imported only
when the page is built.
"""
