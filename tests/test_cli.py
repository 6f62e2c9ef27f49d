"""The command line: eval output format, models table, train errors."""

import json

from densekit.cli.main import main

from helpers import camvid_folder, set_args, shared_data, tiny_sr_config


def test_eval_json_on_two_folders(sr_folder, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    for p in sorted(sr_folder.iterdir())[:2]:
        (other / p.name).write_bytes(p.read_bytes())
    assert main(["sr", "eval", "--model", "bicubic", "--scale", "2", "--data", str(sr_folder),
                 "--data", str(other), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["dataset"] for r in rows] == ["hr", "other"]
    assert [r["images"] for r in rows] == [5, 2]
    for r in rows:
        assert set(r) == {"dataset", "model", "scale", "psnr", "ssim", "images", "seconds",
                          "self_ensemble", "degrade"}
        assert r["model"] == "bicubic" and r["scale"] == 2 and r["self_ensemble"] is False
        assert r["degrade"] == ""
        assert 15 < r["psnr"] < 60 and 0 < r["ssim"] <= 1


def test_eval_self_ensemble_changes_hdcn_but_not_bicubic(sr_folder, capsys):
    def run(model, *extra):
        assert main(["sr", "eval", "--model", model, "--scale", "2", "--data", str(sr_folder),
                     "--json", "--precision", "fp32", *extra]) == 0
        return json.loads(capsys.readouterr().out)[0]

    plain, ens = run("hdcn"), run("hdcn", "--self-ensemble")
    assert ens["self_ensemble"] is True and abs(ens["psnr"] - plain["psnr"]) > 1e-3
    # MATLAB bicubic is symmetric: its self-ensemble is itself (up to float rounding)
    b, be = run("bicubic"), run("bicubic", "--self-ensemble")
    assert abs(be["psnr"] - b["psnr"]) < 1e-3


def test_eval_bicubic_set5_matches_published(capsys):
    assert main(["sr", "eval", "--model", "bicubic", "--scale", "2", "--json", "--data",
                 str(shared_data("sr", "Set5"))]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert abs(row["psnr"] - 33.66) < 0.05 and abs(row["ssim"] - 0.9299) < 0.001


def test_models_table(capsys):
    assert main(["sr", "models", "--scales", "2", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["srcnn"]["params"] == 57281
    assert rows["bicubic"]["params"] == 0
    assert rows["hdcn"]["flops_per_pixel"] < rows["vdsr"]["flops_per_pixel"] / 2


def test_train_cli_config_errors_are_one_line(tmp_path, sr_folder, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train: {epocs: 3}\n")
    assert main(["sr", "train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "c.yaml: train.epocs: unknown key" in err and err.count("\n") == 1
    sets = tiny_sr_config(sr_folder, tmp_path / "r")
    args = ["sr", "train"] + set_args(sets)
    assert main(args + ["--set", "data.train=[/no/such/dir]"]) == 2
    assert "data.train: /no/such/dir is not a folder" in capsys.readouterr().err
    assert main(args + ["--set", "model.options={bogus: 1}"]) == 2
    assert "unknown option 'bogus'" in capsys.readouterr().err


def test_train_then_eval_a_checkpoint(tmp_path, sr_folder, capsys):
    sets = tiny_sr_config(sr_folder, tmp_path / "r")
    assert main(["sr", "train"] + set_args(sets)) == 0
    capsys.readouterr()
    for w in (tmp_path / "r" / "weights.pt", tmp_path / "r" / "checkpoints" / "step_00000006.pt"):
        assert main(["sr", "eval", "--model", "hdcn", "--scale", "2", "--data", str(sr_folder),
                     "--weights", str(w), "--json", "--precision", "fp32"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert row["images"] == 5


def test_model_option_sets_what_changes_no_weights(tmp_path, sr_folder, capsys):
    """--model-option fp32_features=false runs the shipped HDCN with 16-bit feature maps:
    bf16 autocast gives other numbers, fp32 the same; options the weights fix are refused."""
    base = ["sr", "eval", "--model", "hdcn", "--scale", "2", "--data", str(sr_folder), "--json"]
    psnr = {}
    for prec in ("fp32", "bf16"):
        for opt in ([], ["--model-option", "fp32_features=false"]):
            assert main(base + ["--precision", prec] + opt) == 0
            psnr[prec, bool(opt)] = json.loads(capsys.readouterr().out)[0]["psnr"]
    assert psnr["fp32", True] == psnr["fp32", False]
    assert psnr["bf16", True] != psnr["bf16", False]
    assert abs(psnr["bf16", True] - psnr["bf16", False]) < 0.5
    for opt, msg in (("init=paper", "--model-option: 'init' cannot be set for hdcn at inference "
                                    "(settable: fp32_features)"),
                     ("fp32_features=maybe", "model.hdcn: fp32_features must be true or false, "
                                             "got 'maybe'")):
        assert main(base + ["--model-option", opt]) == 2
        assert capsys.readouterr().err == f"densekit: error: {msg}\n"
    out = tmp_path / "up"
    assert main(["sr", "upscale", str(sr_folder / "gray.png"), "--scale", "2", "-o", str(out),
                 "--model", "vdsr", "--model-option", "fp32_features=false", "-q"]) == 2
    assert "'fp32_features' cannot be set for vdsr at inference (settable: none)" in \
        capsys.readouterr().err
    assert not out.exists()


def test_models_timing(capsys):
    assert main(["sr", "models", "--scales", "4", "--time", "32", "--precision", "fp32",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 5 and all(r["ms_per_megapixel"] > 0 for r in rows)


def test_data_check_reports_problems_with_file_names(tmp_path, sr_folder, capsys):
    import numpy as np
    from PIL import Image

    assert main(["data", "check", "--task", "sr", "--data", str(sr_folder)]) == 0
    assert "5 samples checked, 0 problem(s)" in capsys.readouterr().out
    (sr_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["data", "check", "--task", "sr", "--data", str(sr_folder)]) == 1
    assert "broken.png" in capsys.readouterr().out
    root = camvid_folder(tmp_path / "camvid")
    Image.fromarray(np.full((24, 32), 40, np.uint8)).save(root / "valannot" / "s0.png")
    Image.new("RGB", (32, 24)).save(root / "train" / "nolabel.png")
    assert main(["data", "check", "--task", "seg", "--dataset", "camvid", "--data",
                 str(root)]) == 1
    out = capsys.readouterr().out
    assert "nolabel.png" in out and "valannot/s0.png" in out and "2 problem(s)" in out


def _arguments_without_help(parser, path=("densekit",)):
    """(command path, argument) of every argparse action under ``parser`` (subcommands
    included) whose help text is empty; -h/--help is argparse's own and skipped."""
    import argparse

    missing, seen = [], []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not helps.get(name):
                    missing.append((" ".join(path), name))
                more, visited = _arguments_without_help(sub, (*path, name))
                missing += more
                seen += visited
            continue
        name = "/".join(action.option_strings) or action.metavar or action.dest
        seen.append((" ".join(path), name))
        if not (action.help or "").strip():
            missing.append((" ".join(path), name))
    return missing, seen


def test_every_cli_argument_has_help():
    from densekit.cli.main import build_parser

    missing, seen = _arguments_without_help(build_parser())
    assert not missing, f"arguments without help text: {missing}"
    # the walk reaches nested subcommands and positional arguments
    assert ("densekit sr upscale", "INPUT") in seen
    assert ("densekit seg predict", "--weights") in seen


def test_help_walk_reports_missing_help():
    import argparse

    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    a = sub.add_parser("a", help="has help")
    a.add_argument("path")
    a.add_argument("--ok", help="fine")
    sub.add_parser("b")  # a subcommand without help
    missing, _ = _arguments_without_help(p, ("prog",))
    assert sorted(missing) == [("prog", "b"), ("prog a", "path")]


def test_command_asks_for_huge_pages_before_torch_loads():
    # PyTorch reads THP_MEM_ALLOC_ENABLE once, at its first allocation: densekit.cli sets it
    # before anything imports torch, and a value the user set wins
    import os
    import subprocess
    import sys

    code = ("import os, sys, densekit.cli; "
            "print('torch' in sys.modules, os.environ['THP_MEM_ALLOC_ENABLE'])")
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "1"]
    out = subprocess.run([sys.executable, "-c", code], env={**env, "THP_MEM_ALLOC_ENABLE": "0"},
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "0"]
