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


def test_paper_curve_reads_an_unfinished_run(tmp_path):
    """Set5 rows by step, the lr in force at each, the mean training loss since the previous
    row, and the steps left, from metrics.jsonl and the latest checkpoint's config; no table
    without a checkpoint or validation rows."""
    import json

    import torch
    mod = sr_results()
    assert mod.paper_curve(tmp_path) is None
    rows = [{"step": s, "split": "train", "loss": s / 1e4, "lr_model": 1e-3 if s <= 1000 else 5e-4,
             "samples_per_s": 16.0} for s in (500, 1000, 1500, 2000)]
    rows.insert(2, {"step": 1000, "split": "val", "psnr_Set5": 35.5, "ssim_Set5": 0.95})
    rows.append({"step": 2000, "split": "val", "psnr_Set5": 36.25, "ssim_Set5": 0.955})
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert mod.paper_curve(tmp_path) is None  # no checkpoint yet
    (tmp_path / "checkpoints").mkdir()
    cfg = {"train": {"batch_size": 32, "epochs": 10, "iters_per_epoch": 1000},
           "data": {"patch_size": 64}}
    torch.save({"config": cfg}, tmp_path / "checkpoints" / "step_00002000.pt")
    lines = mod.paper_curve(tmp_path)
    assert lines[2] == "| 1,000 | 131 | 35.50 / 0.9500 | 0.001 | 7.500e-02 |"
    assert lines[3] == "| 2,000 | 262 | 36.25 / 0.9550 | 0.0005 | 1.750e-01 |"
    assert ("Logged to step 2,000 of 10,000 after 1.1 hours of training; a median 2.00 s per "
            "step") in lines[5]
    assert "the 8,000 steps left are 4.4 hours" in lines[5]
    assert "Started" not in lines[5]  # no log.txt
    (tmp_path / "log.txt").write_text(
        "2026-01-01 10:00:00 run folder r: steps 0->10000, device cpu, fp32, channels_last\n"
        "2026-01-01 10:00:00 command: densekit sr train\n"
        "2026-01-02 10:00:00 run folder r: steps 1500->10000, device cpu, bf16, channels_last\n")
    assert ("Started at step 0 on cpu, fp32, channels_last; resumed at step 1,500 on cpu, bf16, "
            "channels_last. Run folder:") in mod.paper_curve(tmp_path)[5]
    with (tmp_path / "log.txt").open("a") as f:  # consecutive starts on one device: one group
        for step in (1700, 1900):
            f.write(f"2026-01-03 10:00:00 run folder r: steps {step}->10000, device cpu, bf16, "
                    "channels_last\n")
        f.write("2026-01-04 10:00:00 run folder r: steps 2000->10000, device cuda, bf16\n")
    assert ("Started at step 0 on cpu, fp32, channels_last; resumed at steps 1,500, 1,700 and "
            "1,900 on cpu, bf16, channels_last; resumed at step 2,000 on cuda, bf16. Run "
            "folder:") in mod.paper_curve(tmp_path)[5]
    cfg["train"]["epochs"] = 2  # the run is at its end
    torch.save({"config": cfg}, tmp_path / "checkpoints" / "step_00002000.pt")
    assert mod.paper_curve(tmp_path)[5].startswith(
        "Finished at step 2,000 after 1.1 hours of training; a median 2.00 s per step (batch 32 "
        "/ samples per second of the logged windows). Started at step 0 on")


def test_paper_protocol_scores_the_final_weights_else_the_newest_checkpoint(tmp_path,
                                                                            monkeypatch):
    """The block's last line: `densekit sr eval` (float32, Set5 + Set14) of the run's
    weights.pt once it exists, before that of its newest checkpoint, beside RED30's x2."""
    mod = sr_results()
    seen = []

    def evaluate(model, scale, weights):
        seen.append((model, scale, weights))
        return {"Set5": (36.51234, 0.95321), "Set14": (32.4, 0.9)}, f"densekit sr eval {weights}"

    monkeypatch.setattr(mod, "evaluate", evaluate)
    (tmp_path / "checkpoints").mkdir()
    for step in (1500, 2000):
        (tmp_path / "checkpoints" / f"step_{step:08d}.pt").write_bytes(b"")
    line = mod.paper_protocol(tmp_path)
    newest = str(tmp_path / "checkpoints" / "step_00002000.pt")
    assert seen == [("hdcn", 2, newest)]
    assert line.startswith("Its newest checkpoint (step 2,000) by the protocol (float32): "
                           "Set5 36.51 / 0.9532, Set14 32.40 / 0.9000; the published RED30 x2: "
                           "37.66 / 0.9599, 32.94 / 0.9144.")
    assert line.endswith(f"Measured with `densekit sr eval {newest}`.")
    (tmp_path / "weights.pt").write_bytes(b"")
    assert mod.paper_protocol(tmp_path).startswith("Its final weights by the protocol")
    assert seen[-1] == ("hdcn", 2, str(tmp_path / "weights.pt"))
