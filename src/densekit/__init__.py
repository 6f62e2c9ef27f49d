"""densekit: dense image prediction (HDCN super-resolution, SS-GAN segmentation) on one engine.

The public API (loaded on first use, so that ``import densekit`` stays light):
:func:`upscale`, :func:`choose_weights`, :func:`segment`, :func:`overlay`, :func:`colorize`,
:func:`create_model`, :func:`list_models`, :func:`list_weights`, :func:`get_weights`, :class:`Weights`, and
:class:`DensekitError`, the one exception type for mistakes in arguments, files and configs.
"""

from densekit.errors import DensekitError

__version__ = "0.1.0"

_API = ("upscale", "choose_weights", "segment", "overlay", "colorize", "create_model", "list_models",
        "list_weights", "get_weights", "Weights")
__all__ = ["__version__", "DensekitError", *_API]


def __getattr__(name: str):
    if name in _API:
        from densekit import api

        return getattr(api, name)
    raise AttributeError(f"module 'densekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
