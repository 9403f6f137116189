"""Each real stage's inputs(): changing anything its outputs depend on changes its fingerprint (so it runs again),
and changing what they do not depend on leaves it (so it keeps them). The pipeline loop that acts on the
fingerprints is test_pipeline_loop.py's; the engines stage's bundle settings and server source are
test_engines.py's. No training: the files a stage fingerprints are written here as they are on disk."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from yoloforge.ray_app.spec import parse_job
from yoloforge.ray_app.stages import STAGES
from yoloforge.ray_app.stages.base import RunState
from yoloforge.ray_app.stages.freshness import digest

BY_NAME = {stage.name: stage for stage in STAGES}


def _world(tmp_path: Path) -> RunState:
    """A dataset, a custom checkpoint, and a run directory as intake and search leave it, with a selection."""
    data = tmp_path / "data"
    for split in ("train", "val"):
        (data / "images" / split).mkdir(parents=True)
        (data / "labels" / split).mkdir(parents=True)
        (data / "images" / split / "a.jpg").write_bytes(b"\xff\xd8 image")
        (data / "labels" / split / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (data / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [circle]\n")
    (tmp_path / "mine.pt").write_bytes(b"checkpoint")
    spec = parse_job({"name": "r", "model": str(tmp_path / "mine.pt"), "task": "detect", "data": str(data),
                      "runs_dir": str(tmp_path / "runs")})
    state = RunState(spec)
    run = state.run
    clean = run.path / "data" / "clean"
    (clean / "images" / "train").mkdir(parents=True)
    (clean / "images" / "train" / "a.jpg").write_bytes(b"\xff\xd8 image")
    run.dataset_report.write_text(json.dumps({"clean_dir": "data/clean", "names": ["circle"],
                                              "splits": {"train": {"images_clean": 1}}, "class_counts": [1],
                                              "box_stats": {}}))
    run.best.mkdir(parents=True)
    run.best_weights.write_bytes(b"best weights")
    run.selection.write_text(json.dumps({"chosen": {"key": "onnxruntime-fp32-b1"}}))
    return state


def _touch_later(path: Path, content: bytes) -> None:
    """Rewrite a file with the same size, as an in-place label edit does."""
    path.write_bytes(content)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000_000))


def _spec(**section: dict) -> Callable[[RunState], None]:
    def change(state: RunState) -> None:
        for name, values in section.items():
            state.override(name, **values)
    return change


def _top(**values: object) -> Callable[[RunState], None]:
    def change(state: RunState) -> None:
        state.spec = state.spec.model_copy(update=values)
    return change


def _report(**values: object) -> Callable[[RunState], None]:
    def change(state: RunState) -> None:
        report = json.loads(state.run.dataset_report.read_text())
        state.run.dataset_report.write_text(json.dumps({**report, **values}))
    return change


def _file(pick: Callable[[RunState], Path], content: bytes, same_size: bool = False) -> Callable[[RunState], None]:
    def change(state: RunState) -> None:
        path = pick(state)
        path.parent.mkdir(parents=True, exist_ok=True)
        _touch_later(path, content) if same_size else path.write_bytes(content)
    return change


DATASET_LABEL = lambda s: Path(s.spec.data.path) / "labels" / "train" / "a.txt"  # noqa: E731
CLEAN_IMAGE = lambda s: s.run.path / "data" / "clean" / "images" / "train" / "b.jpg"  # noqa: E731

CHANGES: list[tuple[str, str, Callable[[RunState], None], bool]] = [
    # stage, what changes, the change, whether the stage must run again
    ("intake", "a label edited in place (same size)", _file(DATASET_LABEL, b"0 0.5 0.5 0.3 0.2\n", True), True),
    ("intake", "an image added to the dataset", _file(lambda s: Path(s.spec.data.path) / "images" / "train" / "b.jpg",
                                                      b"\xff\xd8 more"), True),
    ("intake", "the custom checkpoint replaced", _file(lambda s: Path(s.spec.model), b"other checkpoint"), True),
    ("intake", "another model", _top(model="yolo11s.pt"), True),
    ("intake", "data.val_split", _spec(data={"val_split": 0.3}), True),
    ("intake", "data.max_bad_fraction", _spec(data={"max_bad_fraction": 0.5}), True),
    ("intake", "search.imgsz (a .yaml model takes the job's size)", _spec(search={"imgsz": 320}), True),
    ("intake", "a search setting", _spec(search={"epochs": 3}), False),
    ("intake", "a target", _spec(targets={"fps": 30}), False),
    ("search", "the clean copy's files", _file(CLEAN_IMAGE, b"\xff\xd8 more"), True),
    ("search", "the class counts intake measured", _report(class_counts=[2]), True),
    ("search", "a search setting", _spec(search={"epochs": 3}), True),
    ("search", "another model", _top(model="yolo11s.pt"), True),
    ("search", "a metric target (continues the search instead)", _spec(targets={"metrics": {"mAP50": 0.9}}), False),
    ("search", "an engines setting", _spec(engines={"min_time_s": 3.0}), False),
    ("search", "the edge device (every trial's latency cost)", _spec(targets={"edge_device": "rpi5"}), True),
    ("engines", "the best weights", _file(lambda s: s.run.best_weights, b"better weights"), True),
    ("engines", "an engines setting", _spec(engines={"min_time_s": 3.0}), True),
    ("engines", "an fps target", _spec(targets={"fps": 30}), True),
    ("engines", "the accuracy drop allowed", _spec(targets={"max_accuracy_drop": 0.05}), True),
    ("engines", "a search setting", _spec(search={"epochs": 3}), False),
    ("engines", "the bundle's port (no bundle ranking)", _spec(export={"port": 9000}), False),
    ("export", "the selection", _file(lambda s: s.run.selection, b'{"chosen": {"key": "openvino-fp32-b1"}}'), True),
    ("export", "the bundle's port", _spec(export={"port": 9000}), True),
    ("export", "the answer cache's lifetime", _spec(export={"cache_ttl_s": 60}), True),
    ("export", "an engines setting", _spec(engines={"min_time_s": 3.0}), False),
    ("export", "the best weights (the selection names the model file)", _file(lambda s: s.run.best_weights,
                                                                             b"better weights"), False),
]


@pytest.mark.parametrize(("stage", "what", "change", "runs_again"), CHANGES, ids=[f"{c[0]}: {c[1]}" for c in CHANGES])
def test_a_stage_runs_again_exactly_when_something_it_depends_on_changes(tmp_path, stage, what, change, runs_again):
    state = _world(tmp_path)
    before = digest(BY_NAME[stage].inputs(state))
    change(state)
    after = digest(BY_NAME[stage].inputs(state))
    assert (before != after) == runs_again, f"{stage}: {what}"


def test_the_preview_keeps_nothing_so_it_checks_the_endpoint_every_time(tmp_path):
    assert BY_NAME["preview"].inputs(_world(tmp_path)) is None


def test_every_stage_with_outputs_has_its_changes_listed_here():
    assert {c[0] for c in CHANGES} == {s.name for s in STAGES} - {"preview"}


def test_a_job_read_back_from_its_run_directory_gives_every_stage_the_fingerprint_it_ran_with(tmp_path):
    # `yoloforge resume` reads the run's job.yaml where `yoloforge run` parsed the user's: a default kept as written
    # in the schema (5 for a float field, read back as 5.0) gave the two different fingerprints (masked in `run`
    # only because intake validates the job again when it fills in the task)
    from yoloforge.ray_app.spec import dump_job

    state = _world(tmp_path)
    dump_job(state.spec, state.run.job)
    resumed = RunState.open(state.run.path)
    for stage in STAGES:
        assert digest(stage.inputs(state)) == digest(stage.inputs(resumed)), stage.name
