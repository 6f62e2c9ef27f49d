import pytest

from densekit.config import apply_overrides, load_config
from densekit.errors import ConfigError
from densekit.tasks.sr import SRConfig


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
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs" / "sr"
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
    from pathlib import Path

    from densekit.tasks.seg import SegConfig

    root = Path(__file__).resolve().parents[1] / "configs" / "seg"
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
