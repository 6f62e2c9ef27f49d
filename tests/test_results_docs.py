"""The result tables that scripts/sr_results.py writes into docs/results/results-sr.md."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

import densekit

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "results" / "results-sr.md"


def sr_results():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location("sr_results", ROOT / "scripts/sr_results.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def test_shipped_rows_agree_with_the_model_zoo():
    """The doc's shipped HDCN rows and zoo.json come from the same `densekit sr eval` command:
    a replaced weights file without `make results-sr` (or the zoo manifest) fails here."""
    text = DOC.read_text()
    block = text.split("<!-- sr-shipped:start -->\n", 1)[1].split("<!-- sr-shipped:end -->")[0]
    rows = re.findall(r"^\| (\d) \| \*\*HDCN \(shipped\)\*\* \| \*\*([\d.]+) / ([\d.]+)\*\* \| "
                      r"\*\*([\d.]+) / ([\d.]+)\*\* \|$", block, re.M)
    assert [int(r[0]) for r in rows] == [2, 3, 4]
    for scale, p5, s5, p14, s14 in rows:
        m = densekit.get_weights(f"hdcn_x{scale}").metrics
        assert (float(p5), float(s5)) == (round(m["Set5"]["psnr"], 2), round(m["Set5"]["ssim"], 4))
        assert (float(p14), float(s14)) == (round(m["Set14"]["psnr"], 2),
                                            round(m["Set14"]["ssim"], 4))


def test_replace_block_keeps_the_rest_and_refuses_a_missing_marker():
    mod = sr_results()
    text = "a\n<!-- sr-recipe:start -->\nold\n<!-- sr-recipe:end -->\nb\n"
    assert mod.replace_block(text, "recipe", ["x", "y"]) == \
        "a\n<!-- sr-recipe:start -->\nx\ny\n<!-- sr-recipe:end -->\nb\n"
    with pytest.raises(SystemExit, match="sr-shipped:start"):
        mod.replace_block(text, "shipped", ["x"])
