"""Writes of the run directory are all-or-nothing (core/atomic.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from yoloforge.core import atomic


def test_a_write_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "selection.json"
    target.write_text("old")
    atomic.write_json(target, {"chosen": 1})
    assert json.loads(target.read_text()) == {"chosen": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["selection.json"]


def test_a_failed_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "trials.parquet"
    target.write_bytes(b"the previous table")
    with pytest.raises(OSError), atomic.replacing(target) as tmp:
        tmp.write_bytes(b"half a tab")
        raise OSError(28, "No space left on device")
    assert target.read_bytes() == b"the previous table"
    assert [p.name for p in tmp_path.iterdir()] == ["trials.parquet"]


def test_the_temporary_keeps_the_extension_and_the_result_is_readable_by_others(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "engines.png"
    with atomic.replacing(target) as tmp:
        assert tmp.suffix == ".png" and tmp.name.startswith(atomic.TEMP_PREFIX) and tmp.parent == target.parent
        tmp.write_bytes(b"png")
    assert target.stat().st_mode & 0o777 == 0o644


def test_writing_the_same_content_leaves_the_file_and_its_time_alone(tmp_path: Path) -> None:
    target = tmp_path / "best.pt"
    atomic.write_bytes(target, b"weights")
    os.utime(target, ns=(1, 1))
    atomic.write_bytes(target, b"weights")
    assert target.stat().st_mtime_ns == 1
    atomic.write_bytes(target, b"new weights")
    assert target.read_bytes() == b"new weights" and target.stat().st_mtime_ns > 1


def test_leftovers_of_killed_writes_are_removed_and_results_are_not(tmp_path: Path) -> None:
    (tmp_path / f"{atomic.TEMP_PREFIX}selection.abc.json").write_text("{half")
    (tmp_path / "selection.json").write_text("{}")
    atomic.remove_leftovers(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["selection.json"]
