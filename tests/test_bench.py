"""densekit bench --quick --json: the structure of the report and sane numbers (no timing
assertions: timings depend on the machine and its load)."""

import io
import json
import math

import pytest
import torch

from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from densekit.bench.report import _print_sr
from densekit.bench.run import SIZES
from densekit.bench.sr import bench_sr
from densekit.bench.steps import paths
from densekit.bench import (SECTIONS, conv_gflops, interleaved_step_times, machine_threads,
                            matmul_gflops, parse_sections, print_table, ratio_spread, spread)
from densekit.cli.main import main
from densekit.models.complexity import FlopCounter


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
    assert {"machine", "peak_gflops", "peak_probes", "models", "peers", "ssgan", "sr",
            "upscale_memory", "data", "compile", "onnx", "seconds"} <= set(res)
    # the peak of each precision is the better of its two probes, and says which
    for key, q in res["peak_probes"].items():
        assert res["peak_gflops"][key] == q["peak_gflops"] == max(q["matmul_gflops"],
                                                                  q["conv3x3_gflops"])
        assert q["set_by"] == ("conv3x3" if q["conv3x3_gflops"] > q["matmul_gflops"]
                               else "matmul")
    models = {r["model"]: r for r in res["models"]}
    assert list(models) == ["hdcn", "srcnn", "vdsr", "rednet", "deeplab_r50", "swiftnet_r18",
                            "ssgan:swiftnet_r18"]
    for r in models.values():
        for path in ("plain", "default"):
            assert set(r[path]) >= {"precision", "train_ms", "infer_ms", "train_peak_fraction"}
            assert r[path]["train_ms_min"] <= r[path]["train_ms"] <= r[path]["train_ms_max"]
        assert r["plain"]["precision"] == "fp32" and r["plain"]["channels_last"] is False
        assert r["default"]["channels_last"] is True
        assert r["train_flops"] > r["infer_flops"] > 0
    assert models["deeplab_r50"]["default"]["train_runs"] == 2
    assert models["deeplab_r50"]["plain"]["train_runs"] == 1
    # the SS-GAN generator is the baseline's module: identical inference FLOPs
    (s,) = res["ssgan"]
    assert s["generator"] == "swiftnet_r18" and s["pairs"] == 2 and s["pairs_plain"] == 1
    assert s["infer_flops_ssgan_g"] == s["infer_flops_baseline"] == models["swiftnet_r18"][
        "infer_flops"]
    assert s["phase2_flops"] > s["phase1_flops"] and s["flops_ratio"] > 1
    assert s["phase2_over_phase1_min"] <= s["phase2_over_phase1"] <= s["phase2_over_phase1_max"]
    assert s["phase1_ms"] == models["swiftnet_r18"]["default"]["train_ms"]
    assert s["phase2_ms"] == models["ssgan:swiftnet_r18"]["default"]["train_ms"]
    assert [r["model"] for r in res["peers"]][:2] == ["torchvision fcn_resnet50",
                                                      "torchvision deeplabv3_resnet50"]
    sr = {r["model"]: r for r in res["sr"]}
    assert sr["srcnn"]["set5_x2_psnr"] == 36.66 and sr["srcnn"]["psnr_source"] == "published"
    assert 0 < sr["bicubic"]["flops_per_pixel"] < sr["srcnn"]["flops_per_pixel"] / 100
    for r in res["sr"]:  # interleaved rounds: median within the range of its rounds
        assert r["ms_per_megapixel_min"] <= r["ms_per_megapixel"] <= r["ms_per_megapixel_max"]
        assert r["rounds"] == 2
    v = sr["hdcn"]["vs_vdsr"]
    assert v["pairs"] == 2 and v["min"] <= v["median"] <= v["max"]
    assert v["of_fastest"] == pytest.approx(sr["hdcn"]["ms_per_megapixel_min"]
                                            / sr["vdsr"]["ms_per_megapixel_min"])
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
    for word in ("peak (the better of", "deeplab_r50", "swiftnet_r18", "ssgan:swiftnet_r18",
                 "torchvision deeplabv3_resnet50", "SS-GAN (swiftnet_r18)", "interleaved pairs",
                 "ms/Mpx", "HDCN / VDSR time", "Tiled upscaling", "Data pipeline", "torch.compile",
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
    sixteen = paths(torch.device("cpu"))["default"]["precision"] != "fp32"
    assert [r["model"] for r in res["sr"]] == ["bicubic", "hdcn"] + ["hdcn*"] * sixteen + [
        "srcnn", "vdsr", "rednet"]
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
    assert cap.err.startswith("densekit: error: --sections: expected a comma list of sr, "
                              "models, upscale, compile, onnx") and cap.err.count("\n") == 1


def test_parse_sections_keeps_run_order():
    assert parse_sections(None) == SECTIONS
    assert parse_sections("onnx,models,models") == ("models", "onnx")
    assert parse_sections("models,sr") == ("sr", "models")


def test_sr_section_runs_before_the_training_steps(monkeypatch, one_thread):
    # the training steps of "models" switch the C allocator to training's reuse of freed
    # memory; SR inference is timed before, as the inference commands run it
    import densekit.bench.run as run

    order = []
    monkeypatch.setattr(run, "bench_models", lambda *a: order.append("models") or {})
    monkeypatch.setattr(run, "bench_sr", lambda *a: order.append("sr") or [])
    run.run_bench(quick=True, sections=("sr", "models"))
    assert order == ["sr", "models"]


def test_huge_pages_reported(monkeypatch):
    from densekit.bench.run import huge_pages

    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    assert huge_pages() == "off (THP_MEM_ALLOC_ENABLE is not 1)"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    assert huge_pages() in ("on", "off (kernel: never)", "off (no transparent huge pages)")


def test_matmul_probe_grows_up_to_n_and_stops_on_budget(one_thread):
    assert matmul_gflops(512, torch.float32, torch.device("cpu"))[1] == 512
    assert matmul_gflops(128, torch.float32, torch.device("cpu"))[1] == 128
    # a zero budget: the first (smallest) size is kept
    assert matmul_gflops(2048, torch.float32, torch.device("cpu"), budget_s=0)[1] == 256


def test_conv_probe_grows_batch_up_to_n_and_stops_on_budget(one_thread):
    gflops, batch = conv_gflops((4, 16, 8), torch.float32, torch.device("cpu"))
    assert batch == 4 and gflops > 0
    assert conv_gflops((8, 16, 8), torch.float32, torch.device("cpu"), budget_s=0)[1] == 1


# ---- FLOP counting --------------------------------------------------------------------------
def _train_flops(counter, conv, x):
    with counter:
        conv(x).sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("cin, cout, groups, stride, transposed", [
    (16, 16, 16, 1, False),   # depthwise
    (16, 32, 4, 2, False),    # grouped, strided
    (12, 8, 4, 2, True),      # grouped transposed
])
@pytest.mark.parametrize("input_grad", [True, False])
def test_flop_counter_grouped_conv_backward_exact(cin, cout, groups, stride, transposed,
                                                  input_grad):
    """Forward, input gradient and weight gradient each cost the forward's multiply-adds: 2 *
    N * (output pixels * C_out * C_in / groups, or for a transposed conv input pixels * C_in *
    C_out / groups) * k^2 FLOPs each; without an input gradient (first layer) two of them."""
    n, h, w, k = 2, 9, 11, 3
    torch.manual_seed(0)
    cls = nn.ConvTranspose2d if transposed else nn.Conv2d
    conv = cls(cin, cout, k, stride=stride, padding=1, groups=groups)
    x = torch.rand(n, cin, h, w, requires_grad=input_grad)
    with torch.no_grad():
        ho, wo = conv(x).shape[-2:]
    pixels_x_cout = (h * w * cin * cout) if transposed else (ho * wo * cout * cin)
    forward = 2 * n * pixels_x_cout // groups * k * k
    assert _train_flops(FlopCounter(), conv, x) == forward * (3 if input_grad else 2)
    # torch's own counter: the weight gradient `groups` times too large
    torch_count = _train_flops(FlopCounterMode(display=False), conv, x)
    assert torch_count == forward * (2 if input_grad else 1) + forward * groups


def test_flop_counter_depthwise_example_from_the_issue():
    # 3x3 depthwise conv over 256 channels, batch 8 at 45x60: ~0.3 GFLOP forward + backward
    conv = nn.Conv2d(256, 256, 3, padding=1, groups=256)
    x = torch.rand(8, 256, 45, 60, requires_grad=True)
    assert _train_flops(FlopCounter(), conv, x) == 3 * 2 * 8 * 45 * 60 * 256 * 9 == 298_598_400


@pytest.mark.parametrize("transposed", [False, True])
def test_flop_counter_dense_conv_unchanged(transposed):
    torch.manual_seed(0)
    conv = (nn.ConvTranspose2d if transposed else nn.Conv2d)(6, 10, 3, stride=2, padding=1)
    x = torch.rand(2, 6, 13, 17, requires_grad=True)
    ours = _train_flops(FlopCounter(), conv, x)
    assert ours == _train_flops(FlopCounterMode(display=False), conv, x) > 0
    # also on the default path (bf16 autocast, channels_last) and with a matmul in the graph
    conv = conv.to(memory_format=torch.channels_last)
    lin = nn.Linear(10, 4)
    x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = lin(conv(x).permute(0, 2, 3, 1))
        y.float().sum().backward()

    for counter in (FlopCounter(), FlopCounterMode(display=False)):
        with counter:
            step()
    assert counter.get_total_flops() > ours
    with FlopCounter() as again:
        step()
    assert again.get_total_flops() == counter.get_total_flops()


# ---- robust timing ----------------------------------------------------------------------------
class _Recorder:
    """A stand-in task: records the steps it runs."""

    def __init__(self):
        self.data = list(range(100))
        self.precision = type("P", (), {"device": torch.device("cpu")})()
        self.ran = []

    def train_step(self, batch, step):
        self.ran.append(step)


def test_interleaved_step_times_alternate_and_skip_warmup():
    task = _Recorder()
    times = interleaved_step_times(task, [0, 50], runs=3, warmup=1)
    # round r runs step start + r of every start, reversed every other round
    assert task.ran == [0, 50, 51, 1, 2, 52, 53, 3]
    assert [len(t) for t in times] == [3, 3] and all(v >= 0 for t in times for v in t)


def test_spread_and_ratio_spread():
    assert spread([0.3, 0.1, 0.2, 0.5]) == {"ms": 250.0, "min_ms": 100.0, "max_ms": 500.0,
                                            "runs": 4}
    r = ratio_spread([2.0, 3.0, 1.2], [1.0, 2.0, 1.0])
    assert r == {"median": 1.5, "min": 1.2, "max": 2.0, "pairs": 3}
    with pytest.raises(ValueError):
        ratio_spread([1.0], [1.0, 2.0])


def test_interleaved_times_rotate_the_order_each_round():
    from densekit.bench.timing import interleaved_times

    calls = []
    passes = {n: (lambda n=n: calls.append(n), 1.0) for n in "abc"}
    times = interleaved_times(passes, rounds=3, warmup=2)
    assert calls == list("aabbcc") + list("abc") + list("bca") + list("cab")
    assert {n: len(t) for n, t in times.items()} == {"a": 3, "b": 3, "c": 3}
    calls.clear()
    times = interleaved_times(passes, rounds=2, warmup=1, settle=1)
    assert calls == list("abc") + list("aabbcc") + list("bbccaa")
    assert {n: len(t) for n, t in times.items()} == {"a": 2, "b": 2, "c": 2}


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_sr_section_times_hdcn_with_16_bit_features_on_a_16_bit_path(monkeypatch, one_thread,
                                                                       precision):
    """On a bf16/fp16 default path the SR section adds HDCN with fp32_features=False, timed in
    the same rounds with its own ratio to VDSR; in fp32 the two are one network: no row."""
    import densekit.bench.sr as bsr

    monkeypatch.setattr(bsr, "paths", lambda device: {
        "default": {"precision": precision, "channels_last": True}})
    rows = {r["model"]: r for r in bench_sr(SIZES["quick"], torch.device("cpu"))}
    assert rows["hdcn"]["options"] == {}
    if precision == "fp32":
        assert "hdcn*" not in rows
        return
    fast = rows["hdcn*"]
    assert fast["options"] == {"fp32_features": False}
    assert fast["flops_per_pixel"] == rows["hdcn"]["flops_per_pixel"]
    assert fast["rounds"] == rows["hdcn"]["rounds"] == fast["vs_vdsr"]["pairs"] == 2
    lines = []
    _print_sr(list(rows.values()), lambda line="": lines.append(line))
    text = "\n".join(lines)
    assert "HDCN* / VDSR time" in text and "hdcn*: hdcn with fp32_features=false" in text
