"""The test helpers themselves: missing data skips a test, or fails it under
DENSEKIT_REQUIRE_DATA (what CI sets)."""

import re

import pytest

from helpers import REQUIRE_DATA, require_module, shared_data, shared_root


@pytest.mark.parametrize("value, outcome", [(None, pytest.skip.Exception),
                                            ("0", pytest.skip.Exception),
                                            ("1", pytest.fail.Exception)])
def test_missing_shared_data_skips_or_fails(tmp_path, monkeypatch, value, outcome):
    monkeypatch.setenv("DENSEKIT_SHARED", str(tmp_path))  # an empty folder: no data there
    if value is None:
        monkeypatch.delenv(REQUIRE_DATA, raising=False)
    else:
        monkeypatch.setenv(REQUIRE_DATA, value)
    missing = tmp_path / "sr" / "Set5"
    with pytest.raises(outcome, match=re.escape(f"{missing} is missing")):
        shared_data("sr", "Set5")
    missing.mkdir(parents=True)
    assert shared_data("sr", "Set5") == missing


def test_shared_root_follows_densekit_shared(tmp_path, monkeypatch):
    monkeypatch.setenv("DENSEKIT_SHARED", str(tmp_path))
    assert shared_root() == tmp_path
    (tmp_path / "data").mkdir()
    assert shared_root() == tmp_path / "data"
    monkeypatch.delenv("DENSEKIT_SHARED")
    assert shared_root().parts[-2:] == ("shared", "data")


def test_missing_test_extra_skips_or_fails(monkeypatch):
    monkeypatch.delenv(REQUIRE_DATA, raising=False)
    with pytest.raises(pytest.skip.Exception, match="densekit_no_such_module"):
        require_module("densekit_no_such_module")
    monkeypatch.setenv(REQUIRE_DATA, "1")
    with pytest.raises(pytest.fail.Exception, match="densekit_no_such_module"):
        require_module("densekit_no_such_module")
    assert require_module("json").dumps([]) == "[]"
