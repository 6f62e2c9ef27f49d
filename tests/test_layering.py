"""The architecture holds: densekit's import layers (pyproject.toml, ``[tool.importlinter]``) are
kept, the check notices an import that breaks them, and no module takes another module's private
(underscore) names."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, require_module

SRC = REPO / "src" / "densekit"


def lint_imports(search_path: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contracts on the densekit found first in
    ``search_path``."""
    require_module("importlinter")
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None, "import-linter is installed but its lint-imports command is not"
    env = dict(os.environ, PYTHONPATH=str(search_path))
    return subprocess.run([exe, "--no-cache", "--no-logo", str(REPO / "pyproject.toml")],
                          cwd=search_path, env=env, capture_output=True, text=True, check=False)


def test_the_layers_are_kept():
    res = lint_imports(REPO / "src")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "densekit layers KEPT" in res.stdout


@pytest.mark.parametrize("change, expect", [
    # data knows no task
    (("data/sr.py", "from densekit.tasks import sr_eval\n"),
     "densekit.data.sr -> densekit.tasks.sr_eval"),
    # models, data, metrics and the engine are independent of one another
    (("models/sr/common.py", "from densekit.data import image_io\n"),
     "densekit.models.sr.common -> densekit.data.image_io"),
    # a top-level module must have a place in the layers
    (("hub.py", "from densekit.errors import DensekitError\n"), "densekit.hub"),
])
def test_an_import_against_the_layers_is_caught(tmp_path, change, expect):
    shutil.copytree(SRC, tmp_path / "densekit",
                    ignore=shutil.ignore_patterns("__pycache__", "weights", "demo_data"))
    path, line = change
    with open(tmp_path / "densekit" / path, "a") as f:
        f.write(line)
    res = lint_imports(tmp_path)
    assert res.returncode != 0, res.stdout
    assert "densekit layers BROKEN" in res.stdout and expect in res.stdout, res.stdout


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """``"line: module.name"`` for every private name of another densekit module that
    ``source`` (the code of ``module``) imports, or reads as an attribute of such a module."""
    found, modules = [], {}
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            if base.split(".")[0] != "densekit":
                continue
            for alias in node.names:
                modules[alias.asname or alias.name] = f"{base}.{alias.name}"
                if private(alias.name) and base != module:
                    found.append(f"{node.lineno}: {base}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == "densekit":  # `import a.b` binds a, `import a.b as c` binds a.b
                    modules[alias.asname or top] = alias.name if alias.asname else top
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and private(node.attr):
            owner = dotted(node.value)
            if owner is not None and owner.split(".")[0] in modules:
                head, _, rest = owner.partition(".")
                target = modules[head] + (f".{rest}" if rest else "")
                if target != module:
                    found.append(f"{node.lineno}: {target}.{node.attr}")
    return found


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


@pytest.mark.parametrize("source, found", [
    ("from densekit.data.image_io import _open\n", ["1: densekit.data.image_io._open"]),
    ("from densekit.ops import imresize\nimresize._matrix64.cache_clear()\n",
     ["2: densekit.ops.imresize._matrix64"]),
    ("import densekit.data.seg.base\ndensekit.data.seg.base._ranges([])\n",
     ["2: densekit.data.seg.base._ranges"]),
    ("from .base import _ranges\n", ["1: densekit.data.seg.base._ranges"]),
    ("from densekit.data.seg.check import _helper\n", []),  # its own private name
    ("from densekit.data.image_io import open_image\nfrom torch.utils import _pytree\n", []),
])
def test_the_private_name_check_sees_what_it_should(source, found):
    assert private_imports(source, "densekit.data.seg.check") == found


def test_no_module_takes_another_modules_private_names():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        found += [f"{path.relative_to(REPO)}:{hit}" for hit in
                  private_imports(path.read_text(), module_name(path), path.name == "__init__.py")]
    assert found == []
