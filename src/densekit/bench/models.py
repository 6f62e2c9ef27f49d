"""The models section: per model, training step and inference on both engine settings, FLOPs and
peak fraction; the SS-GAN phase-2 / phase-1 steps, the data pipelines and the torchvision peers."""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from densekit.bench.steps import (batch_seconds, interleaved_step_times, paths, seg_task,
                                  sr_folder, sr_task, step_flops)
from densekit.bench.timing import (counted_flops, forward_flops, inference_seconds, progress,
                                   ratio_spread, spread, time_runs)
from densekit.engine.precision import Precision

SR_MODELS = ("hdcn", "srcnn", "vdsr", "rednet")

PEERS = ("fcn_resnet50", "deeplabv3_resnet50")


def bench_models(sz: dict, device, peak: dict, tmp: Path) -> dict:
    """Per model: train step and inference, plain vs default path, FLOPs and peak fraction;
    also the SS-GAN phase-1/phase-2 steps, the data pipelines and the torchvision peers."""
    from densekit.tasks.seg import SegModelConfig, build_generator

    folder = sr_folder(tmp, max(96, 2 * sz["sr_patch"]))
    rows, data, ssgan, batches = [], {}, [], {}
    for name in SR_MODELS + sz["seg_models"]:
        is_sr = name in SR_MODELS
        key = "sr" if is_sr else "seg"
        bs = sz["sr_batch"] if is_sr else sz["seg"][0]
        row = {"model": name}
        progress(name)
        # an SS-GAN generator's task also runs phase 2 (G + adversarial network A), its steps
        # interleaved with phase 1's
        adv = {"model": f"ssgan:{name}", "generator": name} \
            if name in sz["ssgan_generators"] else None
        for label, path in paths(device).items():
            if is_sr:
                task = sr_task(name, path, sz, folder, device)
                net, runs, warmup = task.model, sz["sr_runs"], sz["sr_train_warmup"]
                side = sz["sr_out"] // 2
                x = torch.rand(1, 1, side, side)
            else:
                task = seg_task(name, path, sz, device, phase2=adv is not None)
                net = task.G
                runs = sz["seg_runs"] if label == "default" else sz["plain_runs"]
                warmup = sz["seg_warmup"]
                x = torch.rand(1, 3, *sz["seg_infer"])
            prec = task.precision
            times = interleaved_step_times(task, [0] if adv is None else [0, task.p1], runs,
                                           warmup=warmup)
            row[label] = _train_times(prec, times[0])
            if adv is not None:  # phase 2: A's update, then G's adversarial update
                adv[label] = _train_times(prec, times[1])
                adv[label]["phase2_over_phase1"] = ratio_spread(times[1], times[0])
            base = net
            if adv is not None:  # G after SS-GAN steps vs a freshly built baseline G
                adv[label]["infer_ms"] = 1e3 * inference_seconds(net, prec, x)
                base = prec.prepare(build_generator(SegModelConfig(name=name), 11))
            row[label]["infer_ms"] = 1e3 * inference_seconds(base, prec, x)
            if label == "plain":
                row["train_flops"] = step_flops(task, 0)
                row["infer_flops"] = forward_flops(base, prec.input(x))
                if adv is not None:
                    adv["train_flops"] = step_flops(task, task.p1)
                    adv["infer_flops"] = forward_flops(net, prec.input(x))
                if key not in data:  # one SR and one seg pipeline
                    data[key] = {"loader_samples_per_s": bs / batch_seconds(task.data,
                                                                             range(3)),
                                 "what": ("random HR crops + MATLAB bicubic LR (x2, Y)" if is_sr
                                          else "synthetic CamVid-like scenes, random scale "
                                               "0.5-2, crop, flip, normalise")}
                    batches[key] = task.data[0]
        if is_sr:
            row["train_input"] = (f"{bs}x1x{sz['sr_patch'] // 2}x"
                                  f"{sz['sr_patch'] // 2} LR")
            row["infer_input"] = f"1x1x{sz['sr_out'] // 2}x{sz['sr_out'] // 2} LR"
        else:
            n, h, w = sz["seg"]
            row["train_input"] = f"{n}x3x{h}x{w}"
            row["infer_input"] = "1x3x{}x{}".format(*sz["seg_infer"])
        for r in (row, adv) if adv else (row,):
            if r is adv:
                r["train_input"] = row["train_input"] + " G+A"
                r["infer_input"] = row["infer_input"]
            _ratios(r, peak)
            rows.append(r)
        if adv is not None:
            ssgan.append(_ssgan_summary(row, adv))
        if "step_samples_per_s" not in data[key]:
            data[key]["step_samples_per_s"] = bs / (row["default"]["train_ms"] / 1e3)
            data[key]["ratio"] = data[key]["loader_samples_per_s"] / \
                data[key]["step_samples_per_s"]
    by = {r["model"]: r for r in rows}
    return {"models": rows, "ssgan": ssgan, "data": data,
            "peers": bench_peers(sz, device, batches["seg"], by["deeplab_r50"])}


def _train_times(prec: Precision, times: list[float]) -> dict:
    st = spread(times)
    return {"precision": prec.mode, "channels_last": prec.channels_last, "train_ms": st["ms"],
            "train_ms_min": st["min_ms"], "train_ms_max": st["max_ms"], "train_runs": st["runs"]}


def _ssgan_summary(base: dict, ss: dict) -> dict:
    """Phase 2 (G + A) vs phase 1 (G alone) of one generator: the median of the ratios of
    interleaved step pairs with their spread, FLOPs, and G's inference after SS-GAN steps."""
    d, p = ss["default"]["phase2_over_phase1"], ss["plain"]["phase2_over_phase1"]
    return {
        "generator": ss["generator"],
        "phase1_ms": base["default"]["train_ms"], "phase2_ms": ss["default"]["train_ms"],
        "phase2_over_phase1": d["median"], "phase2_over_phase1_min": d["min"],
        "phase2_over_phase1_max": d["max"], "pairs": d["pairs"],
        "phase2_over_phase1_plain": p["median"], "phase2_over_phase1_plain_min": p["min"],
        "phase2_over_phase1_plain_max": p["max"], "pairs_plain": p["pairs"],
        "phase1_flops": base["train_flops"], "phase2_flops": ss["train_flops"],
        "flops_ratio": ss["train_flops"] / base["train_flops"],
        "target": 1.3,
        # G after phase-2 steps vs a freshly built phase-1-only G: same module class
        "infer_flops_ssgan_g": ss["infer_flops"], "infer_flops_baseline": base["infer_flops"],
        "infer_ms_ssgan_g": ss["default"]["infer_ms"],
        "infer_ms_baseline": base["default"]["infer_ms"]}


def _ratios(row: dict, peak: dict) -> None:
    row["train_speedup"] = row["plain"]["train_ms"] / row["default"]["train_ms"]
    row["infer_speedup"] = row["plain"]["infer_ms"] / row["default"]["infer_ms"]
    for label in ("plain", "default"):
        r = row[label]
        p = peak[r["precision"] if r["precision"] in peak else "fp32"] * 1e9
        r["train_gflops"] = row["train_flops"] / (r["train_ms"] / 1e3) / 1e9
        r["infer_gflops"] = row["infer_flops"] / (r["infer_ms"] / 1e3) / 1e9
        r["train_peak_fraction"] = r["train_gflops"] * 1e9 / p
        r["infer_peak_fraction"] = r["infer_gflops"] * 1e9 / p


def bench_peers(sz: dict, device, batch, ours: dict) -> list[dict]:
    """torchvision's own models, trained as its segmentation reference script does: fp32 NCHW,
    aux loss on (weight 0.5), SGD lr 0.02 momentum 0.9 wd 1e-4, on our deeplab_r50's batch."""
    import torchvision.models.segmentation as tvseg

    images, masks = (t.to(device) for t in batch)
    out = []
    for name in PEERS:
        progress(f"torchvision {name}")
        torch.manual_seed(0)
        model = getattr(tvseg, name)(weights=None, weights_backbone=None, num_classes=11,
                                     aux_loss=True).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)

        def step():
            o = model(images)
            loss = F.cross_entropy(o["out"], masks, ignore_index=255) + \
                0.5 * F.cross_entropy(o["aux"], masks, ignore_index=255)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        ms = 1e3 * statistics.median(time_runs(step, sz["plain_runs"], device=device))
        out.append({"model": f"torchvision {name}", "config": "fp32 NCHW, aux loss on",
                    "train_input": "{}x3x{}x{}".format(*sz["seg"]), "train_ms": ms,
                    "train_flops": counted_flops(step)})
    tv = out[1]["train_ms"]
    out.append({"model": "densekit deeplab_r50 (default path)", "config": "auto precision, "
                "channels_last, no aux head", "train_input": out[1]["train_input"],
                "train_ms": ours["default"]["train_ms"], "train_flops": ours["train_flops"],
                "relative_to_deeplabv3_resnet50": ours["default"]["train_ms"] / tv})
    return out
