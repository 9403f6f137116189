"""Writing a run's files so that a later stage never trusts half of one.

A run killed mid-write (kill -9, a full disk, a lost node) must leave either the old file or the new one, never
a truncated selection.json or parquet that reads as valid. Every writer of the run directory goes through here:
the content goes to a temporary name in the same folder, is flushed to disk, then renamed over the target
(rename is atomic within a file system). A failed write removes its temporary file and leaves the target as it
was. A write of the content the file already holds leaves it untouched, so its modification time still says
when it last changed (model exports are reused while newer than the weights they came from).
"""

from __future__ import annotations

import filecmp
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# temporary files start with this, so a reader listing a folder can tell them from results
TEMP_PREFIX = ".tmp-"


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` for a writer that takes a path (pyarrow, matplotlib, shutil); on a clean
    exit it replaces `path`, on an exception it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the suffix is kept: writers that choose a format by the extension (matplotlib, onnx) see the real one
    fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if path.is_file() and filecmp.cmp(tmp, path, shallow=False):
            return
        with open(tmp, "rb+") as f:  # the writer may have closed it without syncing
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a result is as readable as any file written here
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any, **dumps: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, **dumps))


def write_parquet(path: str | Path, table: Any) -> None:
    """A pyarrow Table as a parquet file."""
    import pyarrow.parquet as pq

    with replacing(path) as tmp:
        pq.write_table(table, tmp)


def remove_leftovers(folder: str | Path) -> None:
    """Temporary files of writes that were killed before their rename (none of them is ever read)."""
    for leftover in Path(folder).glob(f"{TEMP_PREFIX}*"):
        leftover.unlink(missing_ok=True)


def check_writable(folder: str | Path, size: int = 65536) -> None:
    """Raise the OSError (a full disk, a read-only mount) that writing a file of `size` bytes in folder meets; for
    the places where a library reported a failed write only in its log."""
    path = Path(folder) / f"{TEMP_PREFIX}probe"
    try:
        path.write_bytes(b"\0" * size)
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
    finally:
        path.unlink(missing_ok=True)
