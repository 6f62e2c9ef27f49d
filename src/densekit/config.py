"""Typed configs: YAML files + ``--set key=value`` overrides, validated against dataclasses.

A config is a tree of dataclasses. :func:`load_config` reads a YAML file, applies overrides
(values parsed as YAML, so ``--set train.lr=1e-4`` gives a float and ``--set data.train=[a,b]`` a
list), and builds the dataclass tree, rejecting unknown keys, wrong types and impossible values
with a one-line :class:`~densekit.errors.ConfigError` naming the key. Constraints live next to the
field as metadata (``check(min=0)``, ``check(choices=...)``), so the schema is the documentation.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from densekit.errors import ConfigError

__all__ = ["check", "check_range", "load_config", "load_task_config", "build", "to_dict", "to_yaml",
           "apply_overrides", "parse_override"]


def check(default=dataclasses.MISSING, *, min=None, max=None, gt=None, choices=None,
          default_factory=dataclasses.MISSING, help: str = ""):
    """A dataclass field with validation metadata."""
    meta = {"min": min, "max": max, "gt": gt, "choices": choices, "help": help}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_range(key: str, r: list, lo: float, hi: float) -> None:
    """A [low, high] config value within [lo, hi], or a ConfigError naming ``key``."""
    if len(r) != 2 or not lo <= r[0] <= r[1] <= hi:
        raise ConfigError(f"{key}: expected [low, high] with {lo} <= low <= high <= {hi}, "
                          f"got {r}")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp, key: str):
    """Check ``value`` against type ``tp``; return it (ints accepted for floats)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(a) for a in args)}, "
                          f"got {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            if isinstance(value, (str, int, float)) and origin is list:
                value = [value]  # a single item where a list is expected
            else:
                raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, Path)):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover - schema bug


def build(cls, data: Any, prefix: str = ""):
    """Build dataclass ``cls`` from a mapping, validating every key and value."""
    where = prefix or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(f"{prefix + '.' if prefix else ''}{unknown[0]}: unknown key "
                          f"(known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: required")
            continue
        raw = data[name]
        if isinstance(raw, dict) and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
            if dataclasses.is_dataclass(default):  # keep the section's own defaults
                raw = merge(dataclasses.asdict(default), raw)
        value = _coerce(raw, hints[name], key)
        _check_value(value, f.metadata, key)
        kwargs[name] = value
    obj = cls(**kwargs)
    post = getattr(obj, "validate", None)
    if post is not None:  # cross-field checks; their messages name the field in the section
        try:
            post()
        except ConfigError as e:
            raise ConfigError(f"{prefix + '.' if prefix else ''}{e}") from None
    return obj


def _check_value(value, meta, key):
    if value is None:
        return
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if meta.get("choices") is not None and v not in meta["choices"]:
            raise ConfigError(f"{key}: must be one of {list(meta['choices'])}, got {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{key}: must be a finite number, got {v!r}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if meta.get("min") is not None and v < meta["min"]:
                raise ConfigError(f"{key}: must be >= {meta['min']}, got {v!r}")
            if meta.get("gt") is not None and v <= meta["gt"]:
                raise ConfigError(f"{key}: must be > {meta['gt']}, got {v!r}")
            if meta.get("max") is not None and v > meta["max"]:
                raise ConfigError(f"{key}: must be <= {meta['max']}, got {v!r}")


def to_dict(obj) -> dict:
    """The plain-dict form of a config tree (for checkpoints, logs and YAML)."""
    return dataclasses.asdict(obj)


def to_yaml(obj) -> str:
    """A config tree as YAML, every key in schema order (a config file that gives it back)."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=None)


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text}: bad key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides to a nested dict (creating mappings as needed)."""
    for text in overrides or []:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {text}: {part} is not a mapping")
            node = nxt
        node[path[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} invalid YAML ({getattr(e, 'problem', e)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config ({e})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def merge(base: dict, over: dict) -> dict:
    """Recursive dict merge: ``over`` wins; mappings are merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_config_tree(path: str | Path, _seen: tuple = ()) -> dict:
    """Read a YAML config; a top-level ``base: other.yaml`` (relative to this file) is read
    first and this file's keys are merged over it."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: base configs form a cycle")
    data = read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be a file name")
    return merge(read_config_tree(path.parent / base, _seen + (path.resolve(),)), data)


def _read(path: str | Path | None, overrides: list[str] | None) -> dict:
    data = read_config_tree(path) if path is not None else {}
    return apply_overrides(data, overrides or [])


def _build_from(cls, data: dict, path: str | Path | None):
    try:
        return build(cls, data)
    except ConfigError as e:
        if path is not None:
            raise ConfigError(f"{path}: {e}") from None
        raise


def load_config(cls, path: str | Path | None, overrides: list[str] | None = None):
    """Read YAML ``path`` (or start empty), apply overrides, and build ``cls``."""
    return _build_from(cls, _read(path, overrides), path)


def load_task_config(schemas: dict[str, type], path: str | Path | None,
                     overrides: list[str] | None = None, task: str | None = None):
    """:func:`load_config` with the schema the config's ``task`` key names, one of ``schemas``
    (e.g. ``{"sr": SRConfig, "seg": SegConfig}``), or ``task``'s (the key, if present, must
    agree)."""
    data = _read(path, overrides)
    if task is not None:
        data.setdefault("task", task)
    name = task if task is not None else data.get("task")
    if name not in schemas:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}task: " + (f"must be one of {list(schemas)}, got {name!r}"
                                              if name is not None else
                                              f"required (one of {list(schemas)})"))
    return _build_from(schemas[name], data, path)


def command_line(prog: str, path: str | Path | None, overrides: list[str] | None) -> str:
    """The shell command that loads this config: ``prog --config PATH --set k=v ...``, quoted.

    Training runs record it in their log and weights so that a result names its command."""
    import shlex

    return prog + (f" --config {shlex.quote(str(path))}" if path else "") + "".join(
        f" --set {shlex.quote(o)}" for o in overrides or [])
