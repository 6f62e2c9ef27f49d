"""User-facing errors: the CLI prints these as one line and exits non-zero (no traceback)."""


class DensekitError(Exception):
    """A mistake in the user's input (file, option, config, data); message names the culprit."""


class ConfigError(DensekitError):
    """An invalid config key or value."""


class ImageError(DensekitError):
    """An image file that cannot be read or written."""
