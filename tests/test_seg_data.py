"""Segmentation data: loaders on fixtures in each set's exact on-disk layout, transforms,
median-frequency weights, dataset checks, synthetic scenes, and the real CamVid if present."""

import math
import shutil

import numpy as np
import pytest
import scipy.io
import scipy.sparse
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from densekit.data.seg import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CamVid,
    Cityscapes,
    FolderDataset,
    InMemory,
    RandomScale,
    SyntheticScenes,
    VOCSegmentation,
    build_seg_dataset,
    check_dataset,
    enet_weights,
    eval_transforms,
    median_frequency_weights,
    train_transforms,
    voc_colormap,
)
from densekit.errors import DensekitError, ImageError

from helpers import (camvid_folder, camvid_label, rgb, save_gray_png, save_rgb, shared_data,
                     tiny_seg_config)


def save_palette_png(path, label, palette=None):
    im = Image.fromarray(label.astype(np.uint8), mode="P")
    flat = [v for c in (palette or voc_colormap(256)) for v in c]
    im.putpalette(flat)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def save_sbd_mat(path, seg):
    """SBD's cls/*.mat: a 1x1 struct GTcls with Boundaries (20x1 cell of sparse), Segmentation
    (uint8 H x W) and CategoriesPresent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bounds = np.empty((20, 1), dtype=object)
    for i in range(20):
        bounds[i, 0] = scipy.sparse.csc_matrix(seg.shape, dtype=np.float64)
    present = np.unique(seg[(seg > 0) & (seg < 255)]).astype(np.uint8).reshape(-1, 1)
    scipy.io.savemat(str(path), {"GTcls": {"Boundaries": bounds,
                                           "Segmentation": seg.astype(np.uint8),
                                           "CategoriesPresent": present}})


# ------------------------------------------------------------------------------------------
# PASCAL VOC 2012 + SBD

VOC_TRAIN = ["2007_000032", "2007_000039"]
VOC_VAL = ["2007_000033", "2007_000042"]
SBD_TRAIN = ["2007_000032", "2007_000033", "2008_000002"]
SBD_VAL = ["2008_000003", "2007_000042"]


def voc_label(name, h, w):
    lab = np.zeros((h, w), np.uint8)
    lab[2:h // 2, 3:w // 2] = 15  # person
    lab[h // 2:, w // 2:] = int(name[-2:]) % 20 + 1
    lab[h // 2 - 1, :] = 255  # void border
    return lab


@pytest.fixture
def voc_root(tmp_path):
    root = tmp_path / "voc"
    voc = root / "VOCdevkit" / "VOC2012"
    seg_lists = voc / "ImageSets" / "Segmentation"
    seg_lists.mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir()
    for i, name in enumerate(VOC_TRAIN + VOC_VAL):
        h, w = 14 + i, 18 + 2 * i
        save_rgb(voc / "JPEGImages" / f"{name}.jpg", rgb(h, w, i), quality=95)
        save_palette_png(voc / "SegmentationClass" / f"{name}.png", voc_label(name, h, w))
    # An image of SBD only (in VOC2012 JPEGImages, no SegmentationClass), like most of SBD.
    save_rgb(voc / "JPEGImages" / "2008_000002.jpg", rgb(16, 20, 7))
    (seg_lists / "train.txt").write_text("\n".join(VOC_TRAIN) + "\n")
    (seg_lists / "val.txt").write_text("\n".join(VOC_VAL) + "\n")
    (seg_lists / "trainval.txt").write_text("\n".join(sorted(VOC_TRAIN + VOC_VAL)) + "\n")
    # SBD: benchmark_RELEASE/dataset/{cls,img,train.txt,val.txt}
    sbd = tmp_path / "benchmark_RELEASE"
    ds = sbd / "dataset"
    for name in SBD_TRAIN + SBD_VAL:
        h, w = (16, 20) if name == "2008_000002" else (12, 10)
        seg = np.full((h, w), 3, np.uint8)  # bird; distinguishes SBD labels from VOC ones
        seg[: h // 3] = 0
        save_sbd_mat(ds / "cls" / f"{name}.mat", seg)
        save_rgb(ds / "img" / f"{name}.jpg", rgb(h, w, 9))
    (ds / "train.txt").write_text("\n".join(SBD_TRAIN) + "\n")
    (ds / "val.txt").write_text("\n".join(SBD_VAL) + "\n")
    return root, sbd


def test_voc_splits_and_palette_labels(voc_root):
    root, _ = voc_root
    ds = VOCSegmentation(root, "train")
    assert len(ds) == 2 and ds.num_classes == 21 and ds.ignore_index == 255
    assert ds.classes[15] == "person" and ds.palette[15] == (192, 128, 128)
    assert [p.stem for p, _ in ds.files] == VOC_TRAIN
    img, mask = ds[0]
    assert isinstance(img, tv_tensors.Image) and isinstance(mask, tv_tensors.Mask)
    assert img.dtype == torch.uint8 and img.shape == (3, 14, 18)
    assert mask.dtype == torch.int64 and mask.shape == (14, 18)
    assert torch.equal(mask, torch.from_numpy(voc_label(VOC_TRAIN[0], 14, 18).astype(np.int64)))
    assert mask[2, 3] == 15 and mask[6, 0] == 255
    assert len(VOCSegmentation(root / "VOCdevkit", "val")) == 2  # root may be VOCdevkit too
    assert len(VOCSegmentation(root / "VOCdevkit" / "VOC2012", "trainval")) == 4


def test_sbd_mat_layout(voc_root):
    _, sbd = voc_root
    seg = scipy.io.loadmat(str(sbd / "dataset" / "cls" / "2008_000002.mat"))["GTcls"][0][
        "Segmentation"][0]
    assert seg.dtype == np.uint8 and seg.shape == (16, 20)


def test_voc_train_aug(voc_root):
    root, sbd = voc_root
    for sbd_root in (sbd, sbd / "dataset"):
        ds = VOCSegmentation(root, "train_aug", sbd_root=sbd_root)
        # (SBD train + SBD val + VOC train) minus VOC val, deduplicated and sorted
        expect = sorted((set(SBD_TRAIN) | set(SBD_VAL) | set(VOC_TRAIN)) - set(VOC_VAL))
        assert [p.stem for p, _ in ds.files] == expect
        assert expect == ["2007_000032", "2007_000039", "2008_000002", "2008_000003"]
    files = {p.stem: (p, lbl) for p, lbl in ds.files}
    # VOC label wins where VOC has one; SBD .mat otherwise; SBD image only when VOC lacks it.
    assert files["2007_000032"][1].suffix == ".png"
    assert files["2008_000002"][1].suffix == ".mat"
    assert "VOC2012" in str(files["2008_000002"][0])
    assert "benchmark_RELEASE" in str(files["2008_000003"][0])
    img, mask = ds[0]  # VOC label, not the SBD one (all 3 below the first rows)
    assert torch.equal(mask, torch.from_numpy(voc_label("2007_000032", 14, 18).astype(np.int64)))
    img, mask = ds[2]  # 2008_000002: SBD .mat
    assert img.shape == (3, 16, 20) and mask.shape == (16, 20) and mask.dtype == torch.int64
    assert set(mask.unique().tolist()) == {0, 3}
    assert check_dataset(ds) == []
    with pytest.raises(DensekitError, match="sbd_root"):
        VOCSegmentation(root, "train_aug")


def test_voc_errors(voc_root, tmp_path):
    root, _ = voc_root
    with pytest.raises(DensekitError, match="not found"):
        VOCSegmentation(tmp_path / "nope", "train")
    with pytest.raises(DensekitError, match="VOCdevkit"):
        VOCSegmentation(tmp_path, "train")
    with pytest.raises(DensekitError, match="test.txt"):
        VOCSegmentation(root, "test")
    lists = root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    (lists / "empty.txt").write_text("\n")
    with pytest.raises(DensekitError, match="empty"):
        VOCSegmentation(root, "empty")


def test_voc_invalid_value_and_check(voc_root):
    root, _ = voc_root
    voc = root / "VOCdevkit" / "VOC2012"
    bad = np.zeros((14, 18), np.uint8)
    bad[0, 0] = 40
    save_palette_png(voc / "SegmentationClass" / f"{VOC_TRAIN[0]}.png", bad)
    (voc / "JPEGImages" / f"{VOC_TRAIN[1]}.jpg").unlink()
    ds = VOCSegmentation(root, "train")
    with pytest.raises(ImageError, match=rf"{VOC_TRAIN[0]}\.png.*40"):
        ds[0]
    problems = check_dataset(ds)
    assert len(problems) == 2
    assert f"{VOC_TRAIN[0]}.png" in problems[0] and "40" in problems[0]
    assert f"{VOC_TRAIN[1]}.jpg" in problems[1] and "missing" in problems[1]


# ------------------------------------------------------------------------------------------
# Cityscapes

CS_TABLE = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
            25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CS_FILES = {"train": {"aachen": ["aachen_000000_000019", "aachen_000001_000019"],
                      "bochum": ["bochum_000000_000313"]},
            "val": {"frankfurt": ["frankfurt_000000_000294"]}}


@pytest.fixture
def cityscapes_root(tmp_path):
    root = tmp_path / "cityscapes"
    h, w = 8, 12
    ids = (np.arange(h * w) % 34).reshape(h, w).astype(np.uint8)  # every labelId 0..33
    for split, cities in CS_FILES.items():
        for city, stems in cities.items():
            for k, stem in enumerate(stems):
                save_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                         rgb(h, w, k))
                gt = root / "gtFine" / split / city
                save_gray_png(gt / f"{stem}_gtFine_labelIds.png", np.roll(ids, k))
                # the other gtFine files must not be taken for labels
                save_rgb(gt / f"{stem}_gtFine_color.png", rgb(h, w, 5))
                save_gray_png(gt / f"{stem}_gtFine_instanceIds.png", ids)
                (gt / f"{stem}_gtFine_polygons.json").write_text("{}")
    return root, ids


def test_cityscapes(cityscapes_root):
    root, ids = cityscapes_root
    ds = Cityscapes(root, "train")
    assert ds.num_classes == 19 and ds.classes[13] == "car" and ds.palette[0] == (128, 64, 128)
    assert [p.name for p, _ in ds.files] == [
        "aachen_000000_000019_leftImg8bit.png", "aachen_000001_000019_leftImg8bit.png",
        "bochum_000000_000313_leftImg8bit.png"]
    assert all(lbl.name.endswith("_gtFine_labelIds.png") for _, lbl in ds.files)
    img, mask = ds[0]
    assert img.shape == (3, 8, 12) and img.dtype == torch.uint8
    assert mask.shape == (8, 12) and mask.dtype == torch.int64
    expect = np.vectorize(lambda v: CS_TABLE.get(int(v), 255))(ids)
    assert np.array_equal(mask.numpy(), expect)
    flat_ids, flat_mask = ids.ravel(), mask.numpy().ravel()
    assert flat_mask[list(flat_ids).index(26)] == 13 and flat_mask[list(flat_ids).index(0)] == 255
    assert sorted(set(flat_mask.tolist())) == list(range(19)) + [255]
    assert len(Cityscapes(root, "val")) == 1
    assert check_dataset(ds) == []


def test_cityscapes_errors_and_orphans(cityscapes_root):
    root, _ = cityscapes_root
    with pytest.raises(DensekitError, match="test"):
        Cityscapes(root, "test")
    (root / "leftImg8bit" / "val" / "frankfurt" / "frankfurt_000000_000294_leftImg8bit.png").unlink()
    with pytest.raises(DensekitError, match="empty"):
        Cityscapes(root, "val")
    (root / "leftImg8bit" / "train" / "bochum" / "bochum_000000_000313_leftImg8bit.png").unlink()
    (root / "gtFine" / "train" / "aachen" / "aachen_000001_000019_gtFine_labelIds.png").unlink()
    ds = Cityscapes(root, "train")
    problems = check_dataset(ds)
    assert len(problems) == 2
    assert "aachen_000001_000019_gtFine_labelIds.png" in problems[0] and "missing" in problems[0]
    assert "bochum_000000_000313_gtFine_labelIds.png" in problems[1]
    assert "without an image" in problems[1]
    with pytest.raises(ImageError, match="aachen_000001_000019_gtFine_labelIds.png"):
        ds[1]


# ------------------------------------------------------------------------------------------
# CamVid (SegNet layout)


@pytest.fixture
def camvid_root(tmp_path):
    return camvid_folder(tmp_path / "camvid", 3, (12, 16), val=2,
                         name=lambda i: f"0001TP_{6690 + 30 * i:06d}.png")


def test_camvid(camvid_root):
    ds = CamVid(camvid_root, "train")
    assert len(ds) == 3 and len(CamVid(camvid_root, "val")) == 2
    assert ds.classes[0] == "Sky" and ds.classes[10] == "Bicyclist" and len(ds.palette) == 11
    img, mask = ds[1]
    assert img.shape == (3, 12, 16) and img.dtype == torch.uint8
    assert torch.equal(img.permute(1, 2, 0), torch.from_numpy(rgb(12, 16, 1)))
    raw = camvid_label(12, 16, 1).astype(np.int64)
    assert np.array_equal(mask.numpy(), np.where(raw == 11, 255, raw))
    assert (raw == 11).any() and (mask == 255).any()
    assert check_dataset(ds) == []


def test_camvid_errors(camvid_root, tmp_path):
    with pytest.raises(DensekitError, match="not found"):
        CamVid(tmp_path / "missing", "train")
    with pytest.raises(DensekitError, match="test"):
        CamVid(camvid_root, "test")
    (camvid_root / "test").mkdir()
    (camvid_root / "testannot").mkdir()
    with pytest.raises(DensekitError, match="empty"):
        CamVid(camvid_root, "test")
    with pytest.raises(DensekitError, match="unknown"):
        build_seg_dataset("kitti", camvid_root, "train")
    name = "0001TP_006690.png"
    lab = camvid_label(12, 16, 0)
    lab[0, 0] = 12  # values above 11 are a data error
    save_gray_png(camvid_root / "trainannot" / name, lab)
    with pytest.raises(ImageError, match=rf"{name}.*12"):
        CamVid(camvid_root, "train")[0]


def add_pairing_problems(root):
    """An image without label, a label without image, and a label of another size."""
    tr, an = root / "train", root / "trainannot"
    save_rgb(tr / "img_nolabel.png", rgb(12, 16))
    save_gray_png(an / "orphan_label.png", camvid_label(12, 16, 0))
    save_rgb(tr / "sizes.png", rgb(12, 16))
    save_gray_png(an / "sizes.png", camvid_label(16, 16, 0))
    return tr, an


def test_check_dataset_reports_each_problem(camvid_root):
    tr, an = add_pairing_problems(camvid_root)
    save_rgb(tr / "badvalue.png", rgb(12, 16))
    lab = camvid_label(12, 16, 0)
    lab[3, 3] = 200
    save_gray_png(an / "badvalue.png", lab)
    save_rgb(tr / "garbage_label.png", rgb(12, 16))
    (an / "garbage_label.png").write_bytes(b"this is not a png")
    save_rgb(tr / "truncated_image.png", rgb(12, 16))
    data = (tr / "truncated_image.png").read_bytes()
    (tr / "truncated_image.png").write_bytes(data[: len(data) // 2])
    save_gray_png(an / "truncated_image.png", camvid_label(12, 16, 0))
    save_rgb(tr / "rgb_label.png", rgb(12, 16))
    save_rgb(an / "rgb_label.png", rgb(12, 16))
    problems = check_dataset(CamVid(camvid_root, "train"))
    assert len(problems) == 7, problems
    assert all("\n" not in p for p in problems)

    def one(name, *words):
        hits = [p for p in problems if name in p]
        assert len(hits) == 1, (name, problems)
        assert all(w in hits[0] for w in words), hits[0]

    one("img_nolabel", "label missing")
    one("orphan_label", "without an image")
    one("sizes", "16x16", "16x12")
    one("badvalue", "200")
    one("garbage_label", "not an image")
    one("truncated_image", "cannot decode")
    one("rgb_label", "mode RGB")


def test_pairing_check_reads_headers_only(camvid_root, monkeypatch):
    """check_dataset(decode=False): missing, extra and mismatched files from names and headers;
    nothing decoded, so content problems are left to the full check."""
    tr, an = add_pairing_problems(camvid_root)
    save_rgb(tr / "cut.png", rgb(12, 16))
    save_gray_png(an / "cut.png", camvid_label(12, 16, 0))
    data = (tr / "cut.png").read_bytes()
    (tr / "cut.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    lab = camvid_label(12, 16, 0)
    lab[0, 0] = 200
    save_gray_png(an / "0001TP_006690.png", lab)  # a bad value needs decoding to be seen
    (an / "0001TP_006720.png").write_bytes(b"not a png")  # so does a header that is no image
    ds = CamVid(camvid_root, "train")
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load",
                        lambda self: pytest.fail(f"decoded {self.filename}"))
    problems = check_dataset(ds, decode=False)
    assert problems == [
        f"{an / '0001TP_006720.png'}: not an image or unsupported format",
        f"{an / 'img_nolabel.png'}: label missing for image {tr / 'img_nolabel.png'}",
        f"{an / 'sizes.png'}: label is 16x16 but image {tr / 'sizes.png'} is 16x12",
        f"{an / 'orphan_label.png'}: label without an image"]
    monkeypatch.undo()
    full = check_dataset(ds)
    assert set(problems) < set(full) and len(full) == 6
    assert any("cut.png: cannot decode" in p for p in full)
    assert any("200" in p for p in full)


# ------------------------------------------------------------------------------------------
# Users' folders


@pytest.fixture
def folder_root(tmp_path):
    root = tmp_path / "mydata"
    save_rgb(root / "images" / "a.jpg", rgb(10, 14, 1))
    save_rgb(root / "images" / "b.png", rgb(9, 11, 2))
    la = np.zeros((10, 14), np.uint8)
    la[:, 7:] = 2
    la[0] = 255
    save_gray_png(root / "masks" / "a.png", la)
    lb = np.ones((9, 11), np.uint8)
    save_palette_png(root / "masks" / "b.png", lb)
    (root / "classes.txt").write_text("background\nroad\n\ncar\n")
    return root, la, lb


def test_folder_dataset(folder_root):
    root, la, lb = folder_root
    ds = FolderDataset(root, root / "classes.txt")
    assert ds.classes == ["background", "road", "car"] and len(ds.palette) == 3
    assert [(p.name, q.name) for p, q in ds.files] == [("a.jpg", "a.png"), ("b.png", "b.png")]
    img, mask = ds[0]
    assert img.shape == (3, 10, 14) and mask.dtype == torch.int64
    assert np.array_equal(mask.numpy(), la)
    img, mask = ds[1]
    assert np.array_equal(mask.numpy(), lb) and img.shape == (3, 9, 11)
    ds2 = build_seg_dataset("folder", root, None, classes=["x", "y", "z"])
    assert ds2.classes == ["x", "y", "z"] and len(ds2) == 2
    assert check_dataset(ds) == []
    with pytest.raises(DensekitError, match="classes"):
        FolderDataset(root, root / "missing.txt")
    with pytest.raises(ImageError, match=r"a\.png.*2"):  # value 2 is not a class of 2 names
        FolderDataset(root, ["bg", "fg"])[0]
    with pytest.raises(DensekitError, match="val"):
        FolderDataset(root, ["bg", "fg"], split="val")


# ------------------------------------------------------------------------------------------
# Transforms

def class_r(c):
    """The red channel encodes the label."""
    return 20 * c + 10


def coloured_scene(seed, h=64, w=64, block=16):
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 11, (h // block, w // block))
    lab = np.kron(lab, np.ones((block, block), np.int64))
    img = np.stack([class_r(lab), 255 - 20 * lab, np.full_like(lab, 128)]).astype(np.uint8)
    return tv_tensors.Image(torch.from_numpy(img)), tv_tensors.Mask(torch.from_numpy(lab))


def unnormalize(x):
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x * std + mean) * 255


def test_mask_resize_is_nearest():
    lab = torch.zeros(12, 12, dtype=torch.int64)
    lab[:, 6:] = 7
    lab[::3] = 255
    mask = tv_tensors.Mask(lab)
    for t in (v2.Resize((17, 23)), v2.Resize((5, 7)), RandomScale((0.3, 2.5))):
        out = t(mask)
        assert out.dtype == torch.int64
        assert set(out.unique().tolist()) <= {0, 7, 255}
    img, out = RandomScale((1.7, 1.7))(tv_tensors.Image(torch.zeros(3, 12, 12)), mask)
    assert img.shape[-2:] == out.shape == (20, 20)


def test_train_transforms_keep_alignment():
    t = train_transforms(48, scale_range=(0.5, 2.0))
    padded_seen = interior_seen = 0
    for seed in range(24):
        torch.manual_seed(seed)
        img, lab = coloured_scene(seed)
        x, m = t(img, lab)
        assert x.dtype == torch.float32 and x.shape == (3, 48, 48)
        assert m.dtype == torch.int64 and m.shape == (48, 48)
        values = set(m.unique().tolist())
        assert values <= set(range(11)) | {255}
        pad = m == 255
        if pad.any():  # padding: ignore label, mean colour (0 after normalisation)
            padded_seen += 1
            assert x[:, pad].abs().max() < 0.02
        # interior pixels (uniform 5x5 neighbourhood in the mask): colour gives the label
        mf = m.float()[None, None]
        mf = torch.where(mf == 255, torch.tensor(-1000.0), mf)
        hi = F.max_pool2d(mf, 5, 1, 2)[0, 0]
        lo = -F.max_pool2d(-mf, 5, 1, 2)[0, 0]
        interior = (hi == lo) & (m != 255)
        decoded = torch.round((unnormalize(x)[0] - 10) / 20).long()
        assert torch.equal(decoded[interior], m[interior])
        interior_seen += int(interior.sum())
    assert padded_seen >= 3 and interior_seen > 5000


PHOTOMETRIC = {"prob": 1.0, "brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.03,
               "gamma": (0.7, 1.5), "blur_prob": 1.0, "blur_sigma": (0.5, 1.0),
               "noise_prob": 1.0, "noise_sigma": (4.0, 8.0)}


def test_photometric_augmentation_changes_the_image_only():
    plain = train_transforms(32, scale_range=(1.0, 1.0))
    photo = train_transforms(32, scale_range=(1.0, 1.0), photometric=PHOTOMETRIC)
    off = train_transforms(32, scale_range=(1.0, 1.0), photometric={"prob": 0.0})
    changed = 0
    for seed in range(6):
        img, lab = coloured_scene(seed)
        outs = []
        for t in (plain, photo, off, photo):
            torch.manual_seed(seed)
            outs.append(t(img, lab))
        (x0, m0), (x1, m1), (x2, m2), (x3, m3) = outs
        assert torch.equal(m0, m1) and torch.equal(m0, m2)  # same crop and flip, mask untouched
        assert torch.equal(x0, x2)  # off: exactly the augmentation without it
        assert torch.equal(x1, x3)  # a pure function of the seed
        assert x1.shape == x0.shape and x1.dtype == torch.float32
        changed += int((x1 - x0).abs().mean() > 0.05)
    assert changed == 6


def test_photometric_parts():
    from densekit.data.seg.transforms import RandomGamma, RandomNoise

    img = tv_tensors.Image(torch.full((3, 16, 16), 64, dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.full((16, 16), 3, dtype=torch.int64))
    bright, m = RandomGamma((0.5, 0.5))(img, mask)
    assert torch.equal(m, mask) and int(bright[0, 0, 0]) == round(255 * (64 / 255) ** 0.5)
    flt = tv_tensors.Image(torch.full((3, 64, 64), 0.5))
    torch.manual_seed(0)
    noisy, m = RandomNoise((6.0, 6.0))(flt, mask)
    assert torch.equal(m, mask) and isinstance(noisy, tv_tensors.Image)
    assert abs(float((noisy - 0.5).std()) * 255 - 6.0) < 0.3


def test_flip_is_joint():
    t = v2.RandomHorizontalFlip(p=1.0)
    img, lab = coloured_scene(3)
    x, m = t(img, lab)
    assert torch.equal(m, lab.flip(-1))
    assert torch.equal(x, img.flip(-1))


def test_padding_uses_ignore_and_mean():
    t = train_transforms((10, 12), scale_range=(1.0, 1.0), hflip=False)
    img = tv_tensors.Image(torch.full((3, 6, 8), 200, dtype=torch.uint8))
    lab = tv_tensors.Mask(torch.full((6, 8), 4, dtype=torch.int64))
    x, m = t(img, lab)
    assert m.shape == (10, 12) and int((m == 255).sum()) == 120 - 48
    assert int((m == 4).sum()) == 48
    assert x[:, m == 255].abs().max() < 0.02
    assert torch.allclose(unnormalize(x)[:, m == 4], torch.tensor(200.0), atol=0.01)


def test_eval_transforms():
    img, lab = coloured_scene(1, 20, 24, 4)
    x, m = eval_transforms()(img, lab)
    assert x.dtype == torch.float32 and x.shape == (3, 20, 24)
    assert torch.equal(m, lab) and m.dtype == torch.int64
    assert torch.allclose(unnormalize(x), img.float(), atol=1e-3)


def test_dataset_with_transform(camvid_root):
    ds = CamVid(camvid_root, "train", transform=train_transforms(8, (0.5, 1.0)))
    x, m = ds[0]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and m.shape == (8, 8)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch[0].shape == (2, 3, 8, 8) and batch[1].shape == (2, 8, 8)


# ------------------------------------------------------------------------------------------
# Median-frequency weights


def test_median_frequency_weights_hand_example():
    masks = [torch.tensor([[0, 0], [1, 255]]), torch.tensor([[0, 2, 2], [2, 2, 255]])]
    data = [(None, m) for m in masks]
    w = median_frequency_weights(data, 4)
    # labelled pixels: 3 and 5; freq0 = 3/8, freq1 = 1/3 (image 1 only), freq2 = 4/5 (image 2)
    # median(0.375, 0.3333, 0.8) = 0.375; class 3 never appears -> 0
    assert w.dtype == torch.float32
    assert torch.allclose(w, torch.tensor([1.0, 1.125, 0.46875, 0.0]))


def test_median_frequency_weights_on_dataset(camvid_root):
    ds = CamVid(camvid_root, "train")
    counts = np.zeros(11)
    tot = np.zeros(11)
    for i in range(len(ds)):
        m = ds.load_mask(i).numpy()
        m = m[m != 255]
        c = np.bincount(m, minlength=11)
        counts += c
        tot[c > 0] += m.size
    freq = counts / np.maximum(tot, 1)
    expect = np.where(counts > 0, np.median(freq[counts > 0]) / np.maximum(freq, 1e-12), 0)
    assert np.allclose(median_frequency_weights(ds, 11).numpy(), expect, rtol=1e-5)


def test_enet_weights_hand_example():
    masks = [torch.tensor([[0, 0], [1, 255]]), torch.tensor([[0, 2, 2], [2, 2, 255]])]
    w = enet_weights([(None, m) for m in masks], 4)
    # 8 labelled pixels: p = 3/8, 1/8, 4/8; class 3 never appears -> 0
    expect = [1 / math.log(1.10 + p) for p in (3 / 8, 1 / 8, 4 / 8)] + [0.0]
    assert w.dtype == torch.float32 and torch.allclose(w, torch.tensor(expect))
    assert torch.allclose(enet_weights([(None, masks[0])], 2, c=1.02),
                          torch.tensor([1 / math.log(1.02 + 2 / 3), 1 / math.log(1.02 + 1 / 3)]))


def test_in_memory_dataset_reads_each_file_once(camvid_root, monkeypatch):
    ds = CamVid(camvid_root, "train")
    cached = InMemory(ds)
    reads = []
    original = CamVid.load_image
    monkeypatch.setattr(CamVid, "load_image", lambda self, i: reads.append(i) or original(self, i))
    for _ in range(3):
        for i in range(len(ds)):
            image, mask = cached[i]
            want_image, want_mask = ds[i]
            assert type(image) is tv_tensors.Image and type(mask) is tv_tensors.Mask
            assert image.dtype == torch.uint8 and mask.dtype == torch.int64
            assert torch.equal(image, want_image) and torch.equal(mask, want_mask)
            assert (mask == 255).any() or i != 1
    assert sorted(set(reads)) == [0, 1, 2] and reads.count(0) == 4  # 1 cached + 3 direct reads
    # a transform applied to an item does not change the cached copy
    tf = train_transforms((8, 8), (0.5, 2.0))
    before = [t.clone() for t in cached[0]]
    tf(*cached[0])
    assert all(torch.equal(a, b) for a, b in zip(before, cached[0]))
    with pytest.raises(ValueError, match="without its transform"):
        InMemory(CamVid(camvid_root, "train", transform=tf))


# ------------------------------------------------------------------------------------------
# Synthetic scenes


def test_synthetic_deterministic_and_complete():
    a = SyntheticScenes(6, (24, 32), num_classes=5, seed=3)
    b = SyntheticScenes(6, (24, 32), num_classes=5, seed=3)
    later = [b[i] for i in (5, 2, 0)]  # access order does not matter
    for i, (x, m) in zip((5, 2, 0), later):
        xa, ma = a[i]
        assert torch.equal(xa, x) and torch.equal(ma, m)
    x, m = a[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 24, 32)
    assert m.dtype == torch.int64 and m.shape == (24, 32)
    assert not torch.equal(SyntheticScenes(6, (24, 32), 5, seed=4)[0][1], m)
    assert not torch.equal(SyntheticScenes(6, (24, 32), 5, seed=3, split="val")[0][1], m)
    for n in (5, 12):
        ds = SyntheticScenes(8, (24, 32), num_classes=n, seed=1)
        for i in range(len(ds)):
            assert sorted(ds[i][1].unique().tolist()) == list(range(n))
    assert "not a real benchmark" in SyntheticScenes.__doc__.replace("NOT", "not")
    assert check_dataset(a) == []
    v = build_seg_dataset("synthetic", None, "val", num_images=3, size=(16, 16))
    assert len(v) == 3 and v.split == "val"


def test_synthetic_needs_spatial_context():
    ds = SyntheticScenes(8, (48, 48), num_classes=6, seed=0)
    pix = np.concatenate([ds.load_image(i).reshape(3, -1).T.numpy() for i in range(8)]).astype(float)
    lab = np.concatenate([ds.load_mask(i).reshape(-1).numpy() for i in range(8)])
    means = np.stack([pix[lab == c].mean(0) for c in range(6)])
    pred = ((pix[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    acc = (pred == lab).mean()
    assert 1 / 6 < acc < 0.8  # colour alone helps but is far from enough
    # Majority of the true labels in each 5x5 window is a much better guess: regions are
    # contiguous (upper bound for what context can give).
    m = ds.load_mask(0)
    onehot = F.one_hot(m, 6).permute(2, 0, 1).float()[None]
    smooth = F.avg_pool2d(onehot, 5, 1, 2).argmax(1)[0]
    assert (smooth == m).float().mean() > 0.9


# ------------------------------------------------------------------------------------------
# The real CamVid (../shared/data/camvid), when present


def test_real_camvid():
    root = shared_data("camvid")
    train, val = CamVid(root, "train"), CamVid(root, "val")
    assert len(train) == 367 and len(val) == 101
    for ds in (train, val):
        img, mask = ds[0]
        assert img.shape == (3, 360, 480) and img.dtype == torch.uint8
        assert mask.shape == (360, 480) and mask.dtype == torch.int64
        assert set(mask.unique().tolist()) <= set(range(11)) | {255}
    assert check_dataset(val) == []
    w = median_frequency_weights(train, 11)
    assert (w > 0).all()
    assert w[3] < 1 < w[10]  # Road is frequent, Bicyclist rare


# ------------------------------------------------------------------------------------------
# Bad data sets: `densekit data check` and training name every bad file, in both layouts

def bad_dataset(tmp_path, layout):
    """A train/val data set in the CamVid or the folder layout whose train split has one of
    each problem. Returns (root, data-check arguments, training overrides, problem files)."""
    root = tmp_path / layout
    dirs = {s: ((root / s, root / f"{s}annot") if layout == "camvid" else
                (root / s / "images", root / s / "masks")) for s in ("train", "val")}
    ignore, bad_value = (11, 12) if layout == "camvid" else (255, 3)
    for split, (img, lbl) in dirs.items():
        for i in range(2):
            save_rgb(img / f"ok{i}.png", rgb(12, 16, i))
            lab = np.zeros((12, 16), np.uint8)
            lab[:, 8:] = 2
            lab[0] = ignore  # the ignore value is not a problem
            save_gray_png(lbl / f"ok{i}.png", lab)
    img, lbl = dirs["train"]
    save_rgb(img / "nolabel.png", rgb(12, 16))
    save_gray_png(lbl / "noimage.png", np.zeros((12, 16), np.uint8))
    save_rgb(img / "badvalue.png", rgb(12, 16))
    lab = np.zeros((12, 16), np.uint8)
    lab[5, 5] = bad_value
    save_gray_png(lbl / "badvalue.png", lab)
    save_rgb(img / "sizes.png", rgb(12, 16))
    save_gray_png(lbl / "sizes.png", np.zeros((16, 16), np.uint8))
    save_rgb(img / "cutimage.png", rgb(12, 16))
    (img / "cutimage.png").write_bytes((img / "cutimage.png").read_bytes()[:60])
    save_gray_png(lbl / "cutimage.png", np.zeros((12, 16), np.uint8))
    save_rgb(img / "junklabel.png", rgb(12, 16))
    (lbl / "junklabel.png").write_bytes(b"not a png at all")
    problems = {lbl / "nolabel.png": f"label missing for image {img / 'nolabel.png'}",
                lbl / "noimage.png": "label without an image",
                lbl / "badvalue.png": f"label values {bad_value} are not allowed",
                lbl / "sizes.png": "label is 16x16 but image", img / "cutimage.png": "cannot decode",
                lbl / "junklabel.png": "not an image"}
    if layout == "camvid":
        return root, ["--dataset", "camvid"], {"data.dataset": "camvid", "data.options": "{}"}, \
            dirs, problems
    (root / "classes.txt").write_text("a\nb\nc\n")
    return root, ["--dataset", "folder"], {"data.dataset": "folder",
                                           "data.options": "{classes: [a, b, c]}"}, dirs, problems


@pytest.mark.parametrize("layout", ["camvid", "folder"])
def test_bad_data_sets_are_reported_file_by_file(tmp_path, capsys, layout):
    from densekit.cli.main import main
    from densekit.tasks.seg import train
    root, args, sets, dirs, problems = bad_dataset(tmp_path, layout)
    assert main(["data", "check", "--task", "seg", "--data", str(root), *args]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "9 samples checked, 6 problem(s)", lines
    for path, words in problems.items():
        hits = [line for line in lines if line.startswith(f"{path}: ")]
        assert len(hits) == 1 and words in hits[0], (path, lines)
    out = tmp_path / "run"
    with pytest.raises(DensekitError, match=r"data set has 6 problem\(s\), e.g. /.*\.png: "):
        train(None, tiny_seg_config(out, **sets, **{"data.root": str(root), "data.crop_size": "[8, 8]"}))
    assert not (out / "checkpoints").exists()
    for path in problems:  # bad samples removed: the same data set checks clean
        for folder in dirs["train"]:
            (folder / path.name).unlink(missing_ok=True)
    assert main(["data", "check", "--task", "seg", "--data", str(root), *args]) == 0
    # a missing folder: one line naming it, exit status 2
    shutil.rmtree(dirs["val"][1])
    assert main(["data", "check", "--task", "seg", "--data", str(root), *args]) == 2
    assert capsys.readouterr().err == f"densekit: error: {dirs['val'][1]}: " + (
        "CamVid val label folder not found\n" if layout == "camvid" else
        "masks folder not found\n")
