"""Validation sets formed from held-out groups of files (``data.val_groups``).

Frames of one video, drive or site are not independent: a validation set that shares a drive
with the training set measures memory more than generalisation. A group is given by a glob
pattern on the image file's name (``0006R0_*``, case-sensitive); :func:`split_groups` sends the
files that a pattern matches to validation and keeps the rest for training. Every bad pattern
(one that matches nothing, two that match the same file, groups that take every file) is one
:class:`~densekit.errors.ConfigError` line naming ``data.val_groups``.

:func:`file_group` names the group a file belongs to by its name alone: the part before the
first ``_`` (CamVid's drive, Cityscapes' city, VOC's year); ``densekit data check`` lists these
groups and their sizes.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path

from densekit.errors import ConfigError

KEY = "data.val_groups"


def file_group(path) -> str:
    """The group of a file by its name: the part of the stem before the first ``_``."""
    return Path(path).stem.split("_", 1)[0]


def group_sizes(files: Iterable) -> dict[str, int]:
    """Images per :func:`file_group` of ``(image, label)`` pairs, sorted by group name."""
    return dict(sorted(Counter(file_group(img) for img, _ in files).items()))


def format_sizes(sizes: dict[str, int], limit: int = 12) -> str:
    """``{"a": 2, "b": 3}`` -> ``'a 2, b 3'``, at most ``limit`` groups named."""
    items = [f"{g} {n}" for g, n in sizes.items()]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more or "none"


def pooled(datasets: Sequence):
    """One data set with the files of ``datasets`` (splits of one data set), each image file
    once, in order; label files without an image are kept for :func:`check_dataset`."""
    pool = copy.copy(datasets[0])
    seen, files, orphans = set(), [], []
    for ds in datasets:
        for img, lbl in ds.files:
            key = Path(img).resolve()
            if key not in seen:
                seen.add(key)
                files.append((img, lbl))
        orphans += [p for p in ds.orphan_labels if p not in orphans]
    pool.files, pool.orphan_labels = files, orphans
    return pool


def match_groups(files: Sequence, patterns: Sequence[str]) -> list[list[int]]:
    """The indices into ``files`` that each pattern matches (by image file name). A pattern
    that matches nothing, a file that two patterns match, or patterns that match every file
    raise a one-line ConfigError."""
    names = [Path(img).name for img, _ in files]
    owner: dict[int, str] = {}
    groups = []
    for pattern in patterns:
        hits = [i for i, name in enumerate(names) if fnmatchcase(name, pattern)]
        if not hits:
            raise ConfigError(f"{KEY}: {pattern!r} matches none of the {len(names)} images of "
                              f"the data set (a glob on the file name such as '0006R0_*'; "
                              f"groups by name: {format_sizes(group_sizes(files))})")
        for i in hits:
            if i in owner:
                raise ConfigError(f"{KEY}: {names[i]} matches both {owner[i]!r} and "
                                  f"{pattern!r}; groups must not overlap")
            owner[i] = pattern
        groups.append(hits)
    if len(owner) == len(names):
        raise ConfigError(f"{KEY}: the groups {', '.join(map(repr, patterns))} hold all "
                          f"{len(names)} images of the data set; nothing is left to train on")
    return groups


def split_groups(pool, patterns: Sequence[str]):
    """``(train, val, sizes)``: copies of ``pool`` with the files no pattern matches and with
    those the patterns match (in pool order), and ``{pattern: images}``."""
    groups = match_groups(pool.files, patterns)
    held = {i for g in groups for i in g}
    train, val = copy.copy(pool), copy.copy(pool)
    train.files = [f for i, f in enumerate(pool.files) if i not in held]
    val.files = [f for i, f in enumerate(pool.files) if i in held]
    val.orphan_labels = []  # reported once, with the training part
    return train, val, {p: len(g) for p, g in zip(patterns, groups)}
