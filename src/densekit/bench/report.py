"""The ``densekit bench`` report as a table."""

from __future__ import annotations

import sys


def _g(flops: float) -> str:
    return f"{flops / 1e9:,.1f}"


def print_table(res: dict, file=None) -> None:
    out = file or sys.stdout

    def p(line=""):
        print(line, file=out)

    m = res["machine"]
    p(f"machine: {m['device']} {m['cpu']}, {m['threads']} threads, torch {m['torch']}; "
      f"fast bf16 CPU: {'yes' if m['fast_bf16_cpu'] else 'no'}; densekit default path: "
      f"{m['default_path']}; huge pages for large tensors: {m.get('huge_pages', 'not recorded')}")
    p("peak (the better of an n x n matmul and a channels_last 3x3 conv, best of 3 each): "
      + ", ".join(f"{k} {q['peak_gflops']:,.1f} GFLOP/s ({q['set_by']}; matmul "
                  f"{q['matmul_gflops']:,.1f} at n={q['matmul_n']}, conv3x3 "
                  f"{q['conv3x3_gflops']:,.1f} on {q['conv3x3_input']})"
                  for k, q in res["peak_probes"].items()))
    if "models" in res:
        _print_models(res, p)
    if "sr" in res:
        _print_sr(res["sr"], p)
    if "upscale_memory" in res:
        _print_upscale(res["upscale_memory"], p)
    if "data" in res:
        p()
        p("Data pipeline alone vs the training step (default path), samples/s")
        for k, d in res["data"].items():
            p(f"  {k:<4} {d['what']:<68} loader {d['loader_samples_per_s']:8.1f}   step "
              f"{d['step_samples_per_s']:7.1f}   = {d['ratio']:.1f}x")
    if "compile" in res or "onnx" in res:
        p()
    if "compile" in res:
        _print_compile(res["compile"], p)
    if "onnx" in res:
        _print_onnx(res["onnx"], p)
    p()
    p(f"bench took {res['seconds']:.0f} s ({', '.join(res['sections'])})"
      + (" (--quick: tiny sizes, numbers not meaningful)" if res["quick"] else ""))


def _print_models(res: dict, p) -> None:
    p()
    p("Training step and inference, plain = fp32 NCHW (a typical reference script), "
      "default = densekit default path")
    p(f"{'model':<18} {'train input':<22} {'GFLOP':>7} {'plain ms':>9} {'default ms':>10} "
      f"{'spread':>6} {'speedup':>7} {'%peak':>6} | {'infer input':<14} {'GFLOP':>6} "
      f"{'plain ms':>9} {'default ms':>10} {'speedup':>7} {'%peak':>6}")
    for r in res["models"]:
        pl, df = r["plain"], r["default"]
        p(f"{r['model']:<18} {r['train_input']:<22} {_g(r['train_flops']):>7} "
          f"{pl['train_ms']:>9,.0f} {df['train_ms']:>10,.0f} {_spread(df):>6} "
          f"{r['train_speedup']:>6.2f}x {100 * df['train_peak_fraction']:>5.1f}% | "
          f"{r['infer_input']:<14} {_g(r['infer_flops']):>6} {pl['infer_ms']:>9,.1f} "
          f"{df['infer_ms']:>10,.1f} {r['infer_speedup']:>6.2f}x "
          f"{100 * df['infer_peak_fraction']:>5.1f}%")
    runs = {r["default"]["train_runs"] for r in res["models"]}
    p("(train ms: median of {} steps after warm-up steps (SR {}, seg {}), plain path {}; spread: "
      "(max - min) / median of the default path's steps; %peak: achieved FLOP/s of the "
      "default path / measured peak of its precision; FLOPs by densekit's FlopCounter "
      "(torch's FlopCounterMode, grouped-conv backward fixed), training = forward + backward; "
      "ssgan:G = phase-2 step of G + its adversarial network)".format(
          "/".join(map(str, sorted(runs))), res["sizes"]["sr_train_warmup"],
          res["sizes"]["seg_warmup"],
          "/".join(map(str, sorted({r["plain"]["train_runs"] for r in res["models"]})))))
    p()
    p("Peers (training step, same batch)")
    for r in res["peers"]:
        rel = r.get("relative_to_deeplabv3_resnet50")
        p(f"  {r['model']:<38} {r['config']:<42} {r['train_input']:<12} "
          f"{_g(r['train_flops']):>7} GFLOP {r['train_ms']:>9,.0f} ms"
          + (f"  = {rel:.2f}x torchvision deeplabv3_resnet50" if rel else ""))
    for s in res["ssgan"]:
        p()
        p(f"SS-GAN ({s['generator']}): phase-2 / phase-1 step = {s['phase2_over_phase1']:.2f}x "
          f"(median of {s['pairs']} interleaved pairs, {s['phase2_over_phase1_min']:.2f}-"
          f"{s['phase2_over_phase1_max']:.2f}; target <= {s['target']}x), "
          f"{s['phase2_ms']:,.0f} vs {s['phase1_ms']:,.0f} ms; plain path "
          f"{s['phase2_over_phase1_plain']:.2f}x ({s['phase2_over_phase1_plain_min']:.2f}-"
          f"{s['phase2_over_phase1_plain_max']:.2f}); FLOPs ratio {s['flops_ratio']:.2f}x (A "
          f"forward on real + fake, A backward, A forward + backward into G)")
        p(f"  inference of the G after SS-GAN steps vs a freshly built baseline G: "
          f"{_g(s['infer_flops_ssgan_g'])} vs {_g(s['infer_flops_baseline'])} GFLOP, "
          f"{s['infer_ms_ssgan_g']:,.1f} vs {s['infer_ms_baseline']:,.1f} ms")


def _spread(r: dict) -> str:
    return f"{100 * (r['train_ms_max'] - r['train_ms_min']) / r['train_ms']:.0f}%"


def _print_sr(rows: list[dict], p) -> None:
    p()
    p("Super-resolution x2 (default path; PSNR on Set5 x2, gain over bicubic's 33.66 dB)")
    p(f"  {'model':<8} {'MFLOP/px':>9} {'ms/Mpx out':>11} {'range':>15} {'PSNR':>6} "
      f"{'source':<27} {'dB/(MFLOP/px)':>13} {'dB/(s/Mpx)':>10}")
    for r in rows:
        ps = f"{r['set5_x2_psnr']:.2f}" if "set5_x2_psnr" in r else "-"
        a = f"{r['db_per_mflop_per_px']:.2f}" if "db_per_mflop_per_px" in r else "-"
        b = f"{r['db_per_s_per_mpx']:.2f}" if "db_per_s_per_mpx" in r else "-"
        rng = f"{r['ms_per_megapixel_min']:,.0f}-{r['ms_per_megapixel_max']:,.0f}"
        p(f"  {r['model']:<8} {r['flops_per_pixel'] / 1e6:>9.3f} {r['ms_per_megapixel']:>11,.0f}"
          f" {rng:>15} {ps:>6} {r.get('psnr_source', '-'):<27} {a:>13} {b:>10}")
    by = {r["model"]: r for r in rows}
    for name in ("hdcn", "hdcn*"):
        if "vs_vdsr" in by.get(name, {}):
            v = by[name]["vs_vdsr"]
            flops = by[name]["flops_per_pixel"] / by["vdsr"]["flops_per_pixel"]
            label = "HDCN" if name == "hdcn" else "HDCN*"
            p(f"  {label} / VDSR time: {v['median']:.2f}x (range {v['min']:.2f}-{v['max']:.2f} "
              f"over {v['pairs']} interleaved rounds; fastest rounds {v['of_fastest']:.2f}x; "
              f"FLOPs ratio {flops:.2f}x)")
    if "hdcn*" in by:
        p("  hdcn*: hdcn with fp32_features=false (--model-option): F1 and the skip additions "
          "in the 16-bit type too")


def _print_upscale(u: dict, p) -> None:
    p()
    if "error" in u:
        p(f"Tiled upscaling (sr upscale): error {u['error']}")
        return
    sizes = ", ".join(f"{r['out'][0]}x{r['out'][1]} out: +{r['peak_growth_bytes'] / 2**20:,.0f}"
                      f" MiB in {r['seconds']:.1f} s" for r in u["runs"])
    p(f"Tiled upscaling (sr upscale, {u['model']}, {u['input']}, LR tile {u['tile_lr']}), peak "
      f"RSS growth: {sizes}")
    per_px, target = u["bytes_per_output_pixel"], u["target_bytes_per_output_pixel"]
    big = u["runs"][-1]["out"]
    p(f"  memory = {u['tile_working_bytes'] / 2**20:,.0f} MiB (the model's working memory on one "
      f"tile, measured alone) + {per_px:.1f} bytes per output pixel at {big[0]}x{big[1]} "
      f"(target <= {target}: {'met' if per_px <= target else 'missed'}); between the two sizes "
      f"{u['fit_fixed_bytes'] / 2**20:,.0f} MiB + {u['fit_bytes_per_output_pixel']:.1f} "
      "bytes per output pixel")
    ratio, target = u["time_ratio"], u["target_time_ratio"]
    p(f"  time = {u['ms_per_megapixel']:,.0f} ms per output Mpx end to end (file to file) = "
      f"{ratio:.2f}x the model's own {u['model_ms_per_megapixel']:,.0f} ms/Mpx on one tile "
      f"(target <= {target}x: {'met' if ratio <= target else 'missed'})")


def _print_compile(c: dict, p) -> None:
    if "skipped" in c:
        p(f"torch.compile: skipped ({c['skipped']})")
        return

    def fmt(e):
        return e.get("error") or (f"{e['train_ms']:,.0f} ms/step (first step "
                                  f"{e['first_step_s']:.1f} s)")
    p(f"torch.compile, HDCN train step on {c['input']} (default path): eager "
      f"{fmt(c['eager'])}; compiled {fmt(c['compiled'])}"
      + (f"; speedup {c['speedup']:.2f}x" if "speedup" in c else "")
      + f"; engine.compile default: {c['default']}")


def _print_onnx(o: dict, p) -> None:
    if "error" in o or "skipped" in o:
        p(f"ONNX Runtime: {o.get('error') or 'skipped (' + o['skipped'] + ')'}")
    else:
        p(f"ONNX Runtime vs PyTorch, {o['model']} inference on {o['input']}: "
          f"{o['onnxruntime_ms']:,.1f} ms vs {o['pytorch_ms']:,.1f} ms (PyTorch/ORT "
          f"{o['pytorch_over_onnxruntime']:.2f}x), max abs diff {o['max_abs_diff']:.1e}")
