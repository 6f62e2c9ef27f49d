"""Model families: ``models.sr`` (super-resolution) and ``models.seg`` (segmentation)."""

from __future__ import annotations

from densekit.errors import ConfigError


def check_builder_args(kind: str, models: dict, known_options: dict, name: str,
                       options: dict) -> None:
    """One-line ConfigError for an unknown model name or an option its builder does not take."""
    if name not in models:
        raise ConfigError(f"unknown {kind} model {name!r} (known: {', '.join(models)})")
    known = known_options[name]
    for key in options:
        if key not in known:
            raise ConfigError(f"model.{name}: unknown option {key!r} "
                              f"(known: {', '.join(known) if known else 'none'})")
