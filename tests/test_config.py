from pathlib import Path

import pytest

from densekit.config import apply_overrides, load_config
from densekit.errors import ConfigError
from densekit.tasks.sr import SRConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_are_the_paper_schedule():
    cfg = load_config(SRConfig, None)
    t = cfg.train
    assert (t.epochs, t.iters_per_epoch, t.batch_size) == (100, 1000, 32)
    assert t.optimizer.name == "adam" and t.optimizer.lr == 1e-3
    assert t.optimizer.betas == [0.9, 0.9999]
    assert t.scheduler.name == "step" and t.scheduler.step_epochs == 20
    assert t.scheduler.gamma == 0.5 and t.l2 == 1e-3


def test_yaml_and_overrides(tmp_path):
    p = write(tmp_path, "model: {name: vdsr, scale: 3}\ntrain: {epochs: 4}\n")
    cfg = load_config(SRConfig, p, ["train.optimizer.lr=1e-4", "data.train=[a, b]",
                                    "model.options.foo=1"])
    assert cfg.model.name == "vdsr" and cfg.model.scale == 3 and cfg.train.epochs == 4
    assert cfg.train.optimizer.lr == pytest.approx(1e-4)
    assert cfg.data.train == ["a", "b"]
    assert cfg.model.options == {"foo": 1}


def test_base_config_is_merged(tmp_path):
    write(tmp_path, "train: {epochs: 7, batch_size: 4}\nmodel: {scale: 4}\n", "base.yaml")
    p = write(tmp_path, "base: base.yaml\ntrain: {epochs: 2}\n")
    cfg = load_config(SRConfig, p)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.model.scale) == (2, 4, 4)


def test_shipped_configs_are_valid():
    root = CONFIGS / "sr"
    files = sorted(p for p in root.glob("*.yaml"))
    assert files
    for f in files:
        load_config(SRConfig, f)


@pytest.mark.parametrize("override, message", [
    (["train.epoch=3"], "train.epoch: unknown key"),
    (["model.scale=5"], "model.scale: must be one of"),
    (["model.scale=two"], "model.scale: expected an integer"),
    (["train.optimizer.lr=-1"], "train.optimizer.lr: must be > 0"),
    (["train.batch_size=0"], "train.batch_size: must be >= 1"),
    (["data.augment=maybe"], "data.augment: expected true or false"),
    (["engine.precision=fp8"], "engine.precision: must be one of"),
    (["train=3"], "train: expected a mapping"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(SRConfig, None, override)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(SRConfig, tmp_path / "missing.yaml")
    p = write(tmp_path, "model: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(SRConfig, p)
    p = write(tmp_path, "model: {nmae: hdcn}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: model.nmae: unknown key"):
        load_config(SRConfig, p)


def test_override_syntax():
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="not a mapping"):
        apply_overrides({"a": 1}, ["a.b=2"])


def test_partial_section_override_keeps_the_section_defaults():
    # SRTrainConfig's scheduler defaults to the paper's step schedule, not the class default
    cfg = load_config(SRConfig, None, ["train.scheduler.step_epochs=3"])
    assert cfg.train.scheduler.name == "step" and cfg.train.scheduler.step_epochs == 3
    cfg = load_config(SRConfig, None, ["train.optimizer.lr=1e-4"])
    assert cfg.train.optimizer.betas == [0.9, 0.9999]


def test_shipped_seg_configs_are_valid():
    from densekit.tasks.seg import SegConfig

    root = CONFIGS / "seg"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 10
    names = set()
    for f in files:
        cfg = load_config(SegConfig, f)
        names.add(cfg.model.name)
    assert {"fcn8s_vgg16", "deeplab_r50"} <= names
    cfg = load_config(SegConfig, root / "deeplab_r50_camvid_cpu.yaml")
    assert cfg.data.resize == 0.5 and cfg.data.class_weights == "median_frequency"
    assert cfg.train.adversarial.d_optimizer.name == "sgd"
    assert cfg.train.adversarial.d_optimizer.momentum == 0.9


@pytest.mark.parametrize("task, override, message", [
    ("sr", "train.epochs=-1", "train.epochs: must be >= 1, got -1"),
    ("sr", "train.epochs=0", "train.epochs: must be >= 1, got 0"),
    ("sr", "train.optimizer.lr=-0.001", "train.optimizer.lr: must be > 0, got -0.001"),
    ("sr", "train.optimizer.lr=.nan", "train.optimizer.lr: must be a finite number, got nan"),
    ("sr", "train.optimizer.lr=.inf", "train.optimizer.lr: must be a finite number, got inf"),
    ("sr", "train.optimizer.betas=[.nan, 0.9]", "train.optimizer.betas: must be a finite"),
    ("sr", "train.optimizer.betas=[1, 0.9]", "train.optimizer.betas: expected two numbers in"),
    ("sr", "train.l2=.nan", "train.l2: must be a finite number"),
    ("sr", "model.scale=0", "model.scale: must be one of [2, 3, 4], got 0"),
    ("sr", "data.patch_size=3", "data.patch_size: must be >= 8, got 3"),
    ("sr", "data.patch_size=[64]", "data.patch_size: expected an integer, got [64]"),
    ("sr", "data.workers=-1", "data.workers: must be >= 0, got -1"),
    ("sr", "engine.out_dir=''", "engine.out_dir: must name a folder"),
    ("sr", "engine.ckpt_every=0", "engine.ckpt_every: must be >= 1, got 0"),
    ("sr", "engine.nonfinite=ignore", "engine.nonfinite: must be one of"),
    ("sr", "engine.bogus=1", "engine.bogus: unknown key"),
    ("seg", "train.phase1_epochs=-1", "train.phase1_epochs: must be >= 0, got -1"),
    ("seg", "train.phase1_epochs=0", "train.phase2_epochs: phase1_epochs + phase2_epochs must"),
    ("seg", "train.adversarial.d_optimizer.lr=-1", "train.adversarial.d_optimizer.lr: must be >"),
    ("seg", "train.adversarial.eps=0", "train.adversarial.eps: must be > 0"),
    ("seg", "train.adversarial.eps=.nan", "train.adversarial.eps: must be a finite number"),
    ("seg", "train.adversarial.lam=-1", "train.adversarial.lam: must be >= 0"),
    ("seg", "data.crop_size=[4, 64]", "data.crop_size: expected [height, width] >= 8"),
    ("seg", "data.crop_size=[64]", "data.crop_size: expected [height, width] >= 8"),
    ("seg", "data.crop_size=64x64", "data.crop_size[0]: expected an integer, got '64x64'"),
    ("seg", "data.scale_range=[2, 1]", "data.scale_range: expected [low, high] with 0 < low"),
    ("seg", "data.resize=0", "data.resize: must be > 0, got 0"),
    ("seg", "data.resize=2", "data.resize: must be <= 1, got 2"),
    ("seg", "model.name=unet", "model.name: unknown generator 'unet'"),
    ("seg", "data.val_limit=-2", "data.val_limit: must be >= 0, got -2"),
    ("seg", "train.optimizer.name=rmsprop", "train.optimizer.name: must be one of"),
])
def test_impossible_values_are_one_line_errors_naming_the_key(task, override, message):
    from densekit.tasks.seg import SegConfig

    cls = SRConfig if task == "sr" else SegConfig
    extra = ["train.phase2_epochs=0"] if "phase1_epochs=0" in override else []
    with pytest.raises(ConfigError) as e:
        load_config(cls, None, [override] + extra)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def _config_files():
    return sorted(CONFIGS.glob("*/*.yaml"))


def test_no_shipped_config_restates_its_base():
    """Every config file changes something over its base (or, without a base, over the
    defaults): a file that resolves to the same config as its base is a duplicate name."""
    from densekit.config import load_task_config, read_yaml, to_dict
    from densekit.tasks.seg import SegConfig

    schemas = {"sr": SRConfig, "seg": SegConfig}
    for f in _config_files():
        base = read_yaml(f).get("base")
        cfg = load_task_config(schemas, f)
        ref = load_task_config(schemas, f.parent / base if base else None, task=cfg.task)
        assert to_dict(cfg) != to_dict(ref), f"{f.name} resolves to the same config as " + (
            base or "the defaults")


@pytest.mark.parametrize("path", _config_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_show_prints_the_resolved_config_as_a_config_file(path, tmp_path, capsys):
    from densekit.cli.main import main
    from densekit.config import load_task_config, to_dict
    from densekit.tasks.seg import SegConfig

    schemas = {"sr": SRConfig, "seg": SegConfig}
    assert main(["config", "show", "--config", str(path), "--set", "train.batch_size=3"]) == 0
    shown = write(tmp_path, capsys.readouterr().out, "shown.yaml")
    assert "base:" not in shown.read_text()
    expected = to_dict(load_task_config(schemas, path, ["train.batch_size=3"]))
    assert to_dict(load_task_config(schemas, shown)) == expected  # nothing lost or added
    assert expected["train"]["batch_size"] == 3


def test_config_show_merges_bases_and_overrides(capsys):
    import yaml

    from densekit.cli.main import main

    assert main(["config", "show", "--config", str(CONFIGS / "sr" / "hdcn_long.yaml"), "--set",
                 "model.scale=4", "--set", "engine.seed=7"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["task"] == "sr" and cfg["train"]["epochs"] == 25  # hdcn_long.yaml
    assert cfg["model"]["options"] == {"init": "kaiming"} and cfg["train"]["l2"] == 0  # its base
    assert cfg["data"]["patch_size"] == 48  # cpu.yaml, the base's base
    assert cfg["train"]["optimizer"]["betas"] == [0.9, 0.9999]  # paper.yaml
    assert cfg["engine"]["keep_ckpts"] == 3  # a default no file sets
    assert (cfg["model"]["scale"], cfg["engine"]["seed"]) == (4, 7)  # --set
    assert main(["config", "show", "--task", "seg"]) == 0  # the defaults
    assert yaml.safe_load(capsys.readouterr().out)["model"]["name"] == "fcn8s_vgg16"


@pytest.mark.parametrize("args, message", [
    (["--config", "configs/sr/cpu.yaml", "--set", "train.epoch=3"],
     "configs/sr/cpu.yaml: train.epoch: unknown key (known: epochs, "),
    (["--config", "configs/seg/camvid.yaml", "--set", "data.resize=2"],
     "configs/seg/camvid.yaml: data.resize: must be <= 1, got 2"),
    (["--config", "configs/sr/cpu.yaml", "--set", "novalue"], "--set novalue: expected key=value"),
    (["--config", "configs/sr/cpu.yaml", "--task", "seg"],
     "configs/sr/cpu.yaml: task: must be one of ['seg'], got 'sr'"),
    (["--config", "configs/sr/no_such.yaml"], "configs/sr/no_such.yaml: config file not found"),
    ([], "task: required (one of ['sr', 'seg'])"),
])
def test_config_show_mistakes_are_one_line_errors(args, message, capsys, monkeypatch):
    from densekit.cli.main import main

    monkeypatch.chdir(CONFIGS.parent)
    assert main(["config", "show", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"densekit: error: {message}") and err.count("\n") == 1


def test_command_line_quotes_what_the_shell_would_split():
    from densekit.config import command_line

    assert command_line("densekit sr train", None, []) == "densekit sr train"
    assert (command_line("densekit seg train", "my configs/a.yaml", ["train.lr=1e-3", "x=a b"])
            == "densekit seg train --config 'my configs/a.yaml' --set train.lr=1e-3 --set 'x=a b'")
