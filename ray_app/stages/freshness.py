"""Whether a stage runs again: the one place that decides it.

Each stage's inputs are fingerprinted in RUN_DIR/stages.json when it finishes, so a re-run keeps a stage whose
inputs did not change and re-runs one whose inputs did; `--from STAGE` marks that stage and the later ones as
forced.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from yoloforge.core import atomic
from yoloforge.core.rundir import RunDir, read_json

# current: same inputs as when it last finished; changed: it finished before, on other inputs; new: it never
# finished; forced: --from asked for it
Verdict = Literal["current", "changed", "new", "forced"]


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def tree_digest(root: Path) -> str | None:
    """Names and sizes of every file under root: cheap even for a large dataset, and independent of when intake
    rewrote its clean copy (label edits also show in the report's statistics, hashed beside it). The label
    caches Ultralytics writes beside the labels when it first trains on them are not inputs."""
    if not root.is_dir():
        return None
    return digest([(name, size) for name, size, _ in _files(root) if Path(name).suffix != ".cache"])


def source_digest(path: Path) -> str | None:
    """Names, sizes and modification times of the user's files: a file, or every file under a folder. Unlike
    tree_digest it includes times, because a label edited in place often keeps its size."""
    if path.is_file():
        stat = path.stat()
        return digest([path.name, stat.st_size, stat.st_mtime_ns])
    if not path.is_dir():
        return None
    return digest(_files(path))


def _files(root: Path) -> list[tuple[str, int, int]]:
    """(relative name, size, modification time in ns) of every file under root, sorted by name."""
    entries = []
    for p in root.rglob("*"):
        if p.is_file():
            stat = p.stat()
            entries.append((str(p.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return sorted(entries)


def _read(run: RunDir) -> dict[str, Any]:
    return read_json(run.stages) or {}


def _write(run: RunDir, stages: dict[str, Any]) -> None:
    atomic.write_json(run.stages, stages)


def verdict(run: RunDir, stage: str, inputs: dict[str, Any] | None) -> Verdict:
    """How this stage's inputs compare with those it last finished on (None: a stage that keeps nothing)."""
    entry = _read(run).get(stage) or {}
    if entry.get("forced"):
        return "forced"
    if inputs is None or "inputs" not in entry:
        return "new"
    return "current" if entry["inputs"] == digest(inputs) else "changed"


def record(run: RunDir, stage: str, inputs: dict[str, Any]) -> None:
    stages = _read(run)
    stages[stage] = {"inputs": digest(inputs), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write(run, stages)


def force(run: RunDir, names: Sequence[str]) -> None:
    """--from STAGE: these stages run again, whatever their inputs."""
    stages = _read(run)
    stages.update({name: {"forced": True} for name in names})
    _write(run, stages)
