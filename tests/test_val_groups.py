"""``data.val_groups``: a validation set of held-out groups of files (CamVid's drives, a user's
sites): the split, its one-line errors, ``densekit data check``'s group listing, training and
``densekit seg eval --split val``."""

import json
from pathlib import Path

import pytest

from densekit.cli.main import main
from densekit.config import load_config
from densekit.errors import ConfigError
from densekit.tasks import seg_eval
from densekit.tasks.seg import SegConfig, SegTask, build_splits, split_dataset, train

from helpers import camvid_label, rgb, save_gray_png, save_rgb, tiny_seg_config

# three "drives": A and C in train, C's later frames in val (as CamVid's 0016E5), B in train only
TRAIN = ["A_000.png", "A_001.png", "B_000.png", "C_000.png", "C_001.png"]
VAL = ["C_002.png", "C_003.png"]


@pytest.fixture
def drives(tmp_path):
    """A CamVid-layout data set whose file names start with their drive."""
    root = tmp_path / "camvid"
    for split, names in (("train", TRAIN), ("val", VAL)):
        for i, name in enumerate(names):
            save_rgb(root / split / name, rgb(32, 32, i))
            save_gray_png(root / f"{split}annot" / name, camvid_label(32, 32, i))
    return root


@pytest.fixture
def sites(tmp_path):
    """A user's folder data set in one folder (DIR/images, DIR/masks), two sites."""
    root = tmp_path / "mine"
    for i, name in enumerate(["north_1.png", "north_2.png", "south_1.png", "south_2.png",
                              "south_3.png"]):
        save_rgb(root / "images" / name, rgb(16, 16, i))
        save_gray_png(root / "masks" / name, camvid_label(16, 16, i) % 3)
    return root


def data_sets(root, *sets):
    return ["data.dataset=camvid", f"data.root={root}", "data.options={}", *sets]


def names(ds):
    return [Path(img).name for img, _ in ds.files]


def splits(sets):
    return build_splits(load_config(SegConfig, None, sets).data)


def test_default_is_the_val_split(drives):
    train_set, val_set, sizes = splits(data_sets(drives))
    assert names(train_set) == TRAIN and names(val_set) == VAL and sizes == {}


def test_held_out_groups_come_from_train_and_val(drives):
    train_set, val_set, sizes = splits(data_sets(drives, "data.val_groups=['B_*']"))
    assert names(val_set) == ["B_000.png"]
    assert names(train_set) == ["A_000.png", "A_001.png", "C_000.png", "C_001.png", "C_002.png",
                                "C_003.png"]
    assert sizes == {"B_*": 1}
    image, mask = val_set[0]  # the samples load, from the train folder
    assert image.shape == (3, 32, 32) and mask.shape == (32, 32)
    assert val_set.files[0][1] == drives / "trainannot" / "B_000.png"
    # two groups: both validate, in the data set's order; a single string is a list of one
    train_set, val_set, sizes = splits(data_sets(drives, "data.val_groups=['C_*', A_000.png]"))
    assert names(val_set) == ["A_000.png", "C_000.png", "C_001.png", "C_002.png", "C_003.png"]
    assert names(train_set) == ["A_001.png", "B_000.png"] and sizes == {"C_*": 4, "A_000.png": 1}
    assert names(splits(data_sets(drives, "data.val_groups=A_*"))[1]) == ["A_000.png", "A_001.png"]


def test_joined_splits_train_on_every_frame(drives):
    train_set, val_set, sizes = splits(data_sets(drives, "data.train_split=train+val"))
    assert names(train_set) == TRAIN + VAL and names(val_set) == VAL and sizes == {}
    assert train_set[5][0].shape == (3, 32, 32)  # a val frame, loaded from its own folder
    with pytest.raises(ConfigError, match=r"^data split 'train\+': an empty name"):
        splits(data_sets(drives, "data.train_split=train+"))


def test_folder_data_set_in_one_folder(sites):
    sets = ["data.dataset=folder", f"data.root={sites}", "data.options={classes: [a, b, c]}",
            "data.train_split=''", "data.val_split=''", "data.val_groups=['north_*']"]
    train_set, val_set, sizes = splits(sets)
    assert names(val_set) == ["north_1.png", "north_2.png"]  # each file once
    assert names(train_set) == ["south_1.png", "south_2.png", "south_3.png"]
    assert sizes == {"north_*": 2}
    cfg = load_config(SegConfig, None, sets).data
    assert names(split_dataset(cfg, "")) == ["north_1.png", "north_2.png"]


@pytest.mark.parametrize("groups, message", [
    ("['Z_*']", "data.val_groups: 'Z_*' matches none of the 7 images of the data set (a glob on "
                "the file name such as '0006R0_*'; groups by name: A 2, B 1, C 4)"),
    ("['C_*', '*_001.png']", "data.val_groups: C_001.png matches both 'C_*' and '*_001.png'; "
                             "groups must not overlap"),
    ("['[AB]_*', 'C_*']", "data.val_groups: the groups '[AB]_*', 'C_*' hold all 7 images of "
                          "the data set; nothing is left to train on"),
    ("['B_*', ' ']", "data.val_groups[1]: empty pattern"),
    ("['B_*', 'B_*']", "data.val_groups: 'B_*' given twice"),
])
def test_bad_groups_are_one_line_errors(drives, tmp_path, capsys, groups, message):
    sets = data_sets(drives, f"data.val_groups={groups}")
    with pytest.raises(ConfigError) as e:
        splits(sets)
    assert str(e.value) == message
    out = tmp_path / "run"
    with pytest.raises(ConfigError) as e:
        train(None, tiny_seg_config(out, **dict(s.split("=", 1) for s in sets)))
    assert str(e.value) == message
    assert not (out / "checkpoints").exists()
    args = [x for s in sets for x in ("--set", s)]
    for cmd in (["seg", "train", *args, "--set", f"engine.out_dir={out}"],
                ["data", "check", "--task", "seg", *args]):
        assert main(cmd) == 2
        captured = capsys.readouterr()
        assert captured.err == f"densekit: error: {message}\n" and captured.out == ""


def test_groups_of_generated_data_are_refused():
    with pytest.raises(ConfigError, match=r"^data.val_groups: not supported for the synthetic "
                                          r"data set \(generated scenes, no files to group\)$"):
        load_config(SegConfig, None, ["data.dataset=synthetic", "data.val_groups=[a]"])


def test_data_check_names_the_groups_and_their_sizes(drives, tmp_path, capsys):
    assert main(["data", "check", "--task", "seg", "--dataset", "camvid",
                 "--data", str(drives)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "train: 5 images; groups by file-name prefix (before the first '_'): A 2, B 1, C 2",
        "val: 2 images; groups by file-name prefix (before the first '_'): C 2",
        "train and val share the groups C; data.val_groups validates on held-out groups "
        "instead (docs/training.md)",
        "7 samples checked, 0 problem(s)"]
    cfg = tmp_path / "heldout.yaml"
    cfg.write_text(f"data:\n  dataset: camvid\n  root: {drives}\n  val_groups: ['B_*']\n")
    assert main(["data", "check", "--task", "seg", "--config", str(cfg)]) == 0
    expected = [
        "train + val: 7 images; groups by file-name prefix (before the first '_'): A 2, B 1, C 4",
        "data.val_groups: validation 1 images (B_* 1); training 6 images (A 2, C 4)",
        "7 samples checked, 0 problem(s)"]
    assert capsys.readouterr().out.splitlines() == expected
    # --data replaces data.root; --set overrides the config
    assert main(["data", "check", "--task", "seg", "--config", str(cfg), "--data", str(drives),
                 "--set", "data.val_groups=['A_*', 'B_*']"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        "data.val_groups: validation 3 images (A_* 2, B_* 1); training 4 images (C 4)")
    # a problem in a held-out group is still reported, once
    (drives / "trainannot" / "B_000.png").unlink()
    assert main(["data", "check", "--task", "seg", "--config", str(cfg)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{drives / 'trainannot' / 'B_000.png'}: label missing")
    assert lines[-1] == "7 samples checked, 1 problem(s)"
    assert main(["data", "check", "--task", "seg", "--config", str(cfg), "--dataset",
                 "camvid"]) == 2
    assert capsys.readouterr().err.startswith("densekit: error: --dataset: not with --config")


def test_training_validates_on_the_held_out_groups(drives, tmp_path):
    cfg = load_config(SegConfig, None, tiny_seg_config(tmp_path / "run", **{
        "data.dataset": "camvid", "data.root": str(drives), "data.options": "{}",
        "data.val_groups": "['C_*']"}))
    task = SegTask(cfg)
    assert names(task.val_set) == ["C_000.png", "C_001.png", "C_002.png", "C_003.png"]
    assert names(task.train_set) == ["A_000.png", "A_001.png", "B_000.png"]


def test_seg_eval_scores_the_held_out_groups(drives, tmp_path, camvid_weights, capsys,
                                             monkeypatch):
    scored = []

    def fake_evaluate(model, dataset, *, num_classes, **kw):
        scored.append(names(dataset))
        return {"miou": 0.5, "pixel_acc": 0.5, "mean_acc": 0.5, "iou": [0.5] * num_classes,
                "images": len(dataset), "seconds": 0.0}

    monkeypatch.setattr(seg_eval, "evaluate_dataset", fake_evaluate)
    cfg = tmp_path / "heldout.yaml"
    cfg.write_text(f"data:\n  dataset: camvid\n  root: {drives}\n  val_groups: ['B_*']\n")
    base = ["seg", "eval", "--config", str(cfg), "--weights", str(camvid_weights), "--json"]
    assert main(base) == 0  # the default split is data.val_split: the held-out groups
    row = json.loads(capsys.readouterr().out)
    assert scored[-1] == ["B_000.png"] and row["images"] == 1 and row["split"] == "val"
    assert row["val_groups"] == ["B_*"]
    assert main(base + ["--split", "val"]) == 0 and scored[-1] == ["B_000.png"]
    assert main(base + ["--split", "train"]) == 0
    assert scored[-1] == ["A_000.png", "A_001.png", "C_000.png", "C_001.png", "C_002.png",
                          "C_003.png"]
    capsys.readouterr()
    # without groups, --split val is the val folder
    assert main(base + ["--set", "data.val_groups=[]", "--split", "val"]) == 0
    assert scored[-1] == VAL and "val_groups" not in json.loads(capsys.readouterr().out)
    assert main(base[:-1] + ["--split", "val"]) == 0
    assert "(1 images of data.val_groups B_*, " in capsys.readouterr().out
