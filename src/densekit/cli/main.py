"""The ``densekit`` command line.

User mistakes (bad files, options, configs) end in one line on stderr, ``densekit: error: ...``,
and exit status 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter

from densekit import __version__
from densekit.data.image_io import MAX_PIXELS
from densekit.errors import DensekitError
from densekit.models.sr import SR_MODELS, SUPPORTED_SCALES
from densekit.models.zoo import real_photo_rule


def _precision_args(p: argparse.ArgumentParser, train: bool = False) -> None:
    """--precision/--device; for training they stand for ``--set engine.precision=...`` /
    ``--set engine.device=...`` (default: the config's values, auto)."""
    default, note = ("auto", "") if not train else (None, " (default: the config's engine.{})")
    p.add_argument("--precision", default=default, choices=["auto", "fp32", "bf16", "fp16"],
                   help="autocast precision (auto: bf16 on AMX/AVX-512-bf16 CPUs and bf16 GPUs, "
                        "fp16 + GradScaler on older GPUs, else fp32)" + note.format("precision"))
    p.add_argument("--device", default=default,
                   help="auto, cpu, cuda or cuda:N" + (
                       "; under torchrun cuda means cuda:LOCAL_RANK" if train else "")
                   + note.format("device"))


def _train_overrides(args) -> list[str]:
    """--set values, then --precision/--device as engine overrides (they win)."""
    sets = list(args.set or [])
    if args.precision is not None:
        sets.append(f"engine.precision={args.precision}")
    if args.device is not None:
        sets.append(f"engine.device={args.device}")
    return sets


def _engine(args):
    from densekit.engine.precision import Precision, resolve_device, resolve_precision

    device = resolve_device(args.device)
    return Precision(device, resolve_precision(args.precision, device), channels_last=True)


_SCALES_TEXT = ", ".join(map(str, SUPPORTED_SCALES[:-1])) + f" or {SUPPORTED_SCALES[-1]}"


def _scale(text: str) -> int:
    try:
        s = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"scale must be {_SCALES_TEXT}, got {text!r}") from None
    if s not in SUPPORTED_SCALES:
        raise argparse.ArgumentTypeError(f"scale must be {_SCALES_TEXT}, got {s}")
    return s


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _size(text: str) -> tuple[int, int]:
    """HxW, both positive, e.g. 360x480."""
    parts = text.lower().split("x")
    try:
        h, w = (int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 360x480, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"height and width must be > 0, got {text!r}")
    return h, w


def _train_parser(subs, help_text: str, task: str, example: str, func) -> None:
    """``densekit TASK train``: a YAML config, --set overrides, --resume, precision."""
    t = subs.add_parser("train", help=help_text)
    t.add_argument("--config", help=f"YAML config (configs/{task}/*.yaml)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help=f"override a config value, e.g. --set {example} (repeatable)")
    t.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="'auto' (newest valid checkpoint of the run folder) or a checkpoint path")
    _precision_args(t, train=True)
    t.set_defaults(func=func)


# ---- sr --------------------------------------------------------------------------------------
def _self_ensemble_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--self-ensemble", action="store_true",
                   help="average the model over the 8 flips/rotations of the input (EDSR's "
                        "self-ensemble; 8x the time)")


def _model_option_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-option", action="append", type=_model_option, default=[],
                   metavar="KEY=VALUE",
                   help="set a model option that changes no weights (repeatable); hdcn: "
                        "fp32_features=false runs F1 and the skip additions in the 16-bit "
                        "precision too (faster on bf16 CPUs, a few hundredths of a dB lower)")


def _model_option(text: str) -> tuple[str, object]:
    from densekit.config import parse_override
    from densekit.errors import ConfigError

    try:
        path, value = parse_override(text)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}") from None
    return ".".join(path), value


def _sr_model(args):
    """(model on the precision path, Precision) for sr eval / sr upscale."""
    from densekit.tasks.sr import load_sr_model

    prec = _engine(args)
    model = load_sr_model(args.model, args.scale, args.weights, dict(args.model_option))
    return prec.prepare(model), prec


def cmd_sr_train(args) -> int:
    from densekit.tasks.sr import train

    train(args.config, _train_overrides(args), args.resume)
    return 0


def cmd_sr_eval(args) -> int:
    from densekit.tasks.sr_eval import evaluate_folder

    from densekit.data.degrade import format_degrade, parse_degrade

    degrade = parse_degrade(args.degrade)
    model, prec = _sr_model(args)
    rows = []
    for folder in args.data:
        r = evaluate_folder(model, folder, args.scale, device=prec.device,
                            autocast=prec.autocast, self_ensemble=args.self_ensemble,
                            degrade=degrade)
        r = {k: r[k] for k in ("dataset", "model", "scale", "psnr", "ssim", "images", "seconds")}
        r["model"] = args.model
        r["self_ensemble"] = args.self_ensemble
        r["degrade"] = format_degrade(degrade)
        rows.append(r)
        if not args.json:
            name = args.model + ("+" if args.self_ensemble else "")
            deg = f"  [{r['degrade']}]" if degrade else ""
            print(f"{r['dataset'] + deg:<12} {name:<8} x{args.scale}  PSNR {r['psnr']:.2f} dB  "
                  f"SSIM {r['ssim']:.4f}  ({r['images']} images, {r['seconds']:.1f} s)")
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


def cmd_sr_upscale(args) -> int:
    from densekit.models.zoo import default_weights
    from densekit.tasks.sr import choose_weights, load_sr_model
    from densekit.tasks.sr_upscale import default_tile, upscale_files

    model, prec = _sr_model(args)
    pick = None
    if args.weights is None and default_weights(args.model, scale=args.scale,
                                                degradation="real") is not None:
        models = {}

        def pick(im):  # the shipped weights for this file: real-photo ones for a JPEG
            name, quality = choose_weights(args.model, args.scale, im)
            if name not in models:
                models[name] = prec.prepare(load_sr_model(args.model, args.scale, name,
                                                          dict(args.model_option)))
            return models[name], {"weights": name, "jpeg_quality": quality}

    tile = default_tile(args.scale) if args.tile is None else args.tile
    res = upscale_files(model, args.inputs, args.output, tile=tile, autocast=prec.autocast,
                        device=prec.device, self_ensemble=args.self_ensemble,
                        progress=not args.quiet, report=lambda m: print(m, file=sys.stderr),
                        skip_existing=args.skip_existing, report_file=args.report, pick=pick)
    if pick is not None and not args.quiet:
        used = Counter(e["weights"] for e in res["entries"] if "weights" in e)
        if used:
            print("weights: " + ", ".join(f"{n} for {k} image(s)" for n, k in sorted(used.items()))
                  + " (real-photo weights for JPEG files of estimated quality at most "
                  f"{real_photo_rule()}; --weights chooses)")
    return _batch_summary(args, res)


def _batch_summary(args, res: dict) -> int:
    """The summary line of a batch run (unless --quiet); exit status 1 if any input failed."""
    if not args.quiet:
        n = len(res["entries"])
        print(f"wrote {len(res['written'])}, skipped {len(res['skipped'])}, failed "
              f"{len(res['failed'])} of {n} image(s) into {args.output} in "
              f"{res['seconds']:.1f} s" + (f"; report: {args.report}" if args.report else ""))
    return 1 if res["failed"] else 0


_BATCH_EPILOG = (
    "Outputs: a folder INPUT is searched with its subfolders (except OUTDIR) and each image "
    "keeps its path under OUTDIR: DIR/sub/NAME.EXT -> OUTDIR/sub/{}; a file INPUT -> "
    "OUTDIR/{}. A run where two inputs would get the same output (e.g. a.png and a.jpg, the "
    "same names in two INPUT folders, names differing only in case) or an output would "
    "replace an input is refused before anything is written, naming both files. Existing "
    "outputs are replaced, unless --skip-existing.")


def _batch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-existing", action="store_true",
                   help="leave inputs whose outputs already exist (a rerun continues where a "
                        "killed run stopped: outputs are written atomically, an existing one is "
                        "complete); without it existing outputs are overwritten")
    p.add_argument("--report", metavar="FILE.json",
                   help="write every input with its outputs (written or skipped) or its "
                        "one-line error, and the counts, as JSON (atomically; at the start with "
                        "every input pending, again at the end)")


def cmd_sr_models(args) -> int:
    from densekit.bench import inference_ms_per_megapixel
    from densekit.models.complexity import count_params, flops_per_pixel
    from densekit.models.sr import build_sr_model
    from densekit.models.zoo import default_weights

    prec = _engine(args) if args.time else None
    rows = []
    for name in SR_MODELS:
        for s in args.scales:
            m = build_sr_model(name, s)
            row = {"model": name, "scale": s, "params": count_params(m),
                   "flops_per_pixel": flops_per_pixel(m, (48, 48))}
            shipped = default_weights(name, scale=s)
            if shipped is not None:
                row["weights"] = shipped.name
                row["psnr"] = {d: m["psnr"] for d, m in shipped.metrics.items()}
            if prec is not None:
                row["ms_per_megapixel"] = inference_ms_per_megapixel(m, prec, args.time)
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    timed = f" {'ms/Mpx out':>11}" if prec is not None else ""
    print(f"{'model':<8} {'scale':>5} {'params':>10} {'FLOPs/pixel':>14}{timed}  "
          "shipped weights (PSNR, fp32)")
    for r in rows:
        t = f" {r['ms_per_megapixel']:>11,.0f}" if prec is not None else ""
        psnr = ", ".join(f"{d} {v:.2f} dB" for d, v in r.get("psnr", {}).items())
        print(f"{r['model']:<8} {'x' + str(r['scale']):>5} {r['params']:>10,} "
              f"{r['flops_per_pixel']:>14,.0f}{t}  {psnr or '-'}")
    if prec is not None:
        print(f"(inference on a {args.time}x{args.time}-pixel output, {prec.device.type} "
              f"{prec.mode}, median of 3 runs after a warm-up)")
    return 0


def cmd_models(args) -> int:
    from densekit.models.zoo import headline, list_weights, markdown_table

    records = list_weights(task=args.task)
    if args.json:
        print(json.dumps([dataclasses.asdict(w) for w in records], indent=1))
    elif args.markdown:
        print(markdown_table(records), end="")
    else:
        print(f"{'weights':<22} {'task':<4} {'model':<13} {'params':>11}  result (fp32)")
        for w in records:
            print(f"{w.name:<22} {w.task:<4} {w.model:<13} {w.params:>11,}  {headline(w)}")
    return 0


# ---- seg -------------------------------------------------------------------------------------
def cmd_seg_train(args) -> int:
    from densekit.tasks.seg import train

    train(args.config, _train_overrides(args), args.resume)
    return 0


def _inference_args(args) -> dict:
    if args.mode == "slide" and not args.crop:
        raise DensekitError("--mode slide: needs the window size, --crop H W")
    if args.crop and min(args.crop) < 1:
        raise DensekitError(f"--crop: expected two sizes >= 1, got {args.crop[0]} {args.crop[1]}")
    bad = [s for s in args.scales if not 0 < s < float("inf")]
    if bad:
        raise DensekitError(f"--scales: expected numbers > 0, got {bad[0]}")
    return {"mode": args.mode, "crop": tuple(args.crop) if args.crop else None,
            "flip": args.flip, "scales": tuple(args.scales)}


def _eval_config(args, meta: dict):
    """The data settings of ``seg eval``: --config, or without it the data set the weights
    were trained on when that is CamVid (the SegNet layout, DIR/SPLIT + DIR/SPLITannot)."""
    from densekit.config import load_config
    from densekit.data.seg import CAMVID_CLASSES
    from densekit.tasks.seg import SegConfig

    sets = args.set or []
    if args.config is None:
        if meta.get("dataset") != "camvid" or list(meta["classes"]) != CAMVID_CLASSES:
            raise DensekitError(f"--config: needed for {meta['path']} (trained on "
                                f"{meta.get('dataset') or 'an unknown data set'}; without "
                                "--config only CamVid weights are evaluated)")
        sets = ["data.dataset=camvid", "data.options={}"] + sets
    return load_config(SegConfig, args.config, sets)


def cmd_seg_eval(args) -> int:
    from densekit.tasks.seg import load_seg_model, split_dataset
    from densekit.tasks.seg_eval import evaluate_weights

    inference = _inference_args(args)
    model, meta = load_seg_model(args.weights)
    d = _eval_config(args, meta).data
    split = args.split or d.val_split
    dataset = split_dataset(d, split, args.data)  # data.val_groups: val = the held-out groups
    prec = _engine(args)
    model = prec.prepare(model)
    row = evaluate_weights(model, meta, dataset, dataset_name=d.dataset, split=split,
                           device=prec.device, autocast=prec.autocast,
                           channels_last=prec.channels_last, **inference)
    if d.val_groups and split in (d.train_split, d.val_split):
        row["val_groups"] = list(d.val_groups)
    if args.json:
        print(json.dumps(row, indent=1))
        return 0
    for name, v in row["iou"].items():
        print(f"{name:<16} {100 * v:6.2f}")
    print(f"{'mIoU':<16} {100 * row['miou']:6.2f}\n{'pixel acc':<16} "
          f"{100 * row['pixel_acc']:6.2f}   ({row['images']} images"
          + (f" of data.val_groups {', '.join(row['val_groups'])}" if "val_groups" in row else "")
          + f", {row['seconds']:.1f} s)")
    return 0


def cmd_seg_predict(args) -> int:
    from densekit.tasks.seg import load_seg_model
    from densekit.tasks.seg_predict import predict_files

    inference = _inference_args(args)
    model, meta = load_seg_model(args.weights)
    prec = _engine(args)
    model = prec.prepare(model)
    res = predict_files(model, meta, args.inputs, args.output, device=prec.device,
                        autocast=prec.autocast, progress=not args.quiet,
                        report=lambda m: print(m, file=sys.stderr),
                        skip_existing=args.skip_existing, report_file=args.report, **inference)
    return _batch_summary(args, res)


def _seg_inference_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=["whole", "slide"], default="whole",
                   help="whole-image or sliding-window inference (large images)")
    p.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"),
                   help="sliding-window crop size")
    p.add_argument("--flip", action="store_true", help="average with the mirrored image")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0],
                   help="multi-scale testing, e.g. --scales 0.75 1 1.25")


def cmd_data_check(args) -> int:
    """Report every problem of a data set (file names included); exit 1 if any."""
    problems: list[str] = []
    groups: list[str] = []  # seg: the groups of files and their sizes
    count = 0
    if args.task == "seg":
        from densekit.data.seg import check_dataset

        sets, groups = _seg_check_sets(args)
        for ds in sets:
            count += len(ds)
            problems += check_dataset(ds)
    else:
        if args.config or args.set or not args.data:
            raise DensekitError("--task sr: needs --data DIR (and takes no --config or --set)")
        from densekit.data.image_io import list_images, read_image
        from densekit.errors import ImageError

        for path in list_images(args.data):
            count += 1
            try:
                read_image(path)
            except ImageError as e:
                problems.append(str(e))
    for p in problems:
        print(p)
    for line in groups:
        print(line)
    print(f"{count} samples checked, {len(problems)} problem(s)")
    return 1 if problems else 0


def _seg_check_sets(args) -> tuple[list, list[str]]:
    """``data check --task seg``: the data sets to check (of --config/--set's data section, its
    data.val_groups applied, or of --dataset, --data and --split) and lines naming the groups of
    files (by file-name prefix) and their sizes."""
    from pathlib import Path

    from densekit.data.seg import build_seg_dataset, format_sizes, group_sizes, pooled

    def line(what, files):
        return f"{what}: {len(files)} images; groups by file-name prefix (before the first " \
               f"'_'): {format_sizes(group_sizes(files))}"

    if args.config or args.set:
        from densekit.config import load_config
        from densekit.tasks.seg import SegConfig, build_splits

        given = [o for o, v in (("--dataset", args.dataset), ("--split", args.split),
                                ("--classes", args.classes)) if v]
        if given:
            raise DensekitError(f"{given[0]}: not with --config or --set (the config's data "
                                "section names the data set; --data replaces data.root)")
        d = load_config(SegConfig, args.config, args.set).data
        root = args.data or d.root
        train, val, sizes = build_splits(d, root)
        if sizes:
            what = " + ".join(dict.fromkeys([d.train_split or str(root),
                                             d.val_split or str(root)]))
            return [train, val], [
                line(what, pooled([train, val]).files),
                f"data.val_groups: validation {len(val)} images ("
                + ", ".join(f"{p} {n}" for p, n in sizes.items()) + f"); training "
                f"{len(train)} images ({format_sizes(group_sizes(train.files))})"]
        named = {d.train_split or str(root): train, d.val_split or str(root): val}
    else:
        if not args.data:
            raise DensekitError("--data: required (the data set root), or --config")
        splits, kwargs, dataset = args.split or ["train", "val"], {}, args.dataset or "folder"
        if dataset == "folder":  # DIR/images + DIR/masks, or DIR/SPLIT/images + ...
            kwargs["classes"] = args.classes or str(Path(args.data) / "classes.txt")
            if not args.split and (Path(args.data) / "images").is_dir():
                splits = [None]
        named = {split or str(args.data): build_seg_dataset(dataset, args.data, split, **kwargs)
                 for split in splits}
    lines = [line(what, ds.files) for what, ds in named.items() if ds.files]
    if len(lines) == 2:  # e.g. CamVid's val: frames of a drive that train has too
        (a, da), (b, db) = named.items()
        shared = sorted(set(group_sizes(da.files)) & set(group_sizes(db.files)))
        if shared:
            lines.append(f"{a} and {b} share the groups {', '.join(shared[:12])}"
                         f"{' and more' if len(shared) > 12 else ''}; data.val_groups validates "
                         "on held-out groups instead (docs/training.md)")
    return list(named.values()), lines


def cmd_export(args) -> int:
    from densekit.export import export

    res = export(args.task, args.weights, args.output, model=args.model, scale=args.scale,
                 size=args.size)
    print(f"wrote {res['output']} ({res['model']}, {res['bytes'] / 1e6:.1f} MB); ONNX Runtime vs "
          f"PyTorch on inputs of {' and '.join('x'.join(map(str, s)) for s in res['check_sizes'])}"
          f" (N x h x w): max abs difference {res['max_abs_diff']:.2e}")
    return 0


def cmd_bench(args) -> int:
    from densekit.bench import parse_sections, print_table, run_bench

    res = run_bench(quick=args.quick, device=args.device, threads=args.threads,
                    sections=parse_sections(args.sections))
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print_table(res)
    return 0


def cmd_demo(args) -> int:
    from densekit.tasks.demo import run_demo

    run_demo(args.output, ("sr", "camvid", "seg") if args.part == "all" else (args.part,))
    return 0


def cmd_serve(args) -> int:
    from densekit.app.server import serve

    serve(args.host, args.port, max_file_size_mb=args.max_file_size,
          max_pixels=args.max_pixels, queue_size=args.queue_size, device=args.device,
          precision=args.precision)
    return 0


def _positive_int(text: str) -> int:
    v = _nonneg_int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _port(text: str) -> int:
    v = _nonneg_int(text)
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1..65535, got {v}")
    return v


def cmd_config_show(args) -> int:
    from densekit.config import load_task_config, to_yaml
    from densekit.tasks.seg import SegConfig
    from densekit.tasks.sr import SRConfig

    cfg = load_task_config({"sr": SRConfig, "seg": SegConfig}, args.config, args.set, args.task)
    print(to_yaml(cfg), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="densekit",
                                description="densekit: dense image prediction toolkit")
    p.add_argument("--version", action="version", version=f"densekit {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    sr = sub.add_parser("sr", help="super-resolution (HDCN and baselines)")
    srs = sr.add_subparsers(dest="sr_command", required=True)

    _train_parser(srs, "train an SR model from a YAML config", "sr", "train.epochs=5",
                  cmd_sr_train)

    e = srs.add_parser("eval", help="PSNR/SSIM on folders of HR images (the standard protocol)")
    e.add_argument("--model", default="hdcn", choices=list(SR_MODELS),
                   help="SR model (default: hdcn)")
    e.add_argument("--scale", type=_scale, required=True, help="upscaling factor: " + _SCALES_TEXT)
    e.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="folder of HR images (repeatable)")
    e.add_argument("--weights", help="weights file or training checkpoint "
                                     "(default for hdcn: the shipped weights)")
    e.add_argument("--json", action="store_true",
                   help="print a JSON list, one object per folder")
    e.add_argument("--degrade", metavar="SPEC",
                   help="degrade each LR image after the bicubic downscale, as a photo is: "
                        "jpeg:Q (save as JPEG of quality Q, 1-100, and decode), noise:SIGMA "
                        "(Gaussian, SIGMA 8-bit levels, seeded by the file name); "
                        "comma-separated to chain, in order (e.g. noise:5,jpeg:70)")
    _self_ensemble_arg(e)
    _model_option_arg(e)
    _precision_args(e)
    e.set_defaults(func=cmd_sr_eval)

    u = srs.add_parser("upscale", help="upscale your own images (files or folders)",
                       epilog=_BATCH_EPILOG.format("NAME_xS.png", "NAME_xS.png"))
    u.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files or folders of images (PNG, JPEG, BMP, TIFF, WebP)")
    u.add_argument("--scale", type=_scale, required=True, help="upscaling factor: " + _SCALES_TEXT)
    u.add_argument("--model", default="hdcn", choices=list(SR_MODELS),
                   help="SR model (default: hdcn)")
    u.add_argument("--weights", help="a shipped weights name (densekit models: e.g. hdcn_x2, "
                                     "hdcn_real_x2), a weights file or a training checkpoint; "
                                     "default for hdcn: per file, the real-photo weights "
                                     "(hdcn_real_xS) for a JPEG whose quality, estimated from "
                                     "its quantisation tables, is at most "
                                     f"{real_photo_rule()}, else the clean weights "
                                     "(hdcn_xS; also at x3, where no real-photo weights ship)")
    u.add_argument("--tile", type=_nonneg_int, default=None,
                   help="LR tile size in pixels (0 = whole image; default keeps tiles ~512px out)")
    u.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="folder for the outputs, NAME.EXT -> NAME_xS.png with the input's "
                        "subfolders (created if missing; see below)")
    u.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar or summary line (errors are still printed)")
    _batch_args(u)
    _self_ensemble_arg(u)
    _model_option_arg(u)
    _precision_args(u)
    u.set_defaults(func=cmd_sr_upscale)

    mo = srs.add_parser("models", help="parameters and FLOPs per output pixel of every SR model")
    mo.add_argument("--scales", type=_scale, nargs="+", default=list(SUPPORTED_SCALES),
                    help="scales to report (default: all)")
    mo.add_argument("--json", action="store_true", help="print JSON instead of a table")
    mo.add_argument("--time", type=int, nargs="?", const=480, default=0, metavar="SIZE",
                    help="also time CPU/GPU inference on a SIZE x SIZE output (default 480)")
    _precision_args(mo)
    mo.set_defaults(func=cmd_sr_models)

    zm = sub.add_parser("models", help="the shipped weights (model zoo) with their metrics")
    zm.add_argument("--task", choices=["sr", "seg"], help="only this task's weights")
    zm.add_argument("--json", action="store_true",
                    help="every record in full (file, SHA-256, metrics and the commands)")
    zm.add_argument("--markdown", action="store_true",
                    help="the README's model table")
    zm.set_defaults(func=cmd_models)

    sg = sub.add_parser("seg", help="semantic segmentation (SS-GAN adversarial training)")
    sgs = sg.add_subparsers(dest="seg_command", required=True)
    _train_parser(sgs, "phase 1 (G alone) then phase 2 (adversarial), resumable", "seg",
                  "train.phase1_epochs=0", cmd_seg_train)
    e = sgs.add_parser("eval", help="per-class IoU, mIoU, pixel accuracy on a split")
    e.add_argument("--config", help="the data set settings (default for CamVid weights: "
                                    "CamVid, DIR/SPLIT images and DIR/SPLITannot labels)")
    e.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a value of --config, e.g. --set data.root=DIR (repeatable)")
    e.add_argument("--weights", help="weights.pt or a training checkpoint (default: the "
                                     "shipped CamVid model)")
    e.add_argument("--data", help="data set root (default: the config's data.root; without "
                                  "--config ../shared/data/camvid)")
    e.add_argument("--split", help="split to score (default: the config's data.val_split, val; "
                                   "with data.val_groups, the held-out groups)")
    e.add_argument("--json", action="store_true", help="print the results as one JSON object")
    _seg_inference_options(e)
    _precision_args(e)
    e.set_defaults(func=cmd_seg_eval)
    pr = sgs.add_parser("predict", help="label PNGs and overlays for your own images",
                        epilog=_BATCH_EPILOG.format("NAME_label.png and NAME_overlay.png",
                                                    "NAME_label.png and NAME_overlay.png"))
    pr.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="image files or folders of images (PNG, JPEG, BMP, TIFF, WebP)")
    pr.add_argument("--weights", help="weights.pt or a training checkpoint (default: the "
                                      "shipped CamVid model)")
    pr.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                    help="folder for NAME_label.png (class indices) and NAME_overlay.png, with "
                         "the input's subfolders (created if missing; see below)")
    pr.add_argument("-q", "--quiet", action="store_true",
                    help="no progress bar or summary line (errors are still printed)")
    _batch_args(pr)
    _seg_inference_options(pr)
    _precision_args(pr)
    pr.set_defaults(func=cmd_seg_predict)

    dc = sub.add_parser("data", help="data set tools")
    dcs = dc.add_subparsers(dest="data_command", required=True)
    c = dcs.add_parser("check", help="report every problem of a data set, with file names")
    c.add_argument("--task", choices=["seg", "sr"], required=True,
                   help="seg: image/label pairs; sr: every image decodes")
    c.add_argument("--dataset",
                   help="seg: voc, cityscapes, camvid, folder or synthetic (default: folder)")
    c.add_argument("--data", metavar="DIR", help="data set root folder (seg with --config: "
                                                 "default the config's data.root)")
    c.add_argument("--split", action="append", help="seg splits (default: train and val)")
    c.add_argument("--classes", metavar="FILE",
                   help="folder data sets: class names, one a line (default: DIR/classes.txt)")
    c.add_argument("--config", help="seg: check the data set of this training config "
                                    "(configs/seg/*.yaml), split by its data.val_groups")
    c.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="seg: override a config value, e.g. --set \"data.val_groups=['0006R0_*']\" "
                        "(repeatable)")
    c.set_defaults(func=cmd_data_check)

    x = sub.add_parser("export", help="export a model to ONNX (dynamic batch/height/width, or "
                                      "a fixed height/width with --size)")
    x.add_argument("--task", choices=["sr", "seg"], required=True,
                   help="super-resolution or segmentation model")
    x.add_argument("--weights", help="weights file or training checkpoint (default: the "
                                     "shipped weights; sr: those of --model/--scale)")
    x.add_argument("--model", choices=list(SR_MODELS),
                   help="sr: model name (default: from the weights file)")
    x.add_argument("--scale", type=_scale, help="sr: scale (default: from the weights file)")
    x.add_argument("--size", type=_size, metavar="HxW",
                   help="fix the input height and width (sr: of the LR image), e.g. 360x480, "
                        "for models whose graph depends on the input size (SwiftNet, SRCNN, "
                        "VDSR, REDNet); the batch stays dynamic (default: dynamic)")
    x.add_argument("--format", choices=["onnx"], default="onnx",
                   help="output format (default: onnx)")
    x.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the file to write (written atomically after the ONNX Runtime check)")
    x.set_defaults(func=cmd_export)

    b = sub.add_parser("bench", help="speed of every model and of the data pipeline on this "
                                     "machine (a few minutes)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--quick", action="store_true", help="tiny sizes (a test-sized run)")
    b.add_argument("--threads", type=_nonneg_int, default=0,
                   help="torch intra-op threads (0 = this machine's cores; 1 on a machine "
                        "busy with other work, where threads wait on each other)")
    b.add_argument("--sections", metavar="LIST",
                   help="run only these, a comma list of models (with SS-GAN, data pipelines "
                        "and peers), sr, upscale, compile, onnx (default: all)")
    b.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("demo", help="the offline demo (make demo)")
    d.add_argument("-o", "--output", default="demo_out",
                   help="folder for the comparison pictures (default: demo_out)")
    d.add_argument("--part", default="all", choices=["all", "sr", "camvid", "seg"],
                   help="super-resolution, the shipped CamVid model on street scenes, "
                        "segmentation (SS-GAN on synthetic scenes), or all three")
    d.set_defaults(func=cmd_demo)

    sv = sub.add_parser("serve", help="a local web app: upscale or segment images in the "
                                      "browser (needs pip install 'densekit[app]')")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only; another, "
                         "e.g. 0.0.0.0, opens the app, which has no login, to the network and "
                         "prints a warning)")
    sv.add_argument("--port", type=_port, default=7860, help="port to listen on (default 7860)")
    sv.add_argument("--max-file-size", type=_positive_int, default=25, metavar="MB",
                    help="largest upload in megabytes (default 25)")
    sv.add_argument("--max-pixels", type=_positive_int, default=MAX_PIXELS, metavar="N",
                    help="largest image in pixels, checked from the file's header before it is "
                         f"decoded (default {MAX_PIXELS:,}, the limit of every densekit command; "
                         "larger values are capped by it)")
    sv.add_argument("--queue-size", type=_positive_int, default=16, metavar="N",
                    help="requests that may wait in the queue (default 16); they run one at a "
                         "time")
    _precision_args(sv)
    sv.set_defaults(func=cmd_serve)

    cf = sub.add_parser("config", help="training configs")
    cfs = cf.add_subparsers(dest="config_command", required=True)
    sh = cfs.add_parser("show", help="print a config fully resolved (base files merged, --set "
                                     "applied, every default filled in) as YAML")
    sh.add_argument("--config", help="YAML config (configs/sr/*.yaml or configs/seg/*.yaml; "
                                     "default: the built-in defaults of --task)")
    sh.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="override a config value, e.g. --set train.epochs=2 (repeatable)")
    sh.add_argument("--task", choices=["sr", "seg"],
                    help="the config's task (default: its 'task:' key)")
    sh.set_defaults(func=cmd_config_show)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SystemExit as e:
        from densekit.engine import distributed

        if isinstance(e.code, int) and e.code > 128 and distributed.World.from_env().size > 1:
            distributed.exit_now(e.code)  # a torchrun worker's clean stop on a signal
        raise
    except DensekitError as e:
        print(f"densekit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("densekit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
