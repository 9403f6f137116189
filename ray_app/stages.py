"""Which stages of a run are current: each stage's inputs are fingerprinted in RUN_DIR/stages.json when it
finishes, so a re-run skips a stage whose inputs did not change and re-runs one whose inputs did (and
`--from STAGE` forgets the fingerprints from that stage on)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from yoloforge.ray_app.spec import JobSpec

STAGE_FILE = "stages.json"
ORDER = ("intake", "search", "engines", "preview", "export")


def _digest(obj: Any) -> str:
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
    return _digest([(name, size) for name, size, _ in _files(root) if Path(name).suffix != ".cache"])


def source_digest(path: Path) -> str | None:
    """Names, sizes and modification times of the user's files: a file, or every file under a folder. Unlike
    tree_digest it includes times, because a label edited in place often keeps its size."""
    if path.is_file():
        stat = path.stat()
        return _digest([path.name, stat.st_size, stat.st_mtime_ns])
    if not path.is_dir():
        return None
    return _digest(_files(path))


def _files(root: Path) -> list[tuple[str, int, int]]:
    """(relative name, size, modification time in ns) of every file under root, sorted by name."""
    entries = []
    for p in root.rglob("*"):
        if p.is_file():
            stat = p.stat()
            entries.append((str(p.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return sorted(entries)


def intake_inputs(spec: JobSpec) -> dict[str, Any]:
    """What intake's outputs depend on: the dataset's files (for a data.yaml, its folder's), the data settings,
    the model (its file's digest when it is a local file) and, for a model built from .yaml, the input size."""
    data = Path(spec.data.path).expanduser()
    model = Path(spec.model).expanduser()
    return {"data": spec.data.model_dump(mode="json"),
            "source": source_digest(data.parent if data.suffix in (".yaml", ".yml") else data),
            "model": spec.model, "model_file": source_digest(model) if model.is_file() else None,
            "task": spec.task, "imgsz": spec.search.imgsz}


def search_inputs(spec: JobSpec, run_dir: Path) -> dict[str, Any]:
    """What the search's result depends on. Metric targets are left out: changing them continues a search
    (or stops it earlier) rather than starting it over."""
    report = json.loads((run_dir / "dataset_report.json").read_text())
    statistics = {k: report.get(k) for k in ("names", "splits", "class_counts", "box_stats")}
    return {"model": spec.model, "task": spec.task, "search": spec.search.model_dump(mode="json"),
            "data": tree_digest(Path(report["clean_dir"])), "statistics": _digest(statistics)}


def engines_inputs(spec: JobSpec, run_dir: Path) -> dict[str, Any]:
    return {"engines": spec.engines.model_dump(mode="json"), "targets": spec.targets.model_dump(mode="json"),
            "weights": file_digest(run_dir / "best" / "best.pt")}


def _read(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / STAGE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def recorded(run_dir: Path, stage: str) -> str | None:
    return (_read(run_dir).get(stage) or {}).get("inputs")


def record(run_dir: Path, stage: str, inputs: dict[str, Any]) -> None:
    stages = _read(run_dir)
    stages[stage] = {"inputs": _digest(inputs), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (run_dir / STAGE_FILE).write_text(json.dumps(stages, indent=2))


def is_current(run_dir: Path, stage: str, inputs: dict[str, Any]) -> bool:
    return recorded(run_dir, stage) == _digest(inputs)


def forget_from(run_dir: Path, stage: str) -> None:
    """--from STAGE: that stage and every later one run again."""
    stages = _read(run_dir)
    for name in ORDER[ORDER.index(stage):]:
        stages.pop(name, None)
        stages[name] = {"forced": True}
    (run_dir / STAGE_FILE).write_text(json.dumps(stages, indent=2))


def forced(run_dir: Path, stage: str) -> bool:
    return bool((_read(run_dir).get(stage) or {}).get("forced"))


def archive_search(run_dir: Path) -> Path | None:
    """Move a finished search's outputs aside (never deleted) so a new search starts clean."""
    names = ("search", "trials.parquet", "pareto.parquet", "best")
    if not any((run_dir / n).exists() for n in names):
        return None
    target = run_dir / "previous" / time.strftime("%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    for n in names:
        if (run_dir / n).exists():
            shutil.move(str(run_dir / n), str(target / n))
    return target
