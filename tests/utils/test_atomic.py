"""Atomic writes: the old file or the whole new one, and no temporary left behind on failure."""
import json
import os

import pytest

from utils.atomic import write_atomically, write_json_atomic


def test_json_is_written_and_replaces_the_old_file(tmp_path):
    path = str(tmp_path / "a.json")
    write_json_atomic(path, {"x": 1})
    write_json_atomic(path, {"x": 2})
    with open(path) as f:
        assert json.load(f) == {"x": 2}
    assert os.listdir(tmp_path) == ["a.json"]


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "a.json")
    write_json_atomic(path, {"x": 1})

    def broken(temporary):
        with open(temporary, "w") as f:
            f.write("{half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, broken)
    with open(path) as f:
        assert json.load(f) == {"x": 1}
    assert os.listdir(tmp_path) == ["a.json"]
