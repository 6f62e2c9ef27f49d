"""densekit bench --quick --json: the structure of the report and sane numbers (no timing
assertions: timings depend on the machine and its load)."""

import io
import json
import math

import pytest
import torch

from densekit.bench import SECTIONS, machine_threads, matmul_gflops, parse_sections, print_table
from densekit.cli.main import main


def _numbers(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


def test_quick_bench_json(capsys):
    assert main(["bench", "--quick", "--json", "--threads", "1"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {"machine", "peak_gflops", "models", "peers", "ssgan", "sr", "upscale_memory", "data",
            "compile", "onnx", "seconds"} <= set(res)
    models = {r["model"]: r for r in res["models"]}
    assert list(models) == ["hdcn", "srcnn", "vdsr", "rednet", "deeplab_r50", "ssgan"]
    for r in models.values():
        for path in ("plain", "default"):
            assert set(r[path]) >= {"precision", "train_ms", "infer_ms", "train_peak_fraction"}
        assert r["plain"]["precision"] == "fp32" and r["plain"]["channels_last"] is False
        assert r["default"]["channels_last"] is True
        assert r["train_flops"] > r["infer_flops"] > 0
    # the SS-GAN generator is the baseline's module: identical inference FLOPs
    s = res["ssgan"]
    assert s["infer_flops_ssgan_g"] == s["infer_flops_baseline"] == models["deeplab_r50"][
        "infer_flops"]
    assert s["phase2_flops"] > s["phase1_flops"] and s["flops_ratio"] > 1
    assert [r["model"] for r in res["peers"]][:2] == ["torchvision fcn_resnet50",
                                                      "torchvision deeplabv3_resnet50"]
    sr = {r["model"]: r for r in res["sr"]}
    assert sr["srcnn"]["set5_x2_psnr"] == 36.66 and sr["srcnn"]["psnr_source"] == "published"
    assert 0 < sr["bicubic"]["flops_per_pixel"] < sr["srcnn"]["flops_per_pixel"] / 100
    assert set(res["data"]) == {"sr", "seg"}
    assert res["compile"] == {"skipped": "--quick"}
    assert len(res["upscale_memory"]["runs"]) == 2
    # every timing, rate and count is positive and finite; the memory fit's two
    # coefficients are differences of noisy tiny measurements, so only finite
    for path, v in _numbers(res):
        assert math.isfinite(v), path
        if not path.startswith(".upscale_memory.") or path.endswith("seconds"):
            assert v > 0 or "max_abs_diff" in path, path
    assert res["onnx"]["max_abs_diff"] < 1e-4
    # the table prints every section from the same result
    out = io.StringIO()
    print_table(res, file=out)
    text = out.getvalue()
    for word in ("matmul peak", "deeplab_r50", "ssgan", "torchvision deeplabv3_resnet50",
                 "SS-GAN", "ms/Mpx", "Tiled upscaling", "Data pipeline", "torch.compile",
                 "ONNX Runtime"):
        assert word in text, word


def test_sections_subset_and_machine_threads(capsys, one_thread):
    # no --threads: torch runs on this machine's cores; only the chosen sections are in the
    # result and the table
    assert main(["bench", "--quick", "--json", "--sections", "onnx, sr"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["machine"]["threads"] == machine_threads()
    assert res["sections"] == ["sr", "onnx"]
    assert {"sr", "onnx"} <= set(res)
    assert not {"models", "peers", "ssgan", "data", "upscale_memory", "compile"} & set(res)
    assert [r["model"] for r in res["sr"]] == ["bicubic", "hdcn", "srcnn", "vdsr", "rednet"]
    out = io.StringIO()
    print_table(res, file=out)
    text = out.getvalue()
    assert "ms/Mpx" in text and "ONNX Runtime" in text
    assert "Peers" not in text and "Tiled upscaling" not in text and "torch.compile" not in text


@pytest.mark.parametrize("text", ["", "sr,gpu", "models;sr"])
def test_bad_sections_one_line_error(capsys, text):
    assert main(["bench", "--quick", "--sections", text]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.startswith("densekit: error: --sections: expected a comma list of models, "
                              "sr, upscale, compile, onnx") and cap.err.count("\n") == 1


def test_parse_sections_keeps_run_order():
    assert parse_sections(None) == SECTIONS
    assert parse_sections("onnx,models,models") == ("models", "onnx")


def test_matmul_probe_grows_up_to_n_and_stops_on_budget(one_thread):
    assert matmul_gflops(512, torch.float32, torch.device("cpu"))[1] == 512
    assert matmul_gflops(128, torch.float32, torch.device("cpu"))[1] == 128
    # a zero budget: the first (smallest) size is kept
    assert matmul_gflops(2048, torch.float32, torch.device("cpu"), budget_s=0)[1] == 256
