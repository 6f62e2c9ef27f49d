"""densekit.io.atomic_write, the one writer of every output file: complete files only, fsynced,
normal permissions, nothing left behind on failure, one-line errors."""

import errno
import os
import stat

import pytest

from densekit.errors import DensekitError
from densekit.io import atomic_write, atomic_write_bytes, atomic_write_text


def test_writes_the_file_and_fsyncs_it_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "sub" / "report.json"
    assert atomic_write_text(out, '{"a": 1}\n') == out
    assert out.read_text() == '{"a": 1}\n'
    # the data before the rename (the temporary file), then the folder holding the new name
    assert len(synced) == 2 and synced[0].startswith(str(out.parent / ".report.json."))
    assert synced[1] == str(out.parent)
    assert os.listdir(out.parent) == ["report.json"]


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o640


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "w.pt"
    out.write_bytes(b"old")

    def full_disk(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(DensekitError) as e:
        atomic_write(out, full_disk, what="weights file")
    assert str(e.value) == f"{out}: cannot write weights file (No space left on device)"
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["w.pt"]


def test_other_errors_of_the_writer_pass_through_and_leave_nothing(tmp_path):
    def bug(f):
        f.write(b"partial")
        raise ValueError("a bug, not a full disk")

    with pytest.raises(ValueError, match="a bug"):
        atomic_write(tmp_path / "x.png", bug)
    assert os.listdir(tmp_path) == []


def test_a_file_where_the_folder_should_be_is_a_one_line_error(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(DensekitError, match=r"out/m\.onnx: cannot write \("):
        atomic_write_bytes(tmp_path / "out" / "m.onnx", b"onnx")
