"""Batch runs of `sr upscale` and `seg predict` never lose a result: the output naming rule
(subfolders kept, clashes refused before anything is written), --skip-existing, --report, and
property tests over random folder trees."""

import contextlib
import io
import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from densekit.cli.main import main
from densekit.data.image_io import name_key

from helpers import tiny_seg_weights

SR = ["sr", "upscale", "--scale", "2", "--model", "bicubic", "--precision", "fp32", "-q"]


def image(path: Path, w: int = 5, h: int = 4, seed: int = 0) -> Path:
    """A random RGB image of w x h pixels in the format its extension names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}.get(path.suffix.lower(), "PNG")
    Image.fromarray(arr).save(path, format=fmt)
    return path


def run(argv: list[str]) -> tuple[int, str]:
    """``densekit ARGV`` in this process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def files_under(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root`` (relative POSIX path) with its mtime and content."""
    return {p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def seg_weights(tmp_path_factory) -> Path:
    return tiny_seg_weights(tmp_path_factory.mktemp("batch_seg") / "w.pt")


def seg_args(weights: Path) -> list[str]:
    return ["seg", "predict", "--weights", str(weights), "--precision", "fp32", "-q"]


# ---- the naming rule ----------------------------------------------------------------------------
def test_the_issue_case_is_refused_before_anything_is_written(tmp_path):
    """in/a.png, in/a.jpg and in2/a.png all map to a_x2.png: refused, naming two of them, and
    nothing is written (not even the output folder)."""
    for p in ("in/a.png", "in/a.jpg", "in2/a.png"):
        image(tmp_path / p)
    before = files_under(tmp_path)
    out = tmp_path / "out"
    code, err = run([*SR, str(tmp_path / "in"), str(tmp_path / "in2"), "-o", str(out)])
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"densekit: error: {tmp_path / 'in/a.jpg'} and {tmp_path / 'in/a.png'} "
                          f"would both be written to {out / 'a_x2.png'}"), err
    assert "1 more clash" in err  # in2/a.png
    assert not out.exists() and files_under(tmp_path) == before


def test_subfolders_are_kept_and_files_go_to_the_top(tmp_path):
    image(tmp_path / "in/a.png", 6, 4)
    image(tmp_path / "in/sub/a.png", 3, 2)
    image(tmp_path / "in/sub/deeper/b c é.jpg")
    image(tmp_path / "in2/other.png")
    image(tmp_path / "loose.png")
    (tmp_path / "in/notes.txt").write_text("not an image name: left alone")
    out = tmp_path / "out"
    code, err = run([*SR, str(tmp_path / "in"), str(tmp_path / "in2"), str(tmp_path / "loose.png"),
                     "-o", str(out)])
    assert (code, err) == (0, "")
    got = {k: Image.open(out / k).size for k in files_under(out)}
    assert got == {"a_x2.png": (12, 8), "sub/a_x2.png": (6, 4), "sub/deeper/b c é_x2.png": (10, 8),
                   "other_x2.png": (10, 8), "loose_x2.png": (10, 8)}


@pytest.mark.parametrize("names", [("a.png", "A.png"), ("Photo.JPG", "photo.png"),
                                   ("\u00e9.png", "e\u0301.png"), ("sub/x.png", "SUB/x.png")])
def test_names_differing_only_in_case_or_normalisation_clash(tmp_path, names):
    for n in names:
        image(tmp_path / "in" / n)
    code, err = run([*SR, str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert code == 2 and "would both be written to" in err
    assert all(str(tmp_path / "in" / n) in err for n in names), err
    assert not (tmp_path / "out").exists()


def test_the_same_file_twice_is_one_input(tmp_path):
    image(tmp_path / "in/a.png")
    image(tmp_path / "in/sub/b.png")
    out = tmp_path / "out"
    code, _ = run([*SR, str(tmp_path / "in"), str(tmp_path / "in/a.png"),
                   str(tmp_path / "in/sub"), "-o", str(out), "--report", str(tmp_path / "r.json")])
    assert code == 0 and set(files_under(out)) == {"a_x2.png", "sub/b_x2.png"}
    assert json.loads((tmp_path / "r.json").read_text())["inputs"] == 2


def test_an_output_never_replaces_an_input(tmp_path):
    """-o equal to the input folder works once; on the second run a.png's output would replace
    the input a_x2.png, so the run is refused before anything is written."""
    folder = tmp_path / "in"
    image(folder / "a.png")
    assert run([*SR, str(folder), "-o", str(folder)]) == (0, "")
    assert sorted(files_under(folder)) == ["a.png", "a_x2.png"]
    before = files_under(tmp_path)
    code, err = run([*SR, str(folder), "-o", str(folder)])
    assert code == 2 and err == (f"densekit: error: {folder / 'a_x2.png'}: the output of "
                                 f"{folder / 'a.png'} would replace the input "
                                 f"{folder / 'a_x2.png'}; choose another -o\n")
    assert files_under(tmp_path) == before


def test_an_output_folder_inside_an_input_folder_is_not_searched(tmp_path):
    image(tmp_path / "in/a.png")
    out = tmp_path / "in/upscaled"
    for _ in range(2):  # the second run does not upscale the first run's outputs
        assert run([*SR, str(tmp_path / "in"), "-o", str(out)]) == (0, "")
    assert set(files_under(out)) == {"a_x2.png"}


def test_an_output_standing_where_another_needs_a_folder_is_refused(tmp_path):
    image(tmp_path / "in/b.png")
    image(tmp_path / "in/b_x2.png/c.png")  # a folder named like b.png's output
    code, err = run([*SR, str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert code == 2 and str(tmp_path / "in/b.png") in err and "c.png" in err, err
    assert not (tmp_path / "out").exists()


def test_seg_predict_uses_the_same_rule(tmp_path, seg_weights):
    image(tmp_path / "in/a.png", 8, 6)
    image(tmp_path / "in/sub/a.png", 8, 6)
    out = tmp_path / "out"
    assert run([*seg_args(seg_weights), str(tmp_path / "in"), "-o", str(out)]) == (0, "")
    assert set(files_under(out)) == {"a_label.png", "a_overlay.png", "sub/a_label.png",
                                     "sub/a_overlay.png"}
    image(tmp_path / "in/sub/A.jpg", 8, 6)
    code, err = run([*seg_args(seg_weights), str(tmp_path / "in"), "-o", str(tmp_path / "o2")])
    assert code == 2 and f"would both be written to {tmp_path / 'o2/sub/a_label.png'}" in err, err


# ---- existing outputs, the report, the summary line ---------------------------------------------
@pytest.mark.parametrize("command", ["sr", "seg"])
def test_skip_existing_continues_a_killed_run_and_the_report_matches_the_disk(
        tmp_path, capsys, command, seg_weights):
    names = [f"im{i}.png" for i in range(4)]
    for i, n in enumerate(names):
        image(tmp_path / "in" / n, seed=i)
    (tmp_path / "in/bad.png").write_text("not an image")
    out, report = tmp_path / "out", tmp_path / "logs/report.json"
    args = ([*SR] if command == "sr" else seg_args(seg_weights))
    args = [a for a in args if a != "-q"] + [str(tmp_path / "in"), "-o", str(out)]
    suffixes = ["_x2.png"] if command == "sr" else ["_label.png", "_overlay.png"]

    assert main(args) == 1  # bad.png failed
    first = files_under(out)
    assert len(first) == 4 * len(suffixes)
    capsys.readouterr()
    # a "killed" run: im1's outputs never made it, im2 has only the first of its outputs
    for s in suffixes:
        (out / f"im1{s}").unlink()
    (out / f"im2{suffixes[-1]}").unlink()
    code = main(args + ["--skip-existing", "--report", str(report)])
    assert code == 1
    std = capsys.readouterr()
    redone = 2
    assert std.out.splitlines()[-1].startswith(
        f"wrote {redone}, skipped {4 - redone}, failed 1 of 5 image(s) into {out} in ")
    assert std.err.count("densekit: error: ") == 1 and "bad.png" in std.err
    now = files_under(out)
    for name, (mtime, _) in first.items():  # the skipped ones were not touched
        if not name.startswith(("im1", "im2")):
            assert now[name][0] == mtime, name
    rep = json.loads(report.read_text())
    assert (rep["state"], rep["inputs"], rep["written"], rep["skipped"], rep["failed"],
            rep["pending"]) == ("done", 5, redone, 4 - redone, 1, 0)
    by_input = {Path(e["input"]).name: e for e in rep["images"]}
    assert by_input["bad.png"]["status"] == "failed"
    assert by_input["bad.png"]["error"].startswith(f"{tmp_path / 'in/bad.png'}: ")
    assert "outputs" not in by_input["bad.png"]
    on_disk = {str(out / k) for k in now}
    listed = {o for e in rep["images"] for o in e.get("outputs", [])}
    assert listed == on_disk  # every written or skipped output exists, and nothing else
    assert sum(e["status"] == "written" for e in rep["images"]) == redone
    assert by_input["im1.png"]["status"] == "written"
    assert by_input["im0.png"]["status"] == "skipped"
    assert not list(report.parent.glob(".*"))  # no temporary file left

    # without --skip-existing every output is written again (replaced)
    assert main(args + ["-q", "--report", str(report)]) == 1
    rep = json.loads(report.read_text())
    assert (rep["written"], rep["skipped"]) == (4, 0)
    assert all(files_under(out)[k][0] >= now[k][0] for k in now)


def test_an_interrupted_run_leaves_a_report_of_what_is_done(tmp_path, monkeypatch):
    from densekit.tasks import sr_upscale

    for i in range(3):
        image(tmp_path / f"in/im{i}.png", seed=i)
    real, calls = sr_upscale.upscale_to_pil, []

    def interrupt_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(sr_upscale, "upscale_to_pil", interrupt_second)
    report = tmp_path / "r.json"
    code, err = run([*SR, str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--report",
                     str(report)])
    assert code == 130 and "interrupted" in err
    rep = json.loads(report.read_text())
    assert rep["state"] == "interrupted"
    assert [e["status"] for e in rep["images"]] == ["written", "pending", "pending"]
    assert set(files_under(tmp_path / "out")) == {"im0_x2.png"}


def test_a_report_that_cannot_be_written_stops_the_run_before_any_image(tmp_path):
    image(tmp_path / "in/a.png")
    (tmp_path / "blocker").write_text("a file where the report's folder should be")
    code, err = run([*SR, str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--report",
                     str(tmp_path / "blocker/r.json")])
    assert code == 2 and err.startswith(f"densekit: error: {tmp_path / 'blocker/r.json'}: "
                                        "cannot write --report")
    assert files_under(tmp_path / "out") == {}


def test_the_report_file_may_not_be_an_input_or_output(tmp_path):
    image(tmp_path / "in/a.png")
    code, err = run([*SR, str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--report",
                     str(tmp_path / "out/a_x2.png")])
    assert code == 2 and "--report file is one of the run's inputs or outputs" in err


# ---- property tests over random folder trees ----------------------------------------------------
FOLDERS = ["sub", "Sub", "a b", "\u00e9t\u00e9", "e\u0301te\u0301", "日本", "b_x2.png"]
STEMS = ["a", "A", "b", "photo 1", "Photo 1", "\u00fc", "u\u0308", "ß", "ss", "b_x2", "x.y",
         "c", "d", "e"]
EXTENSIONS = [".png", ".jpg", ".PNG", ".jpeg", ".bmp", ".txt"]

entry = st.tuples(st.integers(0, 1),  # which INPUT folder
                  st.lists(st.sampled_from(FOLDERS), max_size=2),  # subfolders
                  st.sampled_from(STEMS), st.sampled_from(EXTENSIONS),
                  st.integers(0, 4).map(bool),  # readable (or text in an image's name)
                  st.integers(1, 4), st.integers(1, 4))  # w, h
trees = st.lists(entry, min_size=1, max_size=8)
PROPS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


def make_tree(root: Path, tree) -> dict[Path, tuple[Path, tuple[int, int] | None]]:
    """Writes the tree's files; returns every image-named input with (its path relative to its
    INPUT folder, its size when readable). A later entry of the same path replaces the earlier
    one; an entry whose folder is a file already (or that names a folder) is left out."""
    made = {}
    for folder, subs, stem, ext, readable, w, h in tree:
        top = root / f"in{folder}"
        path = top.joinpath(*subs, stem + ext)
        if path.is_dir() or any(p.is_file() for p in path.parents):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if readable:
            image(path, w, h)
        else:
            path.write_text("not an image\n")
        if ext != ".txt":
            made[path] = (path.relative_to(top), (w, h) if readable else None)
    return made


def expected(made: dict, suffixes: list[str]) -> tuple[dict, list[set]]:
    """{output path relative to -o: input} by the documented rule (names compared ignoring case
    and Unicode normalisation), and the clashes: pairs of inputs with the same output, or an
    input whose output stands where another output needs a folder."""
    outputs, clashes, owner = {}, [], {}
    for path, (rel, _) in made.items():
        for suf in suffixes:
            out = (rel.parent / (rel.stem + suf)).as_posix()
            k = unicodedata.normalize("NFD", unicodedata.normalize("NFD", out).casefold())
            if k in owner and owner[k] != path:
                clashes.append({owner[k], path})
            owner[k] = path
            outputs[out] = path
    for out, path in outputs.items():
        for parent in Path(out).parents:
            k = name_key(parent.as_posix())
            if parent != Path(".") and k in owner and owner[k] != path:
                clashes.append({owner[k], path})
    return outputs, clashes


def check_run(root: Path, made: dict, args: list[str], suffixes: list[str], sizes) -> None:
    """Run ARGS on the tree's INPUT folders with -o inside the first one or beside them, and
    check the outcome against the rule."""
    out = root / "in0" / "out" if len(made) % 2 else root / "out"
    roots = [str(root / f"in{i}") for i in range(2) if (root / f"in{i}").is_dir()]
    before = files_under(root)
    code, err = run([*args, *roots, "-o", str(out), "--report", str(root / "report.json")])
    after = files_under(root)
    outputs, clashes = expected(made, suffixes)
    if clashes:  # refused before anything is written, naming two inputs that clash
        assert code == 2 and err.count("\n") == 1, err
        named = {p for p in made if str(p) in err}
        assert any(c <= named for c in clashes), (err, clashes)
        assert after == before and not out.exists()
        return
    readable = {p for p, (_, size) in made.items() if size is not None}
    assert code == (0 if readable == set(made) else 1), err
    assert err.count("densekit: error: ") == len(made) - len(readable), err
    assert {k: after[k] for k in before} == before  # the inputs are untouched
    out_rel = out.relative_to(root).as_posix() + "/"
    new = set(after) - set(before) - {"report.json"}
    assert all(k.startswith(out_rel) for k in new), new  # nothing written outside -o
    assert {k[len(out_rel):] for k in new} == {o for o, p in outputs.items() if p in readable}
    for o, p in outputs.items():
        if p in readable:
            assert Image.open(out / o).size == sizes(made[p][1]), o
    rep = json.loads((root / "report.json").read_text())
    assert (rep["written"], rep["skipped"], rep["failed"]) == (
        len(readable), 0, len(made) - len(readable))


def fresh(tmp_path_factory, name: str) -> Path:
    return tmp_path_factory.mktemp(name)


@PROPS
@given(tree=trees)
def test_sr_every_readable_input_gets_exactly_one_output(tmp_path_factory, tree):
    root = fresh(tmp_path_factory, "tree")
    made = make_tree(root, tree)
    if not made:
        return
    check_run(root, made, SR, ["_x2.png"], lambda wh: (2 * wh[0], 2 * wh[1]))


@settings(PROPS, max_examples=15)
@given(tree=trees)
def test_seg_every_readable_input_gets_its_label_and_overlay(tmp_path_factory, seg_weights,
                                                             tree):
    root = fresh(tmp_path_factory, "segtree")
    made = make_tree(root, tree)
    if not made:
        return
    with torch.no_grad():
        check_run(root, made, seg_args(seg_weights), ["_label.png", "_overlay.png"],
                  lambda wh: wh)


def test_expected_models_the_rule():
    """The test's own model of the rule: the issue's case and a file/folder clash are clashes,
    the same name in two subfolders is not."""
    a, b = Path("in0/a.png"), Path("in0/a.jpg")
    assert expected({a: (Path("a.png"), (1, 1)), b: (Path("a.jpg"), None)},
                    ["_x2.png"])[1] == [{a, b}]
    b = Path("in0/s/a.png")
    assert expected({a: (Path("a.png"), (1, 1)), b: (Path("s/a.png"), (1, 1))}, ["_x2.png"]) == (
        {"a_x2.png": a, "s/a_x2.png": b}, [])
    b = Path("in0/A_x2.PNG/c.png")
    assert expected({a: (Path("a.png"), (1, 1)), b: (Path("A_x2.PNG/c.png"), (1, 1))},
                    ["_x2.png"])[1] == [{a, b}]
